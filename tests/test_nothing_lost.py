"""The core loses nothing: the cases of the tracker's "nothing lost" issue that a command
run in-process shows (real signals and concurrent processes: test_faults.py, test_stress.py).
Each asserts the user-visible message."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_tree


@pytest.fixture
def two(cli: Any, tmp_path: Path) -> Any:
    """The CLI with two local providers, laptop and archive."""
    for name in ("laptop", "archive"):
        r = cli("provider", "add", name, "--kind", "local", "--root", str(tmp_path / name))
        assert r.code == 0, r.err
    return cli


def replicas(cli: Any, path: str) -> dict[str, str]:
    [entry] = json.loads(cli("status", path, "-o", "json").out)
    return {r["provider"]: r["state"] for r in entry["replicas"]}


def test_reads_of_local_only_files_need_no_vault(
    two: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 7: a provider with secrets exists, but a read from a local one never opens the
    vault, so a wrong passphrase does not matter."""
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    add = two(
        "provider",
        "add",
        "s3x",
        "--kind",
        "s3",
        "--root",
        "b",
        "-O",
        "endpoint_url=http://127.0.0.1:1",
        "-S",
        f"secret_access_key=@{key}",
        "--no-check",
    )
    assert add.code == 0, add.err
    make_tree(tmp_path / "src", {"f.txt": "local only"})
    assert two("put", str(tmp_path / "src/f.txt"), "/f.txt", "--to", "laptop").code == 0
    monkeypatch.setenv("CDIR_VAULT_PASSPHRASE", "wrong")
    r = two("get", "/f.txt", str(tmp_path / "out.txt"), "--from", "laptop")
    assert (r.code, r.err) == (0, "")
    assert (tmp_path / "out.txt").read_text() == "local only"


def test_a_replica_deleted_behind_cdirs_back_is_marked_and_repaired(
    two: Any, tmp_path: Path
) -> None:
    """Case 10: get --from names it by provider and virtual path and marks it missing; a
    plain get reads the other replica; replicate and put bring it back."""
    make_tree(tmp_path / "src", {"d/f.txt": "payload", "d/g.txt": "other"})
    assert two("put", f"{tmp_path}/src/d/", "/d", "-r").code == 0
    (tmp_path / "laptop/d/f.txt").unlink()
    r = two("get", "/d/f.txt", str(tmp_path / "a.txt"), "--from", "laptop")
    assert r.code == 1
    assert "cdir: error: laptop:/d/f.txt: the replica is missing (marked)\n" in r.err
    assert "/tmp" not in r.err.split("laptop:/d/f.txt")[1]  # no local or temporary path
    assert replicas(two, "/d/f.txt") == {"archive": "current", "laptop": "missing"}
    assert two("get", "/d/f.txt", str(tmp_path / "b.txt")).code == 0
    assert (tmp_path / "b.txt").read_text() == "payload"
    rep = two("replicate", "/d", "-r", "--to", "laptop", "-o", "json")
    assert rep.code == 0 and json.loads(rep.out)["files"] == 1  # only the missing one
    assert (tmp_path / "laptop/d/f.txt").read_text() == "payload"
    assert replicas(two, "/d/f.txt") == {"archive": "current", "laptop": "current"}


def test_a_put_again_repairs_a_replica_marked_missing(two: Any, tmp_path: Path) -> None:
    """Case 10 with put: once a read marked laptop's replica missing, the same put again
    writes that file to laptop only (the other replica and file are skipped)."""
    make_tree(tmp_path / "src", {"d/f.txt": "payload", "d/g.txt": "other"})
    assert two("put", f"{tmp_path}/src/d/", "/d", "-r").code == 0
    (tmp_path / "laptop/d/f.txt").unlink()
    assert two("get", "/d/f.txt", str(tmp_path / "a.txt"), "--from", "laptop").code == 1
    again = two("put", f"{tmp_path}/src/d/", "/d", "-r", "-o", "json")
    assert again.code == 0, again.err
    rep = json.loads(again.out)
    assert (rep["files"], rep["skipped"], rep["providers"]["laptop"]["files"]) == (1, 1, 1)
    assert "archive" not in rep["providers"] or rep["providers"]["archive"]["files"] == 0
    assert (tmp_path / "laptop/d/f.txt").read_text() == "payload"
    assert replicas(two, "/d/f.txt") == {"archive": "current", "laptop": "current"}


