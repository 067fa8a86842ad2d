"""`cdir sync` (vdir/sync.py) with local providers, on SQLite and PostgreSQL: changes made in
a provider's folder behind cdir's back reach every other provider, and no version is lost.
Against the real servers: tests/test_sync_remote.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from cdir.errors import Unsafe
from tests.conftest import make_tree

T0 = 1_700_000_000  # mtimes are set, never left to the clock


def setup_tree(v: Any, tmp_path: Path, files: dict[str, str]) -> None:
    src = make_tree(tmp_path / "src", files)
    for rel in files:
        os.utime(src / rel, (T0, T0))
    v.put([f"{src}/"], "/p", recursive=True, progress=False)


def edit(path: Path, text: str, at: int) -> None:
    path.write_text(text)
    os.utime(path, (at, at))


def states(v: Any, path: str) -> dict[str, tuple[str, int]]:
    [e] = v.status(path)
    return {r.provider: (r.state, r.generation) for r in e.replicas}


def both(tmp_path: Path, rel: str) -> tuple[str, str]:
    return (tmp_path / "laptop" / rel).read_text(), (tmp_path / "archive" / rel).read_text()


def test_a_pass_with_no_change_does_nothing(vdir: Any, tmp_path: Path) -> None:
    setup_tree(vdir, tmp_path, {"a.txt": "one", "d/b.txt": "two"})
    rep = vdir.sync(progress=False)
    assert (rep.checked, rep.providers, rep.failed) == (4, ["archive", "laptop"], 0)
    counts = (rep.changed, rep.imported, rep.conflicts, rep.restored, rep.deleted, rep.copied)
    assert counts == (0, 0, 0, 0, 0, 0)


def test_a_change_on_one_provider_reaches_the_other(vdir: Any, tmp_path: Path) -> None:
    setup_tree(vdir, tmp_path, {"a.txt": "one", "d/b.txt": "two"})
    edit(tmp_path / "laptop/p/a.txt", "one, edited", T0 + 60)
    rep = vdir.sync(progress=False)
    assert (rep.changed, rep.copied, rep.conflicts, rep.failed) == (1, 1, 0, 0)
    assert both(tmp_path, "p/a.txt") == ("one, edited", "one, edited")
    assert states(vdir, "/p/a.txt") == {"laptop": ("current", 2), "archive": ("current", 2)}
    assert vdir.stat("/p/a.txt").generation == 2
    [e] = vdir.status("/p/a.txt")  # status says when each replica was last checked
    assert all(r.last_checked is not None and r.last_checked.tzinfo for r in e.replicas)
    assert vdir.sync(progress=False).changed == 0  # and it stays put


def test_changes_on_both_keep_the_older_as_a_conflict_copy(vdir: Any, tmp_path: Path) -> None:
    setup_tree(vdir, tmp_path, {"a.txt": "one"})
    edit(tmp_path / "laptop/p/a.txt", "laptop's", T0 + 60)
    edit(tmp_path / "archive/p/a.txt", "archive's, newer", T0 + 120)
    rep = vdir.sync(progress=False)
    assert (rep.changed, rep.conflicts, rep.failed) == (1, 1, 0)
    assert both(tmp_path, "p/a.txt") == ("archive's, newer", "archive's, newer")
    copy = "p/a.conflict-20231114T221420Z-laptop.txt"  # laptop's mtime, T0 + 60 s
    assert both(tmp_path, copy) == ("laptop's", "laptop's")
    assert sorted(e.path for e in vdir.ls("/p").entries) == [
        "/p/a.conflict-20231114T221420Z-laptop.txt",
        "/p/a.txt",
    ]
    assert states(vdir, "/" + copy) == {"laptop": ("current", 1), "archive": ("current", 1)}
    assert vdir.sync(progress=False).conflicts == 0


def test_a_file_deleted_outside_cdir_is_restored(vdir: Any, tmp_path: Path) -> None:
    setup_tree(vdir, tmp_path, {"a.txt": "one", "b.txt": "two"})
    (tmp_path / "archive/p/a.txt").unlink()
    rep = vdir.sync(progress=False)
    assert (rep.restored, rep.copied, rep.deleted) == (1, 1, 0)
    assert both(tmp_path, "p/a.txt") == ("one", "one")
    assert states(vdir, "/p/a.txt") == {"laptop": ("current", 1), "archive": ("current", 1)}


def test_under_propagate_a_deletion_reaches_every_provider(vdir: Any, tmp_path: Path) -> None:
    setup_tree(vdir, tmp_path, {"a.txt": "one", "b.txt": "two", "c.txt": "three"})
    assert vdir.policy("/p", "propagate") == "propagate"
    assert vdir.policy("/p/") == "propagate" and vdir.policy("/") == "restore"
    (tmp_path / "archive/p/a.txt").unlink()
    rep = vdir.sync(progress=False)
    assert (rep.deleted, rep.restored) == (1, 0)
    assert not (tmp_path / "laptop/p/a.txt").exists()
    assert sorted(e.path for e in vdir.ls("/p").entries) == ["/p/b.txt", "/p/c.txt"]


def test_a_file_dropped_into_a_provider_is_imported_and_replicated(
    vdir: Any, tmp_path: Path
) -> None:
    setup_tree(vdir, tmp_path, {"a.txt": "one"})
    make_tree(tmp_path / "laptop/p", {"new/data.csv": "x,y\n"})
    rep = vdir.sync(progress=False)
    assert (rep.imported, rep.copied, rep.failed) == (1, 1, 0)
    assert both(tmp_path, "p/new/data.csv") == ("x,y\n", "x,y\n")
    assert states(vdir, "/p/new/data.csv") == {"laptop": ("current", 1), "archive": ("current", 1)}


def test_an_unfinished_rm_is_finished(vdir: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from cdir.errors import ProviderError
    from cdir.providers.local import LocalProvider

    setup_tree(vdir, tmp_path, {"a.txt": "one"})
    real = LocalProvider.delete

    def failing(self: LocalProvider, path: str) -> None:
        if self.name == "archive":
            raise ProviderError("archive: refused")
        real(self, path)

    with monkeypatch.context() as m:
        m.setattr(LocalProvider, "delete", failing)
        assert vdir.rm(["/p/a.txt"], progress=False).failed == 1
    assert (tmp_path / "archive/p/a.txt").exists()
    rep = vdir.sync(progress=False)
    assert (rep.deleted, rep.imported, rep.failed) == (1, 0, 0)
    assert not (tmp_path / "archive/p/a.txt").exists()
    assert vdir.status("/", recursive=True) == []  # the tombstone has no replica left


def test_a_dry_run_changes_nothing(vdir: Any, tmp_path: Path) -> None:
    setup_tree(vdir, tmp_path, {"a.txt": "one", "b.txt": "two"})
    edit(tmp_path / "laptop/p/a.txt", "edited", T0 + 60)
    (tmp_path / "archive/p/b.txt").unlink()
    rep = vdir.sync(dry_run=True, progress=False)
    assert rep.plan == [
        "/p/a.txt: new version from laptop",
        "/p/b.txt: missing on archive, restored from a current replica",
    ]
    assert (rep.changed, rep.restored, rep.copied) == (1, 1, 0)
    assert both(tmp_path, "p/a.txt") == ("edited", "one")
    assert not (tmp_path / "archive/p/b.txt").exists()
    assert states(vdir, "/p/a.txt") == {"laptop": ("current", 1), "archive": ("current", 1)}


def test_a_pass_that_would_overwrite_most_files_stops(vdir: Any, tmp_path: Path) -> None:
    setup_tree(vdir, tmp_path, {f"f{i}.txt": str(i) for i in range(4)})
    for i in range(3):  # 3 of archive's 4 files would be overwritten
        edit(tmp_path / f"laptop/p/f{i}.txt", "rewritten", T0 + 60)
    with pytest.raises(Unsafe) as err:
        vdir.sync(progress=False)
    assert str(err.value) == (
        "sync stopped: it would overwrite or delete 3 of archive's 4 file(s) (75%, more than "
        "--max-delete 50%); nothing was changed — see what changed with `cdir sync --dry-run`, "
        "then run with --force"
    )
    assert (tmp_path / "archive/p/f0.txt").read_text() == "0"
    assert vdir.sync(max_delete=0.8, progress=False).changed == 3
    assert (tmp_path / "archive/p/f0.txt").read_text() == "rewritten"


def test_an_empty_listing_is_a_fault_not_a_mass_deletion(vdir: Any, tmp_path: Path) -> None:
    """The archive folder emptied (a disk mounted empty), or its root gone: nothing is
    deleted or restored from it under any policy, and the error says why."""
    setup_tree(vdir, tmp_path, {"a.txt": "one", "b.txt": "two"})
    vdir.policy("/", "propagate")
    shutil.rmtree(tmp_path / "archive/p")
    for name in ("a.txt", "b.txt"):  # every file changed on laptop: no rail for archive,
        edit(tmp_path / "laptop/p" / name, "edited", T0 + 60)  # which gets nothing now
    rep = vdir.sync(progress=False)
    assert rep.changed == 2
    assert rep.errors == [
        "archive: listed no file below /, but the catalog has 2 there; taken for a fault (an "
        "unmounted disk, a wrong bucket?), nothing changed there — if they really were "
        "deleted, run `cdir sync --force`"
    ]
    assert (rep.deleted, rep.restored, rep.providers) == (0, 0, ["laptop"])
    assert (tmp_path / "laptop/p/a.txt").read_text() == "edited"
    shutil.rmtree(tmp_path / "archive")  # the root itself gone (unmounted): the same fault
    again = vdir.sync(progress=False)
    assert (again.errors, again.deleted, again.restored) == (rep.errors, 0, 0)
    [e] = vdir.status("/p/b.txt")  # archive's replicas say why; their state is untouched
    [arc] = [r for r in e.replicas if r.provider == "archive"]
    assert arc.state == "stale"  # laptop's edit made it so, not the fault
    assert arc.last_error.startswith("archive unreachable since ")
    assert arc.last_error.endswith("UTC: " + rep.errors[0].removeprefix("archive: "))
    shutil.copytree(tmp_path / "laptop", tmp_path / "archive")  # the disk is back
    vdir.sync(progress=False)
    [e] = vdir.status("/p/b.txt")
    assert [r.last_error for r in e.replicas] == [None, None]  # cleared once listed again
    # archive's copies hold the catalog's bytes again: adopted, no new generation
    assert states(vdir, "/p/a.txt") == {"laptop": ("current", 2), "archive": ("current", 2)}


def test_the_cli_prints_the_plan_and_a_summary(cli: Any, tmp_path: Path) -> None:
    for name in ("laptop", "archive"):
        assert (
            cli("provider", "add", name, "--kind", "local", "--root", str(tmp_path / name)).code
            == 0
        )
    src = make_tree(tmp_path / "src", {"a.txt": "one"})
    assert cli("put", f"{src}/", "/p", "-r").code == 0
    edit(tmp_path / "laptop/p/a.txt", "edited", T0)
    dry = cli("sync", "--dry-run")
    assert dry.code == 0 and dry.out.splitlines()[0] == "/p/a.txt: new version from laptop"
    assert dry.out.splitlines()[1].startswith(
        "sync --dry-run (nothing done): checked 2 file(s) on archive, laptop: 1 changed, 0 new, "
        "0 conflict(s), 0 restored, 0 deleted; copied 0 file(s)"
    )
    r = cli("sync", "/p", "-o", "json")
    assert r.code == 0 and json.loads(r.out)["copied"] == 1
    assert cli("policy", "/p", "--deletes", "sometimes").err == (
        "cdir: error: --deletes takes restore or propagate, not 'sometimes'\n"
    )
    assert cli("policy", "/p", "--deletes", "propagate").out == "/p: deletes propagate\n"
    assert cli("policy", "/p", "--clear").out == "/p: deletes restore\n"


def test_a_pass_can_list_one_provider_only(vdir: Any, tmp_path: Path) -> None:
    """What the daemon's per-provider polls do: a change found on laptop reaches archive,
    which is not listed (taken to hold what the catalog says)."""
    setup_tree(vdir, tmp_path, {"a.txt": "one"})
    edit(tmp_path / "laptop/p/a.txt", "edited", T0 + 60)
    (tmp_path / "archive/p/a.txt").unlink()  # not seen: archive is not listed
    rep = vdir.sync(only=["laptop"], progress=False)
    assert (rep.providers, rep.changed, rep.restored, rep.copied) == (["laptop"], 1, 0, 1)
    assert both(tmp_path, "p/a.txt") == ("edited", "edited")
