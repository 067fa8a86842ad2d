"""The box provider (box-sdk-gen) against a contract fake of the Box API on loopback
(tests/fakes/box.py): the conformance suite, then what only Box shows (ids behind paths,
upload sessions, single-use refresh tokens, 429s, the event stream). Live tests run against
a real Box account when BOX_CLIENT_ID, BOX_CLIENT_SECRET and BOX_TOKEN_FILE are set."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pytest
from box_sdk_gen.networking.fetch_response import FetchResponse

from cdir.errors import AuthError, Conflict, NotFound, Unavailable
from cdir.providers.box import BoxProvider
from cdir.providers.box.client import Retries, boxed
from cdir.providers.box.tree import Node, Tree
from cdir.providers.oauth import Token
from cdir.providers.testing import ProviderSuite, kinds, stream
from tests.fakes.box import FakeBox, Item, make_app
from tests.fakes.serve import serve_asgi

MiB = 1024 * 1024
ROOT = "cdir-tests"
CUTOFF = 20_000_000  # Box's smallest upload session: the suite's 20 MiB file goes in chunks


class DictStore:
    """A SecretStore in memory: what the vault would hold."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = dict(secrets)
        self.saves = 0

    def load(self) -> dict[str, str]:
        return dict(self.secrets)

    def save(self, secrets: dict[str, str]) -> None:
        self.secrets = dict(secrets)
        self.saves += 1

    def locked(self) -> AbstractContextManager[None]:
        return nullcontext()


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeBox, str]]:
    box = FakeBox()
    with serve_asgi(make_app(box)) as url:
        box.base = url
        yield box, url


def token_of(box: FakeBox) -> str:
    return Token(box.access_token, box.refresh_token, time.time() + 3600).to_secret()


def make(
    fake: tuple[FakeBox, str], root: str = ROOT, store: DictStore | None = None, **options: Any
) -> BoxProvider:
    box, url = fake
    opts = {
        "client_id": "cid",
        "api_url": url,
        "upload_url": f"{url}/api",
        "token_url": f"{url}/oauth2/token",
        "page_size": 7,
        "upload_cutoff": CUTOFF,
        **options,
    }
    secrets = store.load() if store else {"client_secret": "shh", "token": token_of(box)}
    return BoxProvider("box", root, opts, secrets, secret_store=store)


@pytest.fixture(scope="module")
def shared(fake: tuple[FakeBox, str]) -> Iterator[BoxProvider]:
    p = make(fake)
    p.create_root()
    yield p
    p.close()


class TestBox(ProviderSuite):
    @pytest.fixture
    def provider(self, shared: BoxProvider) -> BoxProvider:
        return shared


# --- what only Box shows --------------------------------------------------------------------
@pytest.fixture
def p(fake: tuple[FakeBox, str]) -> Iterator[BoxProvider]:
    """A provider of its own (a fresh id cache) below a fresh folder."""
    root = f"{ROOT}/t-{uuid.uuid4().hex[:8]}"
    provider = make(fake, root)
    provider.create_root()
    yield provider
    provider.close()
    top = make(fake)
    top.delete_tree(root.rpartition("/")[2])
    top.close()


def box_item(box: FakeBox, path: str) -> Item:
    """The fake's item at a Box path (case-insensitive, as Box)."""
    node = box.items["0"]
    for name in path.split("/"):
        node = next(i for i in box.children(node) if i.name.casefold() == name.casefold())
    return node


def test_tree_follows_moves_and_remembers_the_gone() -> None:
    tree = Tree()
    tree.fill("", [Node("1", "dir", "A"), Node("2", "file", "b.txt")])
    tree.fill("A", [Node("3", "dir", "A/Sub"), Node("4", "file", "A/x.txt")])
    tree.add(Node("5", "file", "A/Sub/f"))
    assert tree.get("a/SUB/F") == Node("5", "file", "A/Sub/f")  # names fold case, as on Box
    assert tree.listed("a") and not tree.listed("a/sub")
    tree.add(Node("3", "dir", "moved"))  # the folder moved: what was below it is unknown
    assert tree.get("A/Sub") is None and tree.get("A/Sub/f") is None
    assert tree.path_of("3") == "moved" and tree.path_of("5") == "A/Sub/f"  # last seen
    tree.fill("", [Node("1", "dir", "A")])  # a listing without b.txt: gone
    assert tree.get("b.txt") is None and tree.path_of("2") == "b.txt"
    tree.forget("A", stale=True)
    assert tree.get("A") is None and not tree.listed("")


