"""The dropbox provider against the contract fake (tests/fakes/dropbox.py): the conformance
suite, plus what only Dropbox shows (content_hash, upload sessions, throttling, token refresh,
the change feed). Live tests run the suite against a real Dropbox when credentials are given."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import pytest

from cdir.errors import AuthError, NotFound, Unavailable, UsageError
from cdir.providers.dropbox import ApiError, DropboxProvider, content_hash, token_secret
from cdir.providers.dropbox.api import api_arg
from cdir.providers.dropbox.hashing import BLOCK, ContentHasher
from cdir.providers.oauth import Token
from cdir.providers.testing import HASH_FUNCTIONS, ProviderSuite, kinds, stream
from tests.fakes.dropbox import ACCESS_TOKEN, REFRESH_TOKEN, DropboxFake
from tests.fakes.serve import serve_asgi

MiB = 1024 * 1024
HASHES = {**HASH_FUNCTIONS, "dropbox": content_hash}


@dataclass
class Fake:
    state: DropboxFake
    api_url: str
    content_url: str

    def provider(self, root: str = "cdir", **options: object) -> DropboxProvider:
        opts = {
            "api_url": self.api_url,
            "content_url": self.content_url,
            "client_id": "fake-app-key",
            "page_size": 7,
            "chunk_size": "4MiB",
            **options,
        }
        secrets = {"token": token_secret(ACCESS_TOKEN, REFRESH_TOKEN)}
        return DropboxProvider("dbx", root, opts, secrets)


@contextmanager
def running_fake() -> Iterator[Fake]:
    state = DropboxFake()
    with serve_asgi(state.app("api")) as api, serve_asgi(state.app("content")) as content:
        fake = Fake(state, api, content)
        with contextlib.closing(fake.provider()) as p:
            p.create_root()  # as `provider add` does
        yield fake


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[Fake]:
    with running_fake() as fake:
        yield fake


@pytest.fixture
def fake() -> Iterator[Fake]:
    """A fake of its own, for tests that flip its switches."""
    with running_fake() as fake:
        yield fake


@pytest.fixture
def dbx(fake: Fake) -> Iterator[DropboxProvider]:
    p = fake.provider()
    p.api.sleep = lambda s: None  # throttled calls retry at once
    yield p
    p.close()


class TestDropbox(ProviderSuite):
    large_file_size = 9 * MiB  # three upload requests of 4 MiB chunks
    hash_functions = HASHES

    @pytest.fixture
    def provider(self, shared_fake: Fake) -> Iterator[DropboxProvider]:
        p = shared_fake.provider()
        yield p
        p.close()


# --- content_hash -----------------------------------------------------------------------------
def test_content_hash_known_answers() -> None:
    # values published with rdrop2's tests of the same algorithm
    block = bytes(i % 256 for i in range(BLOCK))
    assert content_hash(b"hello rdrop2") == (
        "1aa2b7623dfff520c4abdc1227d10bc4e229b74005b66b3458345830e556f4de"
    )
    assert content_hash(block) == "894bbb52d1212d6bcbe9967f1a2169138c4d4af0c8dfbaeae86cd1d3f0c03faf"
    assert content_hash(block + b"\xff") == (
        "9149387a91f71c7c2149b8427d15526b71c1a38d6c6f999ad71486a2ce788d57"
    )
    # no block at all: the SHA-256 of nothing
    assert content_hash(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_content_hasher_is_incremental() -> None:
    data = os.urandom(2 * BLOCK + 12345)
    hasher = ContentHasher()
    for i in range(0, len(data), 999_983):  # pieces that straddle block boundaries
        hasher.update(data[i : i + 999_983])
    assert hasher.hexdigest() == content_hash(data)
    assert hasher.hexdigest() == hasher.hexdigest()  # reading it changes nothing


# --- the wire ---------------------------------------------------------------------------------
def test_api_arg_is_ascii() -> None:
    header = api_arg({"path": "/café/日本\x7f"})
    assert header.isascii() and "\x7f" not in header
    assert json.loads(header) == {"path": "/café/日本\x7f"}


def test_small_files_go_in_one_request_large_ones_in_a_session(
    fake: Fake, dbx: DropboxProvider
) -> None:
    fake.state.calls.clear()
    dbx.put_stream(stream(b"small"), "s")
    assert fake.state.calls == ["files/upload"]
    fake.state.calls.clear()
    data = os.urandom(2 * BLOCK + 1)
    got = dbx.put_stream(stream(data), "big", mtime_ns=1_600_000_000_999_999_999)
    assert fake.state.calls == [
        "files/upload_session/start",
        "files/upload_session/append_v2",
        "files/upload_session/finish",
    ]
    assert got.hashes == {"dropbox": content_hash(data), "md5": got.hashes["md5"]}
    assert got.mtime_ns == 1_600_000_000_000_000_000  # client_modified: whole seconds
    assert dbx.read_bytes("big") == data
    # exactly one chunk still fits one request; exactly two: start, then finish with the last
    for n, calls in ((1, ["files/upload"]), (2, ["start", "finish"])):
        fake.state.calls.clear()
        dbx.put_stream(stream(data[: n * BLOCK]), "chunks")
        assert [c.rsplit("/", 1)[-1] for c in fake.state.calls] == [
            c.rsplit("/", 1)[-1] for c in calls
        ]
        assert dbx.read_bytes("chunks") == data[: n * BLOCK]


def test_paths_below_the_root_and_case(fake: Fake, dbx: DropboxProvider) -> None:
    dbx.put_stream(stream(b"x"), "Dir/File.TXT")
    assert "/cdir/dir/file.txt" in fake.state.nodes
    assert kinds(dbx, "DIR") == {"DIR/File.TXT": "file"}  # the folder as asked
    assert dbx.stat("dir/file.txt").size == 1
    # written through another case, a file's path_display keeps that case above its name;
    # listings name it below its folder as the folder is named
    dbx.put_stream(stream(b"y"), "DIR/other")
    assert fake.state.nodes["/cdir/dir/other"].display == "/cdir/DIR/other"
    assert kinds(dbx, "", recursive=True) == {
        "Dir": "dir",
        "Dir/File.TXT": "file",
        "Dir/other": "file",
    }
    whole = fake.provider(root="")
    assert kinds(whole, "") == {"cdir": "dir"}
    assert whole.stat("").kind == "dir"
    whole.close()


def test_error_bodies_become_cdir_errors(dbx: DropboxProvider) -> None:
    with pytest.raises(NotFound, match="path/not_found") as err:
        dbx.stat("missing")
    assert str(err.value).startswith("dbx:/missing: ")
    dbx.put_stream(stream(b"x"), "f")
    with pytest.raises(NotADirectoryError):
        list(dbx.list("f"))
    with pytest.raises(IsADirectoryError):
        dbx.put_stream(stream(b"x"), "")  # the root folder itself
    with pytest.raises(FileExistsError):
        dbx.mkdir("f")
    dbx.mkdir("d")
    with pytest.raises(IsADirectoryError):
        dbx.delete("d")  # delete_v2 would take the folder and all in it


def test_a_missing_root_lists_empty_but_has_no_change_feed(fake: Fake) -> None:
    p = fake.provider(root="never/made")
    assert list(p.list("", recursive=True)) == []
    with pytest.raises(NotFound):
        p.changes(None)
    p.close()


def test_options_are_checked() -> None:
    with pytest.raises(UsageError, match="chunk_size"):
        DropboxProvider("x", "", {"chunk_size": "5MiB"})
    with pytest.raises(UsageError, match="page_size"):
        DropboxProvider("x", "", {"page_size": 2001})
    p = DropboxProvider("x", "")
    assert (p.conf["api_url"], p.conf["content_url"]) == (
        "https://api.dropboxapi.com",
        "https://content.dropboxapi.com",
    )
    assert p.oauth.token_url == "https://api.dropboxapi.com/oauth2/token"
    assert p.oauth.authorize_params == {"token_access_type": "offline"}
    assert p.oauth.device_url is None  # Dropbox has none: a headless sign-in pastes the code


# --- throttling ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reason", ["too_many_requests", "too_many_write_operations", None])
def test_throttled_calls_wait_for_retry_after(
    fake: Fake, dbx: DropboxProvider, reason: str | None
) -> None:
    waits: list[float] = []
    dbx.api.sleep = waits.append
    fake.state.throttle(2, reason, retry_after=3)
    dbx.put_stream(stream(b"data"), "f")
    assert waits == [3, 3]
    fake.state.throttle(1, "unavailable", retry_after=1)
    assert dbx.read_bytes("f") == b"data"
    assert waits == [3, 3, 1]


def test_backoff_is_bounded(fake: Fake) -> None:
    p = fake.provider(max_retries=2, max_wait=5)
    waits: list[float] = []
    p.api.sleep = waits.append
    fake.state.throttle(10, "too_many_write_operations", retry_after=300)
    with pytest.raises(Unavailable, match="too_many_write_operations") as err:
        p.put_stream(stream(b"x"), "f")
    assert err.value.retryable
    assert waits == [5, 5]  # capped at max_wait, and given up after max_retries
    p.close()


def test_a_lost_answer_to_an_append_is_not_sent_twice(fake: Fake, dbx: DropboxProvider) -> None:
    data = os.urandom(3 * BLOCK + 5)
    fake.state.lose_answer("files/upload_session/append_v2")
    dbx.put_stream(stream(data), "f")
    appends = [c for c in fake.state.calls if c.endswith("append_v2")]
    assert len(appends) == 3  # the first twice: done, answer lost; then the second
    assert dbx.read_bytes("f") == data


def test_a_damaged_upload_is_refused_by_the_server(fake: Fake, dbx: DropboxProvider) -> None:
    dbx.put_stream(stream(b"old"), "f")
    arg = {"path": "/cdir/f", "mode": "overwrite", "content_hash": content_hash(b"other")}
    with pytest.raises(ApiError, match="content_hash_mismatch"):
        dbx.api.upload("files/upload", arg, b"sent")
    assert dbx.read_bytes("f") == b"old"


# --- tokens -------------------------------------------------------------------------------------
@dataclass
class MemoryStore:
    secrets: dict[str, str]
    saved: list[dict[str, str]] = field(default_factory=list)

    def load(self) -> dict[str, str]:
        return dict(self.secrets)

    def save(self, secrets: dict[str, str]) -> None:
        self.secrets = dict(secrets)
        self.saved.append(dict(secrets))

    def locked(self) -> nullcontext[None]:
        return nullcontext()


def test_an_expired_token_is_refreshed_and_saved(fake: Fake) -> None:
    p = fake.provider()
    store = MemoryStore(dict(p.secrets))
    p.secret_store = store
    p.put_stream(stream(b"before"), "f")
    fake.state.expire_tokens()
    assert p.read_bytes("f") == b"before"
    data = os.urandom(BLOCK + 10)
    fake.state.expire_tokens()
    p.put_stream(stream(data), "g")  # an upload session's request is sent again too
    assert p.read_bytes("g") == data
    assert fake.state.refreshes == 2
    token = Token.from_secret(store.secrets["token"])
    assert token.refresh_token == REFRESH_TOKEN and token.access_token in fake.state.tokens
    p.close()


def test_a_revoked_sign_in_is_an_auth_error(fake: Fake) -> None:
    p = fake.provider()
    p.secrets["token"] = token_secret("nope", "revoked")
    fake.state.expire_tokens()
    with pytest.raises(AuthError, match="sign in again"):
        p.stat("f")
    p.close()


# --- the change feed ------------------------------------------------------------------------------
def test_changes(fake: Fake, dbx: DropboxProvider) -> None:
    dbx.put_stream(stream(b"old"), "keep")
    dbx.put_stream(stream(b"gone"), "d/gone")
    start = dbx.changes(None)
    assert (start.changed, start.deleted, start.reset) == ((), (), False)
    assert dbx.changes(start.cursor).changed == ()
    for i in range(9):  # more than a page of news
        dbx.put_stream(stream(b"new"), f"new/f{i}")
    dbx.delete_tree("d")
    dbx.put_stream(stream(b"newer"), "keep")
    outside = fake.provider(root="elsewhere")
    outside.put_stream(stream(b"x"), "not-ours")
    dbx.put_stream(stream(b"t"), ".cdir-tmp-1-00000000-x")
    batch = dbx.changes(start.cursor)
    assert set(batch.changed) == {"new", "keep", *(f"new/f{i}" for i in range(9))}
    assert batch.deleted == ("d",)
    assert not batch.reset
    quiet = dbx.changes(batch.cursor)
    assert (quiet.changed, quiet.deleted, quiet.reset) == ((), (), False)
    dbx.delete("keep")
    later = dbx.changes(batch.cursor)
    assert (later.changed, later.deleted) == ((), ("keep",))
    outside.close()


def test_an_expired_cursor_resets(fake: Fake, dbx: DropboxProvider) -> None:
    cursor = dbx.changes(None).cursor
    fake.state.reset_cursors()
    batch = dbx.changes(cursor)
    assert batch.reset and batch.cursor != cursor
    dbx.put_stream(stream(b"x"), "after")
    assert dbx.changes(batch.cursor).changed == ("after",)


# --- live ---------------------------------------------------------------------------------------
LIVE_ENV = ("CDIR_DROPBOX_TOKEN", "CDIR_DROPBOX_CLIENT_ID", "CDIR_DROPBOX_ROOT")


@pytest.mark.live
class TestDropboxLive(ProviderSuite):
    """Against a real Dropbox: CDIR_DROPBOX_TOKEN (the JSON token `cdir provider auth` writes),
    CDIR_DROPBOX_CLIENT_ID (the app key) and CDIR_DROPBOX_ROOT (a scratch folder)."""

    large_file_size = 9 * MiB
    hash_functions = HASHES

    @pytest.fixture
    def provider(self) -> Iterator[DropboxProvider]:
        missing = [v for v in LIVE_ENV if not os.environ.get(v)]
        if missing:
            pytest.skip(f"live Dropbox tests need {', '.join(missing)}")
        p = DropboxProvider(
            "live",
            os.environ["CDIR_DROPBOX_ROOT"],
            {"client_id": os.environ["CDIR_DROPBOX_CLIENT_ID"], "page_size": 7},
            {"token": os.environ["CDIR_DROPBOX_TOKEN"]},
        )
        p.create_root()
        yield p
        p.close()
