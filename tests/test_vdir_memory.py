"""A fast round trip through the virtual directory over two memory providers: put, get, cp,
mv and rm, with the catalog and both providers' trees compared after each step."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdir.errors import NotFound
from cdir.providers.memory import MemoryProvider
from tests.conftest import make_tree

TREE = {"a.txt": "A", "b/b.txt": "BB", "b/c/c.txt": "CCC", "b/c/empty": ""}


@pytest.fixture
def mem(home: Path, catalog_url: str) -> Iterator[Any]:
    """A VDir over memory providers `m1` and `m2` (one store, two folders in it)."""
    from cdir.config import Settings
    from cdir.vdir import VDir

    store = f"mem-{uuid.uuid4().hex}"
    v = VDir(Settings(catalog_url=catalog_url))
    v.add_provider("m1", "memory", f"{store}/a", {})
    v.add_provider("m2", "memory", f"{store}/b", {})
    yield v
    v.close()
    MemoryProvider.reset(store)


def held(v: Any, name: str) -> dict[str, bytes]:
    """Every file on a provider: remote path → bytes."""
    b = v.backend(name)
    return {
        st.path: b.read_bytes(st.path) for st in b.list("", recursive=True) if st.kind == "file"
    }


def catalog(v: Any) -> dict[str, dict[str, tuple[str, int]]]:
    """Every file in the catalog → provider → (state, generation)."""
    return {
        e.path: {r.provider: (r.state, r.generation) for r in e.replicas}
        for e in v.status("/", recursive=True)
    }


def files(prefix: str, tree: dict[str, str]) -> dict[str, bytes]:
    return {f"{prefix}/{k}": v.encode() for k, v in tree.items()}


BOTH = {"m1": ("current", 1), "m2": ("current", 1)}


def test_put_get_cp_mv_rm_round_trip(mem: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)

    rep = mem.put([f"{src}/"], "/p", recursive=True, progress=False)
    assert (rep.files, rep.failed, rep.bytes) == (4, 0, 2 * 6)
    assert catalog(mem) == {f"/p/{k}": BOTH for k in TREE}
    assert held(mem, "m1") == held(mem, "m2") == files("p", TREE)
    assert mem.put([f"{src}/"], "/p", recursive=True, progress=False).skipped == 4

    out = tmp_path / "out"
    rep = mem.get(["/p"], str(out), recursive=True, progress=False)
    assert (rep.files, rep.failed) == (4, 0)
    for rel, data in TREE.items():
        assert (out / rel).read_text() == data
        assert (out / rel).stat().st_mtime_ns == (src / rel).stat().st_mtime_ns

    rep = mem.cp("/p/b", "/q", recursive=True, progress=False)
    assert (rep.files, rep.failed) == (3, 0)
    rep = mem.cp("/p/a.txt", "/r.txt", to=["m2"], progress=False)
    assert (rep.files, rep.failed) == (1, 0)
    copied = {"b.txt": "BB", "c/c.txt": "CCC", "c/empty": ""}
    assert catalog(mem) == {
        **{f"/p/{k}": BOTH for k in TREE},
        **{f"/q/{k}": BOTH for k in copied},
        "/r.txt": {"m2": ("current", 1)},
    }
    assert held(mem, "m1") == {**files("p", TREE), **files("q", copied)}
    assert held(mem, "m2") == {**files("p", TREE), **files("q", copied), "r.txt": b"A"}

    mem.mkdir("/dst")
    assert mem.mv("/q", "/dst", progress=False).failed == 0
    assert mem.mv("/r.txt", "/dst/r2.txt", progress=False).failed == 0
    with pytest.raises(NotFound):
        mem.stat("/q")
    assert catalog(mem) == {
        **{f"/p/{k}": BOTH for k in TREE},
        **{f"/dst/q/{k}": BOTH for k in copied},
        "/dst/r2.txt": {"m2": ("current", 1)},
    }
    assert held(mem, "m1") == {**files("p", TREE), **files("dst/q", copied)}
    assert held(mem, "m2") == {**files("p", TREE), **files("dst/q", copied), "dst/r2.txt": b"A"}
    assert b"".join(mem.read("/dst/q/c/c.txt")) == b"CCC"

    assert mem.rm(["/p/a.txt"], progress=False).failed == 0
    assert mem.rm(["/dst"], recursive=True, progress=False).failed == 0
    rest = {k: v for k, v in TREE.items() if k != "a.txt"}
    assert catalog(mem) == {f"/p/{k}": BOTH for k in rest}
    assert held(mem, "m1") == held(mem, "m2") == files("p", rest)
    assert [e.path for e in mem.ls("/").entries] == ["/p"]

    # a path used again after rm gets the next generation
    rep = mem.put([str(src / "a.txt")], "/p/a.txt", progress=False)
    assert rep.files == 1 and mem.stat("/p/a.txt").generation == 2
