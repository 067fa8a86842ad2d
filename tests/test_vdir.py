"""The virtual directory over two local providers, on SQLite and PostgreSQL catalogs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cdir.errors import (
    AlreadyExists,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    NotFound,
    UsageError,
)
from tests.conftest import make_tree

TREE = {"a/a.txt": "A", "a/b/b.txt": "BB", "a/b/c/c.txt": "CCC"}


def states(v: Any, path: str, recursive: bool = True) -> dict[str, dict[str, tuple[str, int]]]:
    return {
        e.path: {r.provider: (r.state, r.generation) for r in e.replicas}
        for e in v.status(path, recursive=recursive)
    }


def test_put_tree_lands_on_both_providers(vdir: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)
    rep = vdir.put([f"{src}/a/"], "/proj", recursive=True, progress=False)
    assert (rep.files, rep.failed, rep.bytes) == (3, 0, 2 * 6)
    st = states(vdir, "/proj")
    assert set(st) == {"/proj/a.txt", "/proj/b/b.txt", "/proj/b/c/c.txt"}
    for reps in st.values():
        assert reps == {"laptop": ("current", 1), "archive": ("current", 1)}
    for prov in ("laptop", "archive"):
        assert (tmp_path / prov / "proj/b/c/c.txt").read_text() == "CCC"
    # directories exist in the catalog
    assert [e.path for e in vdir.ls("/proj").entries] == ["/proj/a.txt", "/proj/b"]


def test_put_without_recursive_takes_top_level_files_only(vdir: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)
    vdir.put([str(src / "a")], "/x", progress=False)
    assert [e.path for e in vdir.ls("/x", recursive=True).entries] == ["/x/a.txt"]


def test_put_again_skips_identical_and_updates_changed(vdir: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)
    vdir.put([f"{src}/a/"], "/p", recursive=True, progress=False)
    again = vdir.put([f"{src}/a/"], "/p", recursive=True, progress=False)
    assert (again.files, again.skipped) == (0, 3)
    (src / "a/b/b.txt").write_text("new content")
    upd = vdir.put([f"{src}/a/"], "/p", recursive=True, progress=False)
    assert (upd.files, upd.skipped) == (1, 2)
    st = states(vdir, "/p")
    assert st["/p/b/b.txt"] == {"laptop": ("current", 2), "archive": ("current", 2)}
    assert vdir.stat("/p/b/b.txt").size == len("new content")
    assert (tmp_path / "archive/p/b/b.txt").read_text() == "new content"


def test_a_new_version_to_one_provider_leaves_the_others_stale_then_replicate(
    vdir: Any, tmp_path: Path
) -> None:
    f = tmp_path / "f.csv"
    f.write_text("v1")
    vdir.put([str(f)], "/f.csv", to=["laptop"], progress=False)
    vdir.replicate("/f.csv", ["archive"], progress=False)
    assert states(vdir, "/f.csv") == {
        "/f.csv": {"laptop": ("current", 1), "archive": ("current", 1)}
    }
    f.write_text("version 2")
    os.utime(f, ns=(10**18, 10**18))
    vdir.put([str(f)], "/f.csv", to=["laptop"], progress=False)
    # every provider holding the file gets the new version
    assert states(vdir, "/f.csv") == {
        "/f.csv": {"laptop": ("current", 2), "archive": ("current", 2)}
    }


def test_get_prefers_the_preferred_provider_and_falls_back(vdir: Any, tmp_path: Path) -> None:
    f = tmp_path / "data.bin"
    f.write_bytes(b"x" * 1000)
    vdir.put([str(f)], "/d/data.bin", progress=False)
    vdir.prefer("/d", "archive")
    assert vdir.stat("/d").preferred_provider == "archive"
    (tmp_path / "archive/d/data.bin").unlink()  # the preferred replica vanished behind our back
    out = tmp_path / "out"
    out.mkdir()
    rep = vdir.get(["/d/data.bin"], str(out), progress=False)
    assert rep.files == 1 and (out / "data.bin").read_bytes() == b"x" * 1000
    assert (out / "data.bin").stat().st_mtime_ns == f.stat().st_mtime_ns
    again = vdir.get(["/d/data.bin"], str(out), progress=False)
    assert again.skipped == 1


def test_get_from_a_named_provider_only(vdir: Any, tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_text("x")
    vdir.put([str(f)], "/x.txt", to=["laptop"], progress=False)
    rep = vdir.get(["/x.txt"], str(tmp_path / "y.txt"), provider="archive", progress=False)
    assert rep.failed == 1 and rep.errors == ["/x.txt: no current replica on archive"]


def test_cp_within_and_across_providers(vdir: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)
    vdir.put([f"{src}/a/"], "/p", recursive=True, to=["laptop"], progress=False)
    vdir.cp("/p", "/q", recursive=True, progress=False)
    assert states(vdir, "/q")["/q/b/c/c.txt"] == {"laptop": ("current", 1)}
    vdir.cp("/p/a.txt", "/r.txt", to=["archive"], progress=False)
    assert (tmp_path / "archive/r.txt").read_text() == "A"
    with pytest.raises(IsADirectory, match=r"is a directory: /p \(use -r\)"):
        vdir.cp("/p", "/z", progress=False)
    with pytest.raises(InvalidPath, match="into itself"):
        vdir.cp("/p", "/p/sub", recursive=True, progress=False)


def test_mv_renames_everywhere(vdir: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)
    vdir.put([f"{src}/a/"], "/p", recursive=True, progress=False)
    vdir.mkdir("/dst")
    rep = vdir.mv("/p", "/dst", progress=False)
    assert rep.failed == 0
    assert "/dst/p/b/c/c.txt" in states(vdir, "/dst")
    with pytest.raises(NotFound):
        vdir.stat("/p")
    assert (tmp_path / "laptop/dst/p/b/c/c.txt").read_text() == "CCC"
    assert not (tmp_path / "laptop/p").exists()  # emptied directories are tidied away
    vdir.mkdir("/other")
    with pytest.raises(
        AlreadyExists, match=r"^destination exists: /dst/p/a.txt \(remove it first\)$"
    ):
        vdir.mv("/other", "/dst/p/a.txt", progress=False)


def test_rm_tombstones_and_deletes_every_replica(vdir: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)
    vdir.put([f"{src}/a/"], "/p", recursive=True, progress=False)
    with pytest.raises(IsADirectory, match=r"directory not empty: /p \(use -r\)"):
        vdir.rm(["/p"], progress=False)
    vdir.rm(["/p/a.txt"], progress=False)
    assert not (tmp_path / "laptop/p/a.txt").exists()
    vdir.rm(["/p"], recursive=True, progress=False)
    assert vdir.ls("/").entries == []
    assert not (tmp_path / "archive/p").exists()
    # a path can be used again after removal; generations keep counting
    vdir.put([str(src / "a/a.txt")], "/p/a.txt", progress=False)
    assert vdir.stat("/p/a.txt").generation == 2


def test_search_uses_the_catalog_only(vdir: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {**TREE, "a/b/c/A_TXT": "x", "a/b/c.txt.bak": "y"})
    vdir.put([f"{src}/a/"], "/p", recursive=True, progress=False)
    # a provider vanishing does not matter: search never lists it
    import shutil

    shutil.rmtree(tmp_path / "laptop")
    found = [e.path for e in vdir.search("*.txt", "/", recursive=True)]
    assert found == ["/p/a.txt", "/p/b/b.txt", "/p/b/c/c.txt"]
    assert [e.path for e in vdir.search("?.txt", "/p")] == ["/p/a.txt"]
    assert [e.path for e in vdir.search("[bc].txt", "/", recursive=True)] == [
        "/p/b/b.txt",
        "/p/b/c/c.txt",
    ]
    assert [e.path for e in vdir.search("b/*", "/p", recursive=True)] == [
        "/p/b/b.txt",
        "/p/b/c",
        "/p/b/c.txt.bak",
    ]
    assert vdir.search("A_TXT", "/", recursive=True)[0].path == "/p/b/c/A_TXT"
    assert vdir.search("a_txt", "/", recursive=True) == []  # case-sensitive, as on PostgreSQL


def test_ls_pages_by_cursor(vdir: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {f"f{i:02}": "x" for i in range(25)})
    vdir.put([f"{src}/"], "/many", recursive=True, to=["laptop"], progress=False, parallel=8)
    seen, after = [], None
    while True:
        page = vdir.ls("/many", limit=10, after=after)
        seen += [e.path for e in page.entries]
        after = page.next_cursor
        if after is None:
            break
    assert seen == [f"/many/f{i:02}" for i in range(25)]


def test_mkdir_cd_and_their_errors(vdir: Any) -> None:
    vdir.mkdir("/a")
    with pytest.raises(AlreadyExists, match=r"^directory exists: /a$"):
        vdir.mkdir("/a")
    vdir.mkdir("/a", parents=True)  # fine with -p
    with pytest.raises(NotFound, match=r"^no such directory: /x/y \(use -p to create parents\)$"):
        vdir.mkdir("/x/y/z")
    vdir.mkdir("/x/y/z", parents=True)
    assert vdir.cd("/x/y") == "/x/y"
    assert vdir.cwd == "/x/y"
    assert vdir.cd("z") == "/x/y/z"
    assert vdir.path("..") == "/x/y"
    with pytest.raises(InvalidPath, match="goes above the root"):
        vdir.cd("../../../..")
    with pytest.raises(NotFound, match=r"^no such directory: /nope$"):
        vdir.cd("/nope")


def test_put_errors(vdir: Any, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=f"^no such local file or directory: {tmp_path}/missing$"):
        vdir.put([str(tmp_path / "missing")], "/x", progress=False)
    with pytest.raises(NotFound, match=r"^unknown provider 'nope' \(see `cdir provider list`\)$"):
        vdir.put([str(tmp_path)], "/x", to=["nope"], progress=False)
    f = tmp_path / "f"
    f.write_text("1")
    vdir.put([str(f)], "/file", progress=False)
    with pytest.raises(NotADirectory, match=r"^not a directory: /file$"):
        vdir.put([str(f)], "/file/inner", progress=False)
    vdir.mkdir("/d")
    vdir.put([str(f)], "/d", progress=False)  # into an existing directory keeps the name
    assert vdir.stat("/d/f").size == 1


def test_a_failing_provider_leaves_the_file_usable_and_the_error_visible(
    vdir: Any, tmp_path: Path
) -> None:
    (tmp_path / "archive").rmdir()
    (tmp_path / "archive").write_text("not a directory any more")
    f = tmp_path / "f.txt"
    f.write_text("hello")
    rep = vdir.put([str(f)], "/f.txt", progress=False)
    assert rep.failed == 1 and len(rep.errors) == 1 and "archive" in rep.errors[0]
    st = states(vdir, "/f.txt")["/f.txt"]
    assert st["laptop"] == ("current", 1)
    assert st["archive"][0] == "error"


def test_scan_imports_what_a_provider_holds(vdir: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "laptop", {"old/one.txt": "1", "old/deep/two.txt": "22"})
    rep = vdir.scan("laptop")
    assert rep.files == 2
    assert states(vdir, "/old") == {
        "/old/one.txt": {"laptop": ("current", 1)},
        "/old/deep/two.txt": {"laptop": ("current", 1)},
    }
    assert vdir.scan("laptop").skipped == 2  # nothing changed


def test_provider_management(vdir: Any, tmp_path: Path) -> None:
    with pytest.raises(AlreadyExists, match=r"^provider 'laptop' already exists$"):
        vdir.add_provider("laptop", "local", str(tmp_path / "z"), {})
    with pytest.raises(UsageError, match=r"^unknown provider kind 'ftp'"):
        vdir.add_provider("x", "ftp", "/", {})
    with pytest.raises(UsageError, match=r"^invalid provider name"):
        vdir.add_provider("bad name", "local", str(tmp_path), {})
    with pytest.raises(UsageError, match=r"^unknown option\(s\) for local: colour"):
        vdir.add_provider("x", "local", str(tmp_path), {"colour": "red"})
    assert [p.name for p in vdir.providers()] == ["archive", "laptop"]
    assert vdir.test_provider("laptop") >= 0
    f = tmp_path / "f"
    f.write_text("1")
    vdir.put([str(f)], "/f", progress=False)
    with pytest.raises(UsageError, match="holds 1 replica"):
        vdir.remove_provider("archive")
    assert vdir.remove_provider("archive", force=True) == 1
    assert [p.name for p in vdir.providers()] == ["laptop"]


def test_reads_use_the_preference_inherited_from_an_ancestor(
    vdir: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdir.providers.local import LocalProvider

    src = make_tree(tmp_path / "src", {"a/b/f.txt": "original"})
    vdir.put([f"{src}/a/"], "/d", recursive=True, progress=False)
    served: list[str] = []  # which provider each read came from (the bytes are the same)
    real = LocalProvider.read_chunks  # reads of a version with a hash stream through it

    def spy(self, path, start=0, end=None):  # type: ignore[no-untyped-def]
        served.append(self.name)
        return real(self, path, start, end)

    monkeypatch.setattr(LocalProvider, "read_chunks", spy)
    for pref in ("archive", "laptop"):
        vdir.prefer("/d", pref)  # set on an ancestor two levels up
        out = tmp_path / f"out-{pref}.txt"
        vdir.get(["/d/b/f.txt"], str(out), progress=False)
        assert out.read_text() == "original"
        assert served[-1] == pref


def test_mv_onto_a_removed_path_reuses_it(vdir: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)
    vdir.put([f"{src}/a/"], "/p", recursive=True, progress=False)
    vdir.rm(["/p"], recursive=True, progress=False)  # leaves tombstones at /p and below
    vdir.put([f"{src}/a/"], "/q", recursive=True, progress=False)
    assert vdir.mv("/q", "/p", progress=False).failed == 0
    assert [e.path for e in vdir.ls("/p", recursive=True).entries] == [
        "/p/a.txt",
        "/p/b",
        "/p/b/b.txt",
        "/p/b/c",
        "/p/b/c/c.txt",
    ]
    assert states(vdir, "/p")["/p/b/c/c.txt"] == {
        "laptop": ("current", 1),
        "archive": ("current", 1),
    }
    assert (tmp_path / "archive/p/b/c/c.txt").read_text() == "CCC"


def test_rm_reports_a_provider_that_could_not_delete(vdir: Any, tmp_path: Path) -> None:
    import shutil

    f = tmp_path / "f.txt"
    f.write_text("x")
    vdir.put([str(f)], "/f.txt", progress=False)
    shutil.rmtree(tmp_path / "archive")
    (tmp_path / "archive").write_text("the provider's root is gone, a file is in its place")
    rep = vdir.rm(["/f.txt"], progress=False)
    assert rep.failed == 1 and len(rep.errors) == 1 and "archive" in rep.errors[0]
    assert not (tmp_path / "laptop/f.txt").exists()
    with pytest.raises(NotFound):  # the path is gone from the namespace all the same
        vdir.stat("/f.txt")


def test_an_interrupted_put_records_what_was_written(
    vdir: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdir.providers.local import LocalProvider

    src = make_tree(tmp_path / "src", {f"f{i}": "x" for i in range(6)})
    real, calls = LocalProvider.put_file, []

    def interrupted_on_the_fifth(self, local, path, mtime_ns=None):  # type: ignore[no-untyped-def]
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, local, path, mtime_ns)

    monkeypatch.setattr(LocalProvider, "put_file", interrupted_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        vdir.put([f"{src}/"], "/d", recursive=True, to=["laptop"], parallel=1, progress=False)
    monkeypatch.setattr(LocalProvider, "put_file", real)
    written = {e.path for e in vdir.ls("/d").entries}
    assert len(written) == 4 and all(
        (tmp_path / "laptop" / p.lstrip("/")).exists() for p in written
    )
    again = vdir.put([f"{src}/"], "/d", recursive=True, to=["laptop"], progress=False)
    assert (again.files, again.skipped) == (2, 4)