def test_replicate_finds_a_replica_missing_without_a_read_first(two: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"d/f.txt": "payload"})
    assert two("put", f"{tmp_path}/src/d/", "/d", "-r").code == 0
    (tmp_path / "laptop/d/f.txt").unlink()
    assert two("replicate", "/d/f.txt", "--to", "laptop").code == 0
    assert (tmp_path / "laptop/d/f.txt").read_text() == "payload"


def test_a_replica_replaced_by_same_size_bytes_is_not_delivered(two: Any, tmp_path: Path) -> None:
    """Case 12 on a local provider (no hash known: the fingerprint tells): get --from fails
    naming the provider, the replica goes stale, a plain get returns the real bytes."""
    make_tree(tmp_path / "src", {"f.txt": "the real content"})
    assert two("put", str(tmp_path / "src/f.txt"), "/f.txt").code == 0
    (tmp_path / "laptop/f.txt").write_text("the FAKE content")  # same size
    r = two("get", "/f.txt", str(tmp_path / "a.txt"), "--from", "laptop")
    assert r.code == 1
    assert "cdir: error: laptop:/f.txt: the replica changed outside cdir" in r.err
    assert not (tmp_path / "a.txt").exists()
    assert replicas(two, "/f.txt")["laptop"] == "stale"
    assert two("get", "/f.txt", str(tmp_path / "b.txt")).code == 0
    assert (tmp_path / "b.txt").read_text() == "the real content"


def test_a_failed_delete_stays_visible_and_the_next_rm_retries_it(two: Any, tmp_path: Path) -> None:
    """Case 5: the entry is kept (a tombstone with the replica in state error) until every
    provider confirmed the delete; status shows it; a second rm retries it."""
    make_tree(tmp_path / "src", {"f.txt": "x"})
    assert two("put", str(tmp_path / "src/f.txt"), "/f.txt").code == 0
    stuck = tmp_path / "laptop/f.txt"
    stuck.unlink()
    stuck.mkdir()  # laptop's delete of a file there now fails
    r = two("rm", "/f.txt")
    assert r.code == 1 and "cdir: error: laptop:/f.txt:" in r.err
    st = two("status", "/", "-o", "json")
    [entry] = json.loads(st.out)
    assert entry["deleted"] is True and entry["path"] == "/f.txt"
    assert {x["provider"]: x["state"] for x in entry["replicas"]} == {"laptop": "error"}
    assert "/f.txt (removed)" in two("status", "/").out
    assert two("ls", "/").out == ""
    stuck.rmdir()
    again = two("rm", "/f.txt")
    assert again.code == 0, again.err
    assert json.loads(two("status", "/", "-o", "json").out) == []
    assert two("rm", "/f.txt").err == "cdir: error: no such file or directory: /f.txt\n"