def test_ids_are_cached_per_path(p: BoxProvider, fake: tuple[FakeBox, str]) -> None:
    box, _ = fake
    p.put_stream(stream(b"x"), "a/b/c.txt")
    before = len(box.requests)
    for _ in range(3):
        p.stat("a/b/c.txt")
    # one GET /files/{id} each: no folder listing to find the id again
    assert (
        box.requests[before:] == ["GET /2.0/files/" + box_item(box, f"{p.root}/a/b/c.txt").id] * 3
    )


def test_a_name_taken_behind_our_back_gets_a_new_version(
    p: BoxProvider, fake: tuple[FakeBox, str]
) -> None:
    box, _ = fake
    p.put_stream(stream(b"first"), "dir/one")  # the provider now knows every name in dir
    folder = box_item(box, f"{p.root}/dir")
    other = box.new_file(folder, "Two", b"from another client", None)
    got = p.put_stream(stream(b"ours"), "dir/two")  # 409 item_name_in_use → a new version
    assert p.read_bytes("dir/two") == b"ours"
    assert box_item(box, f"{p.root}/dir/two").id == other.id
    assert got.fingerprint == p.stat("dir/two").fingerprint
    assert sorted(kinds(p, "dir")) == ["dir/one", "dir/two"]


def test_an_id_gone_behind_our_back_is_looked_up_again(
    p: BoxProvider, fake: tuple[FakeBox, str]
) -> None:
    box, _ = fake
    p.put_stream(stream(b"old"), "f")
    item = box_item(box, f"{p.root}/f")
    item.trashed = True  # another client deleted it and wrote a new file there
    box.new_file(box_item(box, p.root), "f", b"new", None)
    assert p.read_bytes("f") == b"new"
    assert p.stat("f").size == 3
    p.put_stream(stream(b"ours"), "f")
    assert p.read_bytes("f") == b"ours"


