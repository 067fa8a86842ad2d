"""A provider that ignores case (OneDrive, Dropbox, Box; a FAT or macOS folder) holds `a.csv`
and `A.csv` as one file: cdir never writes the second over the first there. The write goes
to the other providers, and the skipped target is one line that says why."""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdir.errors import Conflict
from cdir.providers.memory import MemoryProvider
from cdir.vdir.plan import FileJob, StreamSource, drop_case_clashes


@pytest.fixture
def v(home: Path) -> Iterator[Any]:
    """`fold` ignores case (a memory provider told so), `exact` does not."""
    from cdir.config import Settings
    from cdir.vdir import VDir

    store = f"ci-{uuid.uuid4().hex}"
    vdir = VDir(Settings())
    vdir.add_provider("fold", "memory", f"{store}/fold", {})
    vdir.add_provider("exact", "memory", f"{store}/exact", {})
    fold = vdir.backend("fold")
    fold.capabilities = dataclasses.replace(fold.capabilities, case_sensitive=False)
    yield vdir
    vdir.close()
    MemoryProvider.reset(store)


def test_a_name_in_another_case_is_not_written_over(v: Any, tmp_path: Path) -> None:
    (tmp_path / "upper").mkdir()
    (tmp_path / "upper/Data.csv").write_text("upper")
    (tmp_path / "lower").mkdir()
    (tmp_path / "lower/data.csv").write_text("lower")
    assert v.put([str(tmp_path / "upper/Data.csv")], "/d/Data.csv", progress=False).failed == 0
    rep = v.put([str(tmp_path / "lower/data.csv")], "/d/data.csv", progress=False)
    assert rep.failed == 1 and rep.files == 1
    assert rep.errors == [
        "fold:/d/data.csv: not written there: fold ignores case and holds /d/Data.csv, "
        "which it would overwrite"
    ]
    assert v.backend("fold").read_bytes("d/Data.csv") == b"upper"
    assert v.backend("exact").read_bytes("d/data.csv") == b"lower"
    assert {r.provider for r in v.stat("/d/data.csv").replicas} == {"exact"}
    # the same name again is a new version, not a clash
    (tmp_path / "upper/Data.csv").write_text("upper v2")
    assert v.put([str(tmp_path / "upper/Data.csv")], "/d/Data.csv", progress=False).failed == 0
    assert v.backend("fold").read_bytes("d/Data.csv") == b"upper v2"


def test_two_names_in_one_batch(v: Any, tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t/README").write_text("1")
    (tmp_path / "t/readme").write_text("2")
    rep = v.put([f"{tmp_path}/t/"], "/t", recursive=True, progress=False)
    assert rep.failed == 1 and len(rep.errors) == 1 and "ignores case" in rep.errors[0]
    assert len([st for st in v.backend("fold").list("t")]) == 1


def test_a_stream_write_with_nowhere_left_is_refused(v: Any) -> None:
    v.write("/s/Name.txt", io.BytesIO(b"a"), 1, to=["fold"])
    with pytest.raises(Conflict, match=r"fold ignores case and holds /s/Name\.txt"):
        v.write("/s/name.txt", io.BytesIO(b"b"), 1, to=["fold"])
    assert v.backend("fold").read_bytes("s/Name.txt") == b"a"


def test_a_move_onto_another_case_is_refused(v: Any) -> None:
    v.write("/m/Data.csv", io.BytesIO(b"keep"), 4)
    v.write("/m/new.csv", io.BytesIO(b"new"), 3)
    with pytest.raises(Conflict, match=r"fold ignores case and holds /m/Data\.csv"):
        v.mv("/m/new.csv", "/m/data.csv", progress=False)
    assert v.backend("fold").read_bytes("m/Data.csv") == b"keep"
    v.mkdir("/m/Folder")
    with pytest.raises(Conflict, match="holds /m/Folder"):
        v.mv("/m/new.csv", "/m/folder", progress=False)
    # a rename that changes only the case of the name itself is fine
    assert v.mv("/m/new.csv", "/m/NEW.csv", progress=False).failed == 0
    assert v.backend("exact").read_bytes("m/NEW.csv") == b"new"


@pytest.mark.parametrize(
    ("held", "names", "kept"),
    [
        ({}, ["a", "b"], [True, True]),
        ({"A"}, ["a"], [False]),
        ({"a"}, ["a"], [True]),
        ({}, ["x", "X", "x"], [True, False, True]),
        ({"Straße"}, ["STRASSE"], [False]),  # casefold, not lower
    ],
)
def test_the_rule(held: set[str], names: list[str], kept: list[bool]) -> None:
    from types import SimpleNamespace

    p = SimpleNamespace(id=1, name="fold")
    jobs = [FileJob(f"/d/{n}", 1, 0, StreamSource(io.BytesIO(b""), 0), targets=[p]) for n in names]
    drop_case_clashes(jobs, {("/d", 1): held}, {1})
    assert [bool(j.targets) for j in jobs] == kept
