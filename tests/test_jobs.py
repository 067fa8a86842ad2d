"""Named one-way syncs (`cdir sync SOURCE DESTINATION [--name N] [--async]`, `cdir sync
status`; vdir/jobs.py): each end a local folder or a virtual path, the job journaled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_tree


@pytest.fixture
def two(cli: Any, tmp_path: Path) -> Any:
    for name in ("laptop", "archive"):
        assert (
            cli("provider", "add", name, "--kind", "local", "--root", str(tmp_path / name)).code
            == 0
        )
    make_tree(tmp_path / "src", {"a.txt": "one", "d/b.txt": "two"})
    return cli


def files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_local_folder_into_a_virtual_path_and_back(two: Any, tmp_path: Path) -> None:
    src = str(tmp_path / "src")
    r = two("sync", src, "/proj", "--name", "nightly")
    assert (r.code, r.err) == (0, "")
    assert (
        r.out == f"sync job nightly: local:{src} → cdir:/proj: done, 2 file(s) copied, 0 failed\n"
    )
    assert two("sync", src, "/proj", "--name", "nightly").out.endswith(
        "done, 0 file(s) copied, 0 failed\n"
    )
    assert files(tmp_path / "laptop/proj") == {"a.txt": "one", "d/b.txt": "two"}
    out = tmp_path / "out"
    r = two("sync", "/proj", f"local:{out}", "--name", "back")  # a folder that does not exist yet
    assert r.code == 0, r.err
    assert files(out) == {"a.txt": "one", "d/b.txt": "two"}  # the contents, not out/proj/…
    assert two("sync", "/proj", "cdir:/copy").code == 0
    assert files(tmp_path / "archive/copy") == {"a.txt": "one", "d/b.txt": "two"}


def test_sync_status_lists_the_jobs_newest_first(two: Any, tmp_path: Path) -> None:
    two("sync", str(tmp_path / "src"), "/proj", "--name", "nightly")
    two("sync", "/proj", "/copy", "--name", "copy")
    rows = json.loads(two("sync", "status", "-o", "json").out)
    assert [(r["name"], r["state"], r["files_done"]) for r in rows] == [
        ("copy", "done", 2),
        ("nightly", "done", 2),
    ]
    only = json.loads(two("sync", "status", "--name", "nightly", "-o", "json").out)
    assert [r["name"] for r in only] == ["nightly"]
    table = two("sync", "status").out.splitlines()
    assert table[0].split() == [
        "id", "name", "source", "destination", "state", "files", "failed", "bytes", "started", "finished",
    ]  # fmt: skip


def test_an_async_job_waits_for_the_daemon(two: Any, tmp_path: Path) -> None:
    from cdir.vdir import VDir

    r = two("sync", str(tmp_path / "src"), "/later", "--name", "later", "--async")
    assert r.out.endswith("→ cdir:/later: queued for the daemon (see `cdir sync status`)\n")
    assert not (tmp_path / "laptop/later").exists()
    with VDir() as v:  # what the daemon does on each tick
        [done] = v.run_queued()
        assert (done.name, done.state, done.files_done) == ("later", "done", 2)
        assert v.run_queued() == []  # taken once
    assert files(tmp_path / "laptop/later") == {"a.txt": "one", "d/b.txt": "two"}


@pytest.mark.parametrize(
    ("args", "err"),
    [
        (("a", "b", "c"), "cdir: error: sync takes [PATH], SOURCE DESTINATION, or status\n"),
        (("--name", "x"), "cdir: error: --name and --async are for a one-way sync: cdir sync SOURCE DESTINATION\n"),
        (("/nowhere", "/x"), "cdir: error: no such file or directory: /nowhere\n"),
        (("./missing", "/x"), "cdir: error: no such local folder: ./missing\n"),
    ],
)  # fmt: skip
def test_bad_syncs_are_one_line(two: Any, args: tuple[str, ...], err: str) -> None:
    r = two("sync", *args)
    assert (r.code, r.err) == (
        2 if "takes" in err or "--name" in err or "local folder" in err else 1,
        err,
    )


def test_two_local_folders_are_refused(two: Any, tmp_path: Path) -> None:
    r = two("sync", str(tmp_path / "src"), f"local:{tmp_path / 'other'}")
    assert (
        r.err == "cdir: error: both ends are local folders: cdir syncs to or from a virtual path\n"
    )


def test_get_of_a_directory_with_a_trailing_slash_gives_its_contents(
    two: Any, tmp_path: Path
) -> None:
    two("put", f"{tmp_path / 'src'}/", "/proj", "-r")
    (tmp_path / "o1").mkdir()
    (tmp_path / "o2").mkdir()
    assert two("get", "/proj", str(tmp_path / "o1"), "-r").code == 0
    assert two("get", "/proj/", str(tmp_path / "o2"), "-r").code == 0
    assert set(files(tmp_path / "o1")) == {"proj/a.txt", "proj/d/b.txt"}
    assert set(files(tmp_path / "o2")) == {"a.txt", "d/b.txt"}