def test_threads_share_one_provider(p: BoxProvider) -> None:
    # the engine's lanes: parents made at once by several threads (409s) end up as one folder
    def put(i: int) -> None:
        p.put_stream(stream(b"%d" % i), f"new/deeper/f{i}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(16)))
    assert kinds(p, "", recursive=True) == {
        "new": "dir",
        "new/deeper": "dir",
        **{f"new/deeper/f{i}": "file" for i in range(16)},
    }


def test_copy_and_move_replace_a_file_put_there_meanwhile(
    p: BoxProvider, fake: tuple[FakeBox, str]
) -> None:
    box, _ = fake
    p.put_stream(stream(b"ours"), "d/src")  # the provider now knows every name in d
    folder = box_item(box, f"{p.root}/d")
    box.new_file(folder, "copy", b"theirs", None)
    box.new_file(folder, "moved", b"theirs", None)
    p.copy("d/src", "d/copy")  # 409 item_name_in_use: theirs goes to the trash
    p.move("d/src", "d/moved")
    assert (p.read_bytes("d/copy"), p.read_bytes("d/moved")) == (b"ours", b"ours")
    assert sorted(kinds(p, "d")) == ["d/copy", "d/moved"]


def test_check_needs_the_root(fake: tuple[FakeBox, str]) -> None:
    missing = make(fake, f"{ROOT}/absent-{uuid.uuid4().hex[:8]}")
    assert list(missing.list("")) == []  # a root not made yet lists empty…
    with pytest.raises(NotFound, match="root folder"):
        missing.check()  # …but is no provider to use
    with pytest.raises(NotFound, match="root folder"):
        missing.put_stream(stream(b"x"), "f")  # and a write does not make it


def test_chunked_upload_sends_parts_with_digests(p: BoxProvider, fake: tuple[FakeBox, str]) -> None:
    box, _ = fake
    data = os.urandom(CUTOFF + 1)
    before = len(box.requests)
    got = p.put_stream(stream(data), "big.bin", mtime_ns=1_600_000_000_123_456_789)
    sent = box.requests[before:]
    assert sum(r.startswith("PUT /api/2.0/files/upload_sessions/") for r in sent) == 3
    assert sum(r.endswith("/commit") for r in sent) == 1
    assert got.hashes == {
        "sha1": hashlib.sha1(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
    }
    assert got.mtime_ns == 1_600_000_000 * 10**9  # content_modified_at, to the second
    # a new version goes through a session of the existing file; a 202 commit is retried
    box.commit_pending(1)
    again = p.put_stream(stream(data[::-1]), "big.bin")
    assert again.fingerprint != got.fingerprint
    assert p.read_bytes("big.bin", CUTOFF - 5) == data[::-1][-6:]
    assert any(
        r.endswith(f"/{box_item(box, f'{p.root}/big.bin').id}/upload_sessions")
        for r in box.requests[before:]
    )
    assert not box.sessions  # committed sessions are closed


def test_a_failed_chunked_upload_aborts_its_session(
    p: BoxProvider, fake: tuple[FakeBox, str]
) -> None:
    box, _ = fake
    p.put_stream(stream(b"old"), "big.bin")
    box.broken_parts = True
    try:
        with pytest.raises(Conflict, match="412 precondition_failed"):
            p.put_stream(stream(os.urandom(CUTOFF)), "big.bin")
    finally:
        box.broken_parts = False
    assert not box.sessions  # aborted, not left for Box to expire
    assert p.read_bytes("big.bin") == b"old"


def test_throttling_is_waited_out(p: BoxProvider, fake: tuple[FakeBox, str]) -> None:
    box, _ = fake
    p.put_stream(stream(b"x"), "f")
    box.throttle(2)
    assert p.stat("f").size == 1
    stubborn = make(fake, p.root, attempts=2)
    box.throttle(5)
    try:
        with pytest.raises(Unavailable, match="429 rate_limit_exceeded") as caught:
            stubborn.stat("f")
        assert caught.value.retryable
        # a wait longer than max_wait is reported at once, for the caller's own backoff
        box._throttle.clear()
        box.throttle(1, retry_after="3600")
        before = len(box.requests)
        with pytest.raises(Unavailable, match="429"):
            p.stat("f")
        assert len(box.requests) == before + 1
    finally:
        box._throttle.clear()
        stubborn.close()


def test_refresh_tokens_are_single_use_and_saved(fake: tuple[FakeBox, str]) -> None:
    box, _ = fake
    store = DictStore({"client_secret": "shh", "token": token_of(box)})
    spent = box.refresh_token
    p = make(fake, store=store)
    try:
        for _ in range(2):
            box.expire_token()
            list(p.list(""))  # a 401, a refresh, the request again
            saved = Token.from_secret(store.secrets["token"])
            assert (saved.access_token, saved.refresh_token) == (
                box.access_token,
                box.refresh_token,
            )
        assert store.saves == 2
    finally:
        p.close()
    # a refresh token once used is dead: a provider still holding it must sign in again
    box.expire_token()
    old = make(fake, store=DictStore({"token": Token("gone", spent, None).to_secret()}))
    with pytest.raises(AuthError, match="sign"):
        list(old.list(""))
    # one started from the saved secrets refreshes with the newest and works
    make(fake, store=store).check()


def test_errors_carry_box_codes(p: BoxProvider) -> None:
    # Box's error body ({"type": "error", "status", "code", "message"}) in one line
    with pytest.raises(NotFound, match=r"^box:/x: 404 not_found: Not Found$"), boxed("box:/x"):
        p.client().files.get_file_by_id("999999")
    with pytest.raises(NotFound, match="no such file"):
        p.read_bytes("never/was")


def test_retry_after_is_obeyed_in_any_spelling_up_to_max_wait() -> None:
    retries = Retries(attempts=5, max_wait=60.0)
    for name in ("Retry-After", "retry-after"):
        answer = FetchResponse(status=429, headers={name: "7"})
        assert retries.should_retry(None, answer, 1)
        assert retries.retry_after(None, answer, 1) == 7.0
    too_long = FetchResponse(status=429, headers={"retry-after": "3600"})
    assert not retries.should_retry(None, too_long, 1)  # reported, not waited out
    expired = FetchResponse(status=401, headers={})
    assert retries.retry_after(None, expired, 1) == 0.0  # after a refresh: at once


def test_listings_page_with_markers(p: BoxProvider, fake: tuple[FakeBox, str]) -> None:
    box, _ = fake
    for i in range(15):
        p.put_stream(stream(b"x"), f"many/f{i:02d}")
    before = len(box.requests)
    assert len(kinds(p, "many")) == 15
    folder = box_item(box, f"{p.root}/many")
    assert box.requests[before:] == [f"GET /2.0/folders/{folder.id}/items"] * 3  # 7 + 7 + 1


def test_changes(p: BoxProvider, fake: tuple[FakeBox, str]) -> None:
    box, _ = fake
    p.put_stream(stream(b"before"), "old.txt")
    start = p.changes(None)
    assert (start.changed, start.deleted) == ((), ())
    p.put_stream(stream(b"1"), "a/new.txt")
    p.put_stream(stream(b"2"), "old.txt")
    p.copy("old.txt", "copied.txt")
    p.move("a/new.txt", "b/moved.txt")
    p.delete("old.txt")
    outside = box.items["0"]
    box.new_file(outside, f"elsewhere-{uuid.uuid4().hex[:6]}", b"not ours", None)
    batch = p.changes(start.cursor)
    assert not batch.reset
    assert set(batch.changed) == {"a", "b", "copied.txt", "b/moved.txt"}
    assert set(batch.deleted) == {"old.txt", "a/new.txt"}
    assert p.changes(batch.cursor).changed == ()
    # an item we never saw leaves: it cannot be placed, so the caller must list everything
    stranger = box.new_file(box_item(box, p.root), "stranger", b"?", None)
    cursor = p.changes(None).cursor
    box.items[stranger.id].trashed = True
    box.event("ITEM_TRASH", box.items[stranger.id])
    assert p.changes(cursor).reset


# --- live -----------------------------------------------------------------------------------
LIVE_VARS = ("BOX_CLIENT_ID", "BOX_CLIENT_SECRET", "BOX_TOKEN_FILE")


class FileStore(DictStore):
    """The token in a JSON file ({"token": ...}), written back after each refresh: Box
    refresh tokens are single-use, so the next live run needs the newest one."""

    def __init__(self, path: Path) -> None:
        super().__init__({"token": json.loads(path.read_text())["token"]})
        self.path = path

    def save(self, secrets: dict[str, str]) -> None:
        super().save(secrets)
        self.path.write_text(json.dumps({"token": secrets["token"]}))


@pytest.fixture(scope="module")
def live_provider() -> Iterator[BoxProvider]:
    missing = [v for v in LIVE_VARS if not os.environ.get(v)]
    if missing:
        pytest.skip(
            f"live Box tests need {', '.join(missing)} "
            '(BOX_TOKEN_FILE: a JSON file {"token": <the token JSON>}, rewritten on refresh)'
        )
    store = FileStore(Path(os.environ["BOX_TOKEN_FILE"]))
    root = os.environ.get("BOX_ROOT", "cdir-live-tests")
    p = BoxProvider(
        "box-live",
        root,
        {"client_id": os.environ["BOX_CLIENT_ID"]},
        {"client_secret": os.environ["BOX_CLIENT_SECRET"], **store.load()},
        secret_store=store,
    )
    p.create_root()
    yield p
    p.close()


@pytest.mark.live
class TestBoxLive(ProviderSuite):
    large_file_size = 21 * MiB  # above Box's 20 MB minimum for upload sessions

    @pytest.fixture
    def provider(self, live_provider: BoxProvider) -> BoxProvider:
        return live_provider