def test_scan_does_not_bring_back_a_file_whose_rm_failed(
    two: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 16: a file whose delete failed on laptop is still there; a `scan laptop` (as after
    re-pinning a host key) leaves it out and says why, and the next rm finishes the job."""
    from cdir.errors import ProviderError
    from cdir.providers.local import LocalProvider

    make_tree(tmp_path / "src", {"f.txt": "x"})
    assert two("put", str(tmp_path / "src/f.txt"), "/f.txt").code == 0
    real_delete = LocalProvider.delete

    def failing(self: LocalProvider, path: str) -> None:
        if self.name == "laptop":
            raise ProviderError(f"{self.name}:/{path}: refused")
        real_delete(self, path)

    with monkeypatch.context() as m:
        m.setattr(LocalProvider, "delete", failing)
        assert two("rm", "/f.txt").code == 1
    scan = two("scan", "laptop")
    assert scan.code == 0, scan.err
    assert scan.err == (
        "cdir: skipped: laptop:/f.txt: left out, it was removed (finish with `cdir rm /f.txt`)\n"
    )
    assert two("ls", "/").out == ""
    assert replicas(two, "/") == {"laptop": "error"}
    assert two("rm", "/f.txt").code == 0
    assert not (tmp_path / "laptop/f.txt").exists()


def test_a_put_that_lands_nowhere_leaves_the_catalog_as_it_was(two: Any, tmp_path: Path) -> None:
    """Case 14: no directory is created when no file landed."""
    make_tree(tmp_path / "src", {"a/b/f.txt": "x"})
    shutil.rmtree(tmp_path / "laptop")  # the only target vanished
    r = two("put", f"{tmp_path}/src/a", "/new/tree", "-r", "--to", "laptop")
    assert r.code == 1
    assert "root" in r.err and "is missing (an unmounted disk?); not recreated" in r.err
    assert two("ls", "/").out == ""
    assert not (tmp_path / "laptop").exists()


def test_a_vanished_root_is_a_fault_and_the_other_provider_still_gets_the_file(
    two: Any, tmp_path: Path
) -> None:
    """Case 9: never recreated; the replica there is an error saying why."""
    make_tree(tmp_path / "src", {"f.txt": "x"})
    shutil.rmtree(tmp_path / "laptop")
    r = two("put", str(tmp_path / "src/f.txt"), "/f.txt", "--to", "laptop,archive")
    assert r.code == 1
    assert f"cdir: error: laptop: root {tmp_path / 'laptop'} is missing" in r.err
    assert not (tmp_path / "laptop").exists()
    [entry] = json.loads(two("status", "/f.txt", "-o", "json").out)
    states = {x["provider"]: (x["state"], x["last_error"] or "") for x in entry["replicas"]}
    assert states["archive"] == ("current", "")
    assert states["laptop"][0] == "error" and "is missing" in states["laptop"][1]


def test_odd_local_trees_are_reported_entry_by_entry(two: Any, tmp_path: Path) -> None:
    """Case 8: a name that is not UTF-8, a name with a newline, a FIFO, a dangling link and
    a symlink loop: each reported or counted, the rest of the tree is put."""
    src = tmp_path / "src"
    make_tree(src, {"ok.txt": "fine", "sub/ok2.txt": "fine too"})
    os.mkfifo(src / "pipe")
    (src / "dangling").symlink_to(tmp_path / "nowhere")
    (src / "sub" / "loop").symlink_to(src)
    (src / "bad\nname.txt").write_text("x")
    fs = os.fsencode(str(src))
    with open(fs + b"/bad\xff.txt", "wb") as f:
        f.write(b"x")
    r = two("put", f"{src}/", "/t", "-r", "--to", "laptop", "-o", "json")
    rep = json.loads(r.out)
    assert r.code == 1 and rep["files"] == 2  # ok.txt and sub/ok2.txt
    assert rep["failed"] == 2 and rep["skipped"] == 3
    assert any("bad\\xff.txt: the name is not valid UTF-8" in e for e in rep["errors"])
    assert any("bad\\nname.txt" in e and "control character" in e for e in rep["errors"])
    notes = "\n".join(rep["warnings"])
    assert "pipe: not a regular file" in notes and "dangling: a symbolic link" in notes
    assert "loop: a symbolic link (use --follow-links to follow)" in notes
    assert "Traceback" not in r.err
    # following links: the loop is detected, not followed forever
    r2 = two("put", f"{src}/", "/u", "-r", "--to", "laptop", "--follow-links", "-o", "json")
    rep2 = json.loads(r2.out)
    assert any("symbolic link loop at" in e for e in rep2["errors"])
    assert "dangling: a dangling symbolic link" in "\n".join(rep2["warnings"])


def test_get_of_a_directory_needs_r(two: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"d/f.txt": "x"})
    assert two("put", f"{tmp_path}/src/d", "/d", "-r").code == 0
    r = two("get", "/d", str(tmp_path / "out"))
    assert (r.code, r.err) == (1, "cdir: error: is a directory: /d (use -r)\n")


def test_a_bad_setting_is_one_line(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDIR_PARALLEL", "lots")
    r = cli("ls", "/")
    assert r.code == 2
    assert r.err.startswith("cdir: error: bad setting CDIR_PARALLEL: ") and r.err.count("\n") == 1


def test_uploads_left_by_a_killed_cdir_are_removed_by_the_next_put_and_by_scan(
    two: Any, tmp_path: Path
) -> None:
    """Case 4 (the temporaries part; SIGKILL itself: test_faults.py): a temporary whose
    writer is gone is removed; one of a live writer is left alone."""
    import subprocess
    import sys

    from cdir.providers.base import TMP_PREFIX

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(gone.stdout)
    make_tree(tmp_path / "src", {"d/f.txt": "x", "e/g.txt": "y"})
    assert two("put", f"{tmp_path}/src/d/", "/d", "-r").code == 0
    leftover = tmp_path / "laptop/d" / f"{TMP_PREFIX}{dead}-abc123"
    leftover.write_bytes(b"half an upload")
    live = tmp_path / "laptop/d" / f"{TMP_PREFIX}{os.getpid()}-def456"
    live.write_bytes(b"in flight")
    (tmp_path / "src/d/f2.txt").write_text("new")
    assert two("put", f"{tmp_path}/src/d/", "/d", "-r").code == 0
    assert not leftover.exists() and live.exists()
    other = tmp_path / "archive/d" / f"{TMP_PREFIX}{dead}-0f0f0f"
    other.write_bytes(b"half")
    r = two("scan", "archive", "/d")
    assert r.code == 0 and not other.exists()
    assert "cdir: skipped: archive: removed 1 upload(s) left by a killed cdir" in r.err


def test_a_move_that_fails_half_way_leaves_nothing_untracked(
    two: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 13: on a provider without a server-side move (copy, then delete), a delete that
    fails removes the copy again; replicate then moves the replica where it belongs and
    drops the old file; scan does not bring the old directory back."""
    from dataclasses import replace

    from cdir.errors import AuthError
    from cdir.providers.local import LocalProvider

    make_tree(tmp_path / "src", {"d/a.txt": "a", "d/b.txt": "b"})
    assert two("put", f"{tmp_path}/src/d/", "/d", "-r").code == 0
    caps = replace(LocalProvider.capabilities, server_side_move=False)
    monkeypatch.setattr(LocalProvider, "capabilities", caps)
    real_delete = LocalProvider.delete

    def refuse_on_laptop(self, path):  # type: ignore[no-untyped-def]
        if self.name == "laptop" and path.startswith("d/"):  # the old folder is locked
            raise AuthError(f"{self.name}:/{path}: permission denied")
        return real_delete(self, path)

    monkeypatch.setattr(LocalProvider, "delete", refuse_on_laptop)
    r = two("mv", "/d", "/e")
    assert r.code == 1 and "cdir: error: laptop:/d/a.txt: permission denied" in r.err
    assert sorted(p.name for p in (tmp_path / "laptop/d").iterdir()) == ["a.txt", "b.txt"]
    assert not (tmp_path / "laptop/e").exists() or not any((tmp_path / "laptop/e").iterdir())
    [entry] = [
        e
        for e in json.loads(two("status", "/e", "-r", "-o", "json").out)
        if e["path"] == "/e/a.txt"
    ]
    laptop = next(x for x in entry["replicas"] if x["provider"] == "laptop")
    assert (laptop["state"], laptop["remote_path"]) == ("error", "d/a.txt")
    scan = two("scan", "laptop")
    assert "laptop:/d/a.txt: left out, it is the replica of /e/a.txt" in scan.err
    assert two("ls", "/").out == "e/\n"  # /d did not come back
    monkeypatch.setattr(LocalProvider, "delete", real_delete)
    assert two("replicate", "/e", "-r", "--to", "laptop").code == 0
    assert (tmp_path / "laptop/e/a.txt").read_text() == "a"
    assert not (tmp_path / "laptop/d/a.txt").exists()  # the old copy went with it
    assert replicas(two, "/e/a.txt") == {"archive": "current", "laptop": "current"}


def test_an_unreachable_provider_fails_fast_and_the_counts_say_who_did_what(
    two: Any, tmp_path: Path
) -> None:
    """Case 15: a 500-file put to a local provider and an S3 endpoint that refuses
    connections: the S3 lane goes down after one file's retries, the other 499 are reported
    at once in one line, and the summary counts per provider."""
    import socket
    import time

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    key = tmp_path / "k"
    key.write_text("K")
    add = two(
        "provider",
        "add",
        "s3down",
        "--kind",
        "s3",
        "--root",
        "bucket",
        "-O",
        f"endpoint_url=http://127.0.0.1:{port}",
        "-S",
        f"access_key_id=@{key}",
        "-S",
        f"secret_access_key=@{key}",
        "--no-check",
    )
    assert add.code == 0, add.err
    make_tree(tmp_path / "src", {f"f{i:03}": "x" for i in range(500)})
    t0 = time.monotonic()
    r = two("put", f"{tmp_path}/src/", "/p", "-r", "--to", "laptop,s3down")
    assert time.monotonic() - t0 < 60  # was 182 s: each file retried on its own
    assert r.code == 1
    assert (
        "  archive" not in r.out
        and "  laptop: 500 file(s), s3down: 0 file(s), 500 failed\n" in r.out
    )
    lines = r.err.splitlines()
    assert sum("Could not connect" in x and "not tried" not in x for x in lines) <= 4  # in flight
    [summary] = [x for x in lines if "file(s) not tried" in x]
    assert summary.startswith("cdir: error: s3down is down (s3down:/p/f")
    assert len(lines) <= 5


def test_the_catalog_and_the_state_file_are_private(two: Any, home: Path) -> None:
    assert two("mkdir", "/d").code == 0 and two("cd", "/d").code == 0
    for name in ("catalog.db", "state.json"):
        assert (home / name).stat().st_mode & 0o777 == 0o600, name
