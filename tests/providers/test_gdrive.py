"""The gdrive provider against a contract fake of the Drive v3 API (tests/fakes/gdrive.py): the
conformance suite, plus what only Drive shows (duplicate names, Google Docs, resumable uploads,
throttling, token renewal, trash, shared drives, the change feed). Live tests run against a
real account when GDRIVE_CLIENT_ID and GDRIVE_TOKEN are set (and `-m live`)."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cdir.errors import AuthError, Conflict, NotFound, Unavailable, Unsupported, UsageError
from cdir.providers.gdrive import GDriveProvider
from cdir.providers.gdrive.provider import drive_time
from cdir.providers.oauth import Token
from cdir.providers.testing import ProviderSuite, kinds, stream
from tests.fakes.gdrive import CLIENT_ID, MY_DRIVE, FakeDrive
from tests.fakes.serve import serve_asgi
from tests.providers.helpers import assert_bad_sources_change_nothing

KiB = 1024
ROOT = "cdir-tests"


@pytest.fixture(scope="module")
def fake() -> FakeDrive:
    return FakeDrive(max_page=5)


@pytest.fixture(scope="module")
def url(fake: FakeDrive) -> Iterator[str]:
    with serve_asgi(fake.app()) as base:
        yield base


def make(url: str, root: str = ROOT, token: str = "access-0", **options: Any) -> GDriveProvider:
    opts = {
        "api_url": url,
        "token_url": f"{url}/token",
        "client_id": CLIENT_ID,
        "page_size": 7,
        "chunk_size": "256KiB",
        "upload_cutoff": "256KiB",
        "backoff": 0.001,
        **options,
    }
    secrets = {"token": Token(token, "refresh-0", None).to_secret()}
    return GDriveProvider("gd", root, opts, secrets)


@pytest.fixture
def gd(url: str) -> Iterator[GDriveProvider]:
    p = make(url)
    p.create_root()
    yield p
    p.close()


class TestGDrive(ProviderSuite):
    large_file_size = 3 * 1024 * KiB + 7  # twelve chunks and a bit

    @pytest.fixture
    def provider(self, gd: GDriveProvider) -> GDriveProvider:
        return gd


def fresh() -> str:
    """A new directory name below the root, for one test."""
    return f"t-{uuid.uuid4().hex[:10]}"


# --- Drive's own behaviour ---------------------------------------------------------------------
def test_two_files_of_one_name_are_an_error_naming_both(
    gd: GDriveProvider, fake: FakeDrive
) -> None:
    base = fresh()
    mine = gd.put_stream(stream(b"mine"), f"{base}/same.txt")
    folder = fake.find(f"{ROOT}/{base}").id
    other = fake.add(folder, "same.txt", "text/plain", b"another client's")
    first = fake.find(f"{ROOT}/{base}/same.txt").id
    for op in (
        lambda: gd.stat(f"{base}/same.txt"),
        lambda: gd.read_bytes(f"{base}/same.txt"),
        lambda: gd.put_stream(stream(b"x"), f"{base}/same.txt"),
        lambda: list(gd.list(base)),
    ):
        with pytest.raises(Conflict) as err:
            op()
        assert first in str(err.value) and other in str(err.value)
    assert mine.size == 4


def test_google_docs_are_skipped_with_a_warning(
    gd: GDriveProvider, fake: FakeDrive, caplog: pytest.LogCaptureFixture
) -> None:
    base = fresh()
    gd.put_stream(stream(b"data"), f"{base}/real.bin")
    folder = fake.find(f"{ROOT}/{base}").id
    fake.add(folder, "Notes", "application/vnd.google-apps.document")
    with caplog.at_level(logging.WARNING):
        assert kinds(gd, base) == {f"{base}/real.bin": "file"}
    assert "Notes" in caplog.text and "Google Docs" in caplog.text
    with pytest.raises(Unsupported, match="Google Docs"):
        gd.read_bytes(f"{base}/Notes")


def test_small_files_go_multipart_large_ones_resumable(gd: GDriveProvider, fake: FakeDrive) -> None:
    base = fresh()
    gd.put_stream(stream(b"small"), f"{base}/small")
    uploads = [r for r in fake.requests if r.startswith("POST /upload/")]
    assert "uploadType=multipart" in uploads[-1]
    data = os.urandom(600 * KiB)
    before = len(fake.requests)
    got = gd.put_stream(stream(data), f"{base}/big", size=None)
    sent = fake.requests[before:]
    assert any("uploadType=resumable" in r for r in sent)
    assert sum(r.startswith("PUT /upload/") for r in sent) == 3  # 256 + 256 + 88 KiB
    assert got.hashes["md5"] == hashlib.md5(data).hexdigest()
    assert gd.read_bytes(f"{base}/big") == data


@pytest.mark.parametrize("size", [512 * KiB, 512 * KiB + 1, 257 * KiB])
@pytest.mark.parametrize("known_size", [True, False])
def test_resumable_sizes(gd: GDriveProvider, size: int, known_size: bool) -> None:
    # a stream ending on a chunk boundary: the last chunk must still carry the total
    data = os.urandom(size)
    got = gd.put_stream(stream(data), f"{fresh()}/f", len(data) if known_size else None)
    assert (got.size, got.hashes["md5"]) == (size, hashlib.md5(data).hexdigest())


def test_bad_sources_leave_the_old_version(gd: GDriveProvider) -> None:
    path = f"{fresh()}/f"
    gd.put_stream(stream(b"old"), path)
    assert_bad_sources_change_nothing(gd, path, b"old")  # resumable: above upload_cutoff


def test_a_token_expiring_mid_upload_is_renewed(gd: GDriveProvider, fake: FakeDrive) -> None:
    data = os.urandom(1024 * KiB)
    before = fake.refreshes
    fake.expire_tokens(after=3)  # a few chunks in
    got = gd.put_stream(stream(data), f"{fresh()}/f", len(data))
    assert got.hashes["md5"] == hashlib.md5(data).hexdigest()
    assert fake.refreshes == before + 1


def test_a_folder_removed_by_another_client_is_forgotten(
    gd: GDriveProvider, fake: FakeDrive
) -> None:
    base = fresh()
    gd.put_stream(stream(b"x"), f"{base}/d/f")  # the folder IDs are now cached
    fake.remove(f"{ROOT}/{base}/d")
    with pytest.raises(Conflict) as err:
        gd.put_stream(stream(b"y"), f"{base}/d/g")
    assert err.value.retryable
    gd.put_stream(stream(b"y"), f"{base}/d/g")  # made again
    assert kinds(gd, f"{base}/d") == {f"{base}/d/g": "file"}


def test_parallel_writes_make_each_folder_once(gd: GDriveProvider) -> None:
    base = fresh()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: gd.put_stream(stream(b"x"), f"{base}/a/b/f{i}"), range(16)))
    assert kinds(gd, base, recursive=True) == {
        f"{base}/a": "dir",
        f"{base}/a/b": "dir",
        **{f"{base}/a/b/f{i}": "file" for i in range(16)},
    }  # `listing` fails on a name listed twice


def test_new_version_keeps_the_file_id(gd: GDriveProvider, fake: FakeDrive) -> None:
    base = fresh()
    gd.put_stream(stream(b"one"), f"{base}/f")
    first = fake.find(f"{ROOT}/{base}/f").id
    gd.put_stream(stream(os.urandom(300 * KiB)), f"{base}/f")  # resumable, over the file
    assert fake.find(f"{ROOT}/{base}/f").id == first


def test_a_failed_chunk_resumes_where_the_session_got(gd: GDriveProvider, fake: FakeDrive) -> None:
    base = fresh()
    data = os.urandom(1024 * KiB + 3)
    fake.break_chunks(2)
    got = gd.put_stream(stream(data), f"{base}/f", size=len(data))
    assert got.hashes["md5"] == hashlib.md5(data).hexdigest()
    assert gd.read_bytes(f"{base}/f") == data


def test_throttling_is_retried_honouring_retry_after(url: str, fake: FakeDrive) -> None:
    p = make(url)
    waits: list[float] = []
    p._api.sleep = waits.append
    p.create_root()
    fake.throttle(2, status=429, retry_after="3")
    assert list(p.list("")) is not None
    assert waits == [3.0, 3.0]
    waits.clear()
    fake.throttle(3, status=403)  # userRateLimitExceeded, no Retry-After: exponential
    with pytest.raises(NotFound):
        p.stat("nothing")
    assert len(waits) == 3 and waits[0] < waits[2]
    assert all(w <= 0.001 * 2**i * 2 for i, w in enumerate(waits))
    p.close()


def test_throttling_beyond_the_retries_is_unavailable(url: str, fake: FakeDrive) -> None:
    p = make(url, retries=1)
    p._api.sleep = lambda s: None
    p.create_root()
    fake.throttle(2, status=403)
    with pytest.raises(Unavailable) as err:
        p.stat("anything")
    assert err.value.retryable and "userRateLimitExceeded" in str(err.value)
    p.close()


def test_other_403s_are_not_retried(url: str, fake: FakeDrive) -> None:
    p = make(url)
    p.create_root()
    fake.fail_next(403, "insufficientFilePermissions", "The user does not have permission.")
    with pytest.raises(AuthError):
        p.stat("x")
    p.close()


def test_an_expired_token_is_refreshed(url: str, fake: FakeDrive) -> None:
    p = make(url)
    p.create_root()
    fake.expire_tokens()
    before = fake.refreshes
    p.put_stream(stream(b"after refresh"), "refreshed.txt")
    assert p.read_bytes("refreshed.txt") == b"after refresh"
    assert fake.refreshes == before + 1
    p.close()


def test_a_revoked_sign_in_is_an_auth_error(url: str, fake: FakeDrive) -> None:
    p = make(url, token="not-valid", client_id="someone-else")
    with pytest.raises(AuthError):
        p.check()
    p.close()


def test_delete_trashes_unless_told_not_to(url: str, gd: GDriveProvider, fake: FakeDrive) -> None:
    base = fresh()
    gd.put_stream(stream(b"x"), f"{base}/trashed")
    kept = fake.find(f"{ROOT}/{base}/trashed").id
    gd.delete(f"{base}/trashed")
    assert fake.files[kept].trashed
    hard = make(url, trash=False)
    hard.put_stream(stream(b"x"), f"{base}/gone")
    gone = fake.find(f"{ROOT}/{base}/gone").id
    hard.delete(f"{base}/gone")
    assert gone not in fake.files
    hard.close()


def test_move_is_one_update_with_add_and_remove_parents(
    gd: GDriveProvider, fake: FakeDrive
) -> None:
    base = fresh()
    gd.put_stream(stream(b"x"), f"{base}/a/f")
    gd.mkdir(f"{base}/b")
    before = len(fake.requests)
    gd.move(f"{base}/a/f", f"{base}/b/g")
    patches = [r for r in fake.requests[before:] if r.startswith("PATCH")]
    assert len(patches) == 1 and "addParents" in patches[0] and "removeParents" in patches[0]
    assert gd.read_bytes(f"{base}/b/g") == b"x"


def test_copy_keeps_the_mtime(gd: GDriveProvider) -> None:
    base = fresh()
    gd.put_stream(stream(b"x"), f"{base}/src", mtime_ns=1_600_000_000_123_000_000)
    got = gd.copy(f"{base}/src", f"{base}/dst")
    assert got.mtime_ns == 1_600_000_000_123_000_000


def test_shared_drive(url: str, fake: FakeDrive) -> None:
    drive = fake.add_shared_drive()
    p = make(url, drive_id=drive)
    p.create_root()
    start = p.changes(None)
    p.put_stream(stream(b"team data"), "d/f.txt")
    assert set(p.changes(start.cursor).changed) == {"d", "d/f.txt"}
    assert kinds(p, "", recursive=True) == {"d": "dir", "d/f.txt": "file"}
    assert p.read_bytes("d/f.txt") == b"team data"
    assert fake.find(f"{ROOT}/d/f.txt", base=drive).drive == drive
    mine = make(url)  # My Drive does not see the shared drive's files
    with pytest.raises(NotFound):
        mine.stat("d/f.txt")
    p.close()
    mine.close()


def test_changes(url: str, gd: GDriveProvider, fake: FakeDrive) -> None:
    base = fresh()
    gd.put_stream(stream(b"x"), f"{base}/old")
    gd.put_stream(stream(b"x"), f"{base}/moving")
    other = make(url)  # another process: it knows paths only from what it listed
    list(other.list(base))
    start = other.changes(None)
    assert (start.changed, start.deleted) == ((), ())
    gd.put_stream(stream(b"new"), f"{base}/new")
    gd.delete(f"{base}/old")
    gd.move(f"{base}/moving", f"{base}/moved")
    fake.add(MY_DRIVE, "outside-the-root.txt", "text/plain", b"x")
    batch = other.changes(start.cursor)
    assert set(batch.changed) == {f"{base}/new", f"{base}/moved"}
    assert set(batch.deleted) == {f"{base}/old", f"{base}/moving"}
    again = other.changes(batch.cursor)
    assert (again.changed, again.deleted, again.reset) == ((), (), False)
    # a process that listed nothing maps changes to paths by their parents; trashed is deleted
    third = make(url)
    assert set(third.changes(start.cursor).deleted) == {f"{base}/old"}
    gd.put_stream(stream(b"y"), f"{base}/later")
    fake.expire_changes()  # the cursor is now older than Drive keeps
    assert other.changes(batch.cursor).reset
    other.close()
    third.close()


def test_changes_elsewhere_cost_no_walk_twice(gd: GDriveProvider, fake: FakeDrive) -> None:
    start = gd.changes(None)
    elsewhere = fake.add(MY_DRIVE, f"elsewhere-{fresh()}", "application/vnd.google-apps.folder")
    for i in range(3):
        fake.add(elsewhere, f"f{i}", "text/plain", b"x")
    before = len(fake.requests)
    batch = gd.changes(start.cursor)
    assert (batch.changed, batch.deleted) == ((), ())
    gets = [r for r in fake.requests[before:] if r.startswith("GET /drive/v3/files/")]
    assert len(gets) == 1  # My Drive's root, once: then the folder is known to be outside
    # moved into the root, the folder is seen again
    with fake.lock:
        fake.update(elsewhere, {"addParents": fake.find(ROOT).id, "removeParents": MY_DRIVE}, {})
    moved = gd.changes(batch.cursor)
    assert [p for p in moved.changed if p.startswith("elsewhere-")] != []


def test_changes_span_pages(gd: GDriveProvider) -> None:
    base = fresh()
    start = gd.changes(None)
    for i in range(12):
        gd.put_stream(stream(b"x"), f"{base}/f{i}")
    batch = gd.changes(start.cursor)
    assert {f"{base}/f{i}" for i in range(12)} <= set(batch.changed)


def test_mtimes_are_sent_in_milliseconds() -> None:
    assert drive_time(1_600_000_000_123_456_789) == "2020-09-13T12:26:40.123Z"
    assert drive_time(0) == "1970-01-01T00:00:00.000Z"


def test_bad_options_are_refused(url: str) -> None:
    with pytest.raises(UsageError, match="chunk_size"):
        make(url, chunk_size="300KiB")
    p = make(url, client_id="")
    with pytest.raises(UsageError, match="client_id"):
        p.check()


# --- live ---------------------------------------------------------------------------------------
LIVE_ENV = ("GDRIVE_CLIENT_ID", "GDRIVE_TOKEN")


@pytest.fixture(scope="module")
def live() -> Iterator[GDriveProvider]:
    missing = [v for v in LIVE_ENV if not os.environ.get(v)]
    if missing:
        pytest.skip(
            f"live Google Drive tests need {', '.join(missing)} "
            "(and optionally GDRIVE_CLIENT_SECRET, GDRIVE_ROOT, GDRIVE_DRIVE_ID)"
        )
    opts = {"client_id": os.environ["GDRIVE_CLIENT_ID"], "page_size": 7}
    if os.environ.get("GDRIVE_DRIVE_ID"):
        opts["drive_id"] = os.environ["GDRIVE_DRIVE_ID"]
    secrets = {"token": os.environ["GDRIVE_TOKEN"]}
    if os.environ.get("GDRIVE_CLIENT_SECRET"):
        secrets["client_secret"] = os.environ["GDRIVE_CLIENT_SECRET"]
    p = GDriveProvider("live", os.environ.get("GDRIVE_ROOT", "cdir-live-tests"), opts, secrets)
    p.create_root()
    yield p
    p.close()


@pytest.mark.live
class TestGDriveLive(ProviderSuite):
    large_file_size = 12 * 1024 * KiB

    @pytest.fixture
    def provider(self, live: GDriveProvider) -> GDriveProvider:
        return live


@pytest.mark.live
def test_live_changes(live: GDriveProvider) -> None:
    base = f"live-{uuid.uuid4().hex[:8]}"
    start = live.changes(None)
    live.put_stream(stream(b"x"), f"{base}/f")
    try:
        assert f"{base}/f" in live.changes(start.cursor).changed
    finally:
        live.delete_tree(base)
