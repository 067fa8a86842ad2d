"""The onedrive provider against a contract fake of Microsoft Graph (tests/fakes/onedrive.py):
the conformance suite, plus what only OneDrive shows (upload sessions, quickXorHash,
throttling, token refresh, delta, copy monitors, name rules); live tests with credentials."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest

from cdir.errors import AuthError, InvalidPath, NotFound, Unavailable, UsageError
from cdir.providers.oauth import Token
from cdir.providers.onedrive import OneDriveProvider, QuickXor, quickxor_hex
from cdir.providers.onedrive.api import item_url
from cdir.providers.testing import ProviderSuite, kinds, stream
from tests.fakes.onedrive import DRIVE_ID, FILES, GRAPH, FakeGraph

KiB, MiB = 1024, 1024 * 1024
NAMES_REFUSED = 'OneDrive refuses " * : < > ? \\ | in names (a documented gap: not encoded)'


def make(fake: FakeGraph, root: str = "cdir", **options: Any) -> OneDriveProvider:
    """A provider on `fake` (its own subclass carries the fake's transport)."""

    class OnFake(OneDriveProvider):
        transport = fake.transport()

    opts = {"client_id": "app-id", "graph_url": GRAPH, "drive_id": DRIVE_ID, **options}
    token = Token("at-0", "rt-0", None).to_secret()
    p = OnFake("t", root, opts, {"token": token})
    p.graph.sleep = lambda s: None  # copy monitors are polled without waiting
    return p


@pytest.fixture(scope="module")
def shared_fake() -> FakeGraph:
    return FakeGraph()


class TestOneDrive(ProviderSuite):
    large_file_size = 5 * MiB + 3  # above the 4 MiB of a simple PUT: an upload session
    known_gaps = {
        "test_awkward_name[colon]": NAMES_REFUSED,
        "test_awkward_name[question]": NAMES_REFUSED,
        "test_awkward_name[quotes]": NAMES_REFUSED,
        "test_awkward_name[punctuation]": NAMES_REFUSED,
    }
    hash_functions = {**ProviderSuite.hash_functions, "quickxor": quickxor_hex}

    @pytest.fixture
    def provider(self, shared_fake: FakeGraph) -> Iterator[OneDriveProvider]:
        p = make(shared_fake, page_size=7, chunk_size="320KiB")
        p.create_root()
        yield p
        p.close()


@pytest.fixture
def fake() -> FakeGraph:
    return FakeGraph()


@pytest.fixture
def od(fake: FakeGraph) -> Iterator[OneDriveProvider]:
    p = make(fake, chunk_size="640KiB")
    p.create_root()
    yield p
    p.close()


def seen(fake: FakeGraph, start: int = 0) -> list[str]:
    return fake.requests[start:]


# --- quickXorHash -----------------------------------------------------------------------------
def reference_quickxor(data: bytes) -> bytes:
    """The published algorithm, bit by bit: byte i XORed in at bit 11*i mod 160, rotating;
    the length (64 bits, little-endian) XORed into the last 8 bytes."""
    cells = [0] * 20
    for i, byte in enumerate(data):
        bit = i * 11 % 160
        for k in range(8):
            if byte >> k & 1:
                pos = (bit + k) % 160
                cells[pos // 8] ^= 1 << (pos % 8)
    for k, b in enumerate(len(data).to_bytes(8, "little")):
        cells[12 + k] ^= b
    return bytes(cells)


def test_quickxor_known_answers() -> None:
    # published examples (Microsoft's C# snippet gives these): base64 as Graph shows it
    assert base64.b64encode(QuickXor(b"hello world").digest()) == b"aCgDG9jwBhDc4Q1yawMZAAAAAAA="
    assert quickxor_hex(b"") == "00" * 20


@pytest.mark.parametrize("size", [1, 159, 160, 161, 320, 1000, 4099])
def test_quickxor_matches_the_bitwise_reference_in_any_chunking(size: int) -> None:
    data = os.urandom(size)
    want = reference_quickxor(data)
    assert QuickXor(data).digest() == want
    q = QuickXor()
    for start in range(0, size, 7):
        q.update(data[start : start + 7])
    assert q.digest() == want


# --- uploads ----------------------------------------------------------------------------------
def test_small_files_go_in_one_put_large_ones_in_an_upload_session(
    fake: FakeGraph, od: OneDriveProvider
) -> None:
    mark = len(fake.requests)
    od.put_stream(stream(b"small"), "a/small.txt")
    puts = [r for r in seen(fake, mark) if r.startswith("PUT")]
    assert len(puts) == 2 and "/root:/cdir/a/small.txt:/content" in puts[-1]
    assert "conflictBehavior=replace" in puts[-1]
    # the first PUT met a missing parent (404); the folder was made, the PUT sent again
    assert any(r.startswith("POST") and "/children" in r for r in seen(fake, mark))

    data = os.urandom(4 * MiB + 700 * KiB)
    mark = len(fake.requests)
    st = od.put_stream(stream(data), "a/big.bin", len(data), mtime_ns=1_600_000_000_500_000_000)
    requests = seen(fake, mark)
    assert sum("createUploadSession" in r for r in requests) == 1
    fragments = [r for r in requests if r.startswith(f"PUT {FILES}/upload/")]
    assert len(fragments) == -(-len(data) // (640 * KiB))  # 640 KiB: twice 320 KiB
    assert od.read_bytes("a/big.bin") == data
    assert st.hashes["quickxor"] == quickxor_hex(data)
    assert st.mtime_ns == 1_600_000_000_000_000_000  # set in the session's item, to the second
    assert not fake.sessions


def test_a_stream_failing_mid_session_cancels_it(fake: FakeGraph, od: OneDriveProvider) -> None:
    od.put_stream(stream(b"old"), "f")
    with pytest.raises(Exception, match="broke"):
        od.put_stream(stream(os.urandom(6 * MiB), fail=True), "f", 6 * MiB + 1)
    assert any(r.startswith(f"DELETE {FILES}/upload/") for r in fake.requests)
    assert not fake.sessions
    assert od.read_bytes("f") == b"old"


def test_a_fragment_whose_answer_was_lost_is_not_sent_twice(
    fake: FakeGraph, od: OneDriveProvider
) -> None:
    data = os.urandom(5 * MiB)
    fake.drop_after = {fake.fragments + 2}
    od.put_stream(stream(data), "resumed.bin", len(data))
    assert od.read_bytes("resumed.bin") == data
    statuses = [r for r in fake.requests if r.startswith(f"GET {FILES}/upload/")]
    assert len(statuses) == 1  # asked where the session stood once, then went on


def test_unknown_size_over_4_mib_is_spooled_then_sent_in_a_session(
    fake: FakeGraph, od: OneDriveProvider
) -> None:
    data = os.urandom(5 * MiB)
    st = od.put_stream(stream(data), "u.bin")
    assert st.size == len(data) and od.read_bytes("u.bin") == data
    ranges = [r for r in fake.requests if r.startswith(f"PUT {FILES}/upload/")]
    assert len(ranges) == 8  # 5 MiB in 640 KiB fragments


def test_sha_hashes_are_reported_where_graph_gives_them(
    fake: FakeGraph, od: OneDriveProvider
) -> None:
    assert set(od.put_stream(stream(b"x"), "h").hashes) == {"quickxor", "sha1", "sha256", "md5"}
    fake.sha_hashes = False  # OneDrive for Business: quickXorHash only
    assert set(od.stat("h").hashes) == {"quickxor"}


def test_listings_follow_next_links(fake: FakeGraph) -> None:
    od = make(fake, page_size=3)
    od.create_root()
    for i in range(8):
        od.put_stream(stream(b"x"), f"many/f{i}")
    mark = len(fake.requests)
    assert len(list(od.list("many"))) == 8
    pages = seen(fake, mark)
    assert len(pages) == 3 and "%24top=3" in pages[0] and "skiptoken" in pages[-1]


# --- throttling and tokens --------------------------------------------------------------------
def test_throttling_waits_the_retry_after_graph_asks(fake: FakeGraph, od: OneDriveProvider) -> None:
    waits: list[float] = []
    od.graph.sleep = waits.append
    od.put_stream(stream(b"x"), "f")
    fake.throttle = [(429, "3"), (503, "1")]
    assert od.read_bytes("f") == b"x"
    assert waits == [3.0, 1.0]


def test_throttling_is_retried_a_bounded_number_of_times(fake: FakeGraph) -> None:
    od = make(fake, retries=2)
    od.graph.sleep = lambda s: None
    fake.throttle = [(429, "0")] * 3
    with pytest.raises(Unavailable) as err:
        od.stat("")
    assert err.value.retryable and "429" in str(err.value)


class MemoryStore:
    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = dict(secrets)

    def load(self) -> dict[str, str]:
        return dict(self.secrets)

    def save(self, secrets: dict[str, str]) -> None:
        self.secrets = dict(secrets)

    def locked(self) -> AbstractContextManager[None]:
        return nullcontext()


def test_an_expired_token_is_refreshed_saved_and_the_request_retried(
    fake: FakeGraph,
) -> None:
    od = make(fake)
    store = MemoryStore(od.secrets)
    od.secret_store = store
    od.close()  # the next request builds the client with the store
    od.create_root()
    fake.expire_tokens()
    od.put_stream(stream(b"after expiry"), "f")
    assert fake.tokens_issued == 1
    assert Token.from_secret(store.secrets["token"]).access_token == "at-1"
    assert od.read_bytes("f") == b"after expiry"


def test_a_token_past_its_expiry_is_refreshed_before_use(fake: FakeGraph) -> None:
    od = make(fake)
    od.secrets["token"] = Token("at-0", "rt-0", expires_at=1.0).to_secret()
    od.close()
    mark = len(fake.requests)
    od.create_root()
    assert fake.tokens_issued == 1
    assert "/oauth2/v2.0/token" in seen(fake, mark)[0]  # before any Graph request


def test_a_revoked_sign_in_is_an_auth_error(fake: FakeGraph) -> None:
    od = make(fake)
    fake.expire_tokens()
    fake.refresh_tokens.clear()
    with pytest.raises(AuthError, match="cdir provider auth"):
        od.stat("")


# --- copy, move, names ------------------------------------------------------------------------
def test_copy_polls_the_monitor_until_done(fake: FakeGraph, od: OneDriveProvider) -> None:
    fake.copy_polls = 3
    od.put_stream(stream(b"data"), "src")
    mark = len(fake.requests)
    assert od.copy("src", "d/dst").size == 4
    assert sum(r.startswith(f"GET {FILES}/monitor/") for r in seen(fake, mark)) == 4
    assert od.read_bytes("d/dst") == b"data"


def test_copy_and_move_replace_where_conflict_behavior_is_ignored(
    fake: FakeGraph, od: OneDriveProvider
) -> None:
    fake.honour_replace = False  # OneDrive Personal
    for name, data in (("a", b"a"), ("b", b"b"), ("c", b"c")):
        od.put_stream(stream(data), name)
    od.copy("a", "b")
    assert od.read_bytes("b") == b"a"
    od.move("c", "b")
    assert od.read_bytes("b") == b"c" and not od.exists("c")


def test_names_onedrive_refuses_fail_before_any_request(
    fake: FakeGraph, od: OneDriveProvider
) -> None:
    mark = len(fake.requests)
    for name in ("a:b", "what?", "x|y", 'q"', "dot.", "space "):
        with pytest.raises(InvalidPath, match="OneDrive does not allow"):
            od.put_stream(stream(b"x"), f"d/{name}")
    assert seen(fake, mark) == []


def test_case_insensitive_paths_reach_one_file(od: OneDriveProvider) -> None:
    od.put_stream(stream(b"one"), "Dir/File.TXT")
    od.put_stream(stream(b"two"), "dir/file.txt")
    assert kinds(od, "") == {"Dir": "dir"}
    assert od.read_bytes("DIR/FILE.txt") == b"two"


# --- the change feed --------------------------------------------------------------------------
def test_changes_report_paths_below_the_root(fake: FakeGraph, od: OneDriveProvider) -> None:
    od.put_stream(stream(b"1"), "keep/a.txt")
    od.put_stream(stream(b"2"), "gone.txt")
    start = od.changes(None)
    assert (start.changed, start.deleted, start.reset) == ((), (), False)
    outside = make(fake, root="elsewhere")
    outside.create_root()
    outside.put_stream(stream(b"x"), "not-ours.txt")
    od.put_stream(stream(b"3"), "keep/b.txt")
    od.delete("gone.txt")
    od.move("keep/a.txt", "moved/a.txt")
    batch = od.changes(start.cursor)
    assert set(batch.changed) >= {"keep/b.txt", "moved/a.txt"}
    assert "gone.txt" in batch.deleted
    assert not any("not-ours" in p for p in batch.changed)
    assert od.changes(batch.cursor).changed == ()


def test_a_path_deleted_and_made_again_is_a_change(od: OneDriveProvider) -> None:
    od.put_stream(stream(b"1"), "again.txt")
    cursor = od.changes(None).cursor
    od.delete("again.txt")
    od.put_stream(stream(b"2"), "again.txt")
    batch = od.changes(cursor)
    assert (batch.changed, batch.deleted) == (("again.txt",), ())


def test_an_expired_cursor_asks_for_a_full_listing(fake: FakeGraph, od: OneDriveProvider) -> None:
    cursor = od.changes(None).cursor
    od.put_stream(stream(b"x"), "f")
    fake.expire_delta()
    batch = od.changes(cursor)
    assert batch.reset and batch.cursor != cursor
    od.put_stream(stream(b"y"), "g")
    assert od.changes(batch.cursor).changed == ("g",)


def test_business_deletes_without_names_use_known_paths_or_reset(
    fake: FakeGraph, od: OneDriveProvider
) -> None:
    fake.business_deletes = True
    cursor = od.changes(None).cursor
    od.put_stream(stream(b"x"), "seen.txt")
    batch = od.changes(cursor)  # the feed shows seen.txt: its id is remembered
    od.delete("seen.txt")
    after = od.changes(batch.cursor)
    assert after.deleted == ("seen.txt",) and not after.reset
    od.put_stream(stream(b"y"), "never-seen.txt")
    od.delete("never-seen.txt")
    assert od.changes(after.cursor).reset


# --- options and errors -----------------------------------------------------------------------
def test_options() -> None:
    p = OneDriveProvider("o", "", {"client_id": "id"})
    assert p._base == "https://graph.microsoft.com/v1.0/me/drive"
    assert p.oauth_endpoints().token_url.endswith("/common/oauth2/v2.0/token")
    assert "offline_access" in p.oauth_endpoints().scopes
    assert OneDriveProvider.oauth.authorize_url.endswith("/common/oauth2/v2.0/authorize")
    assert OneDriveProvider.oauth_for({"tenant": "consumers"}).token_url == (
        "https://login.microsoftonline.com/consumers/oauth2/v2.0/token"
    )
    q = OneDriveProvider("o", "x", {"client_id": "id", "drive_id": "abc", "tenant": "contoso"})
    assert q._base.endswith("/drives/abc")
    assert q.oauth_endpoints().device_url == (
        "https://login.microsoftonline.com/contoso/oauth2/v2.0/devicecode"
    )
    with pytest.raises(UsageError, match="client_id"):
        OneDriveProvider("o", "", {})
    with pytest.raises(UsageError, match="320 KiB"):
        OneDriveProvider("o", "", {"client_id": "id", "chunk_size": "1MiB"})
    with pytest.raises(UsageError, match="chunk_size"):
        OneDriveProvider("o", "", {"client_id": "id", "chunk_size": "many"})


def test_a_vanished_root_fails_check_and_writes(fake: FakeGraph) -> None:
    od = make(fake, root="never/made")
    assert list(od.list("")) == []
    with pytest.raises(NotFound):
        od.check()
    with pytest.raises(NotFound):
        od.put_stream(stream(b"x"), "a/b")
    assert fake.lookup("never") is None  # a write never creates the root


# --- live -------------------------------------------------------------------------------------
LIVE_ENV = ("CDIR_ONEDRIVE_CLIENT_ID", "CDIR_ONEDRIVE_TOKEN")


@pytest.fixture(scope="module")
def live_provider() -> Iterator[OneDriveProvider]:
    missing = [name for name in LIVE_ENV if not os.environ.get(name)]
    if missing:
        pytest.skip(
            f"set {', '.join(LIVE_ENV)} (and optionally CDIR_ONEDRIVE_CLIENT_SECRET, "
            "CDIR_ONEDRIVE_DRIVE_ID, CDIR_ONEDRIVE_TENANT) to run the live OneDrive tests"
        )
    options = {"client_id": os.environ["CDIR_ONEDRIVE_CLIENT_ID"]}
    for name in ("drive_id", "tenant"):
        if os.environ.get(f"CDIR_ONEDRIVE_{name.upper()}"):
            options[name] = os.environ[f"CDIR_ONEDRIVE_{name.upper()}"]
    secrets = {"token": os.environ["CDIR_ONEDRIVE_TOKEN"]}
    if os.environ.get("CDIR_ONEDRIVE_CLIENT_SECRET"):
        secrets["client_secret"] = os.environ["CDIR_ONEDRIVE_CLIENT_SECRET"]
    p = OneDriveProvider("live", f"cdir-live-{uuid.uuid4().hex[:8]}", options, secrets)
    p.create_root()
    yield p
    p.delete_tree("")
    p.graph.send("DELETE", item_url(p.root), ok=(404,))
    p.close()


@pytest.mark.live
class TestOneDriveLive(TestOneDrive):
    large_file_size = 12 * MiB

    @pytest.fixture
    def provider(self, live_provider: OneDriveProvider) -> OneDriveProvider:
        return live_provider
