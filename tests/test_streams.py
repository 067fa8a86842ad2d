"""Byte streams through the virtual directory (`VDir.read`, `VDir.write`): ranges, fallback
to the next current replica, new versions from a stream, and a 100 MiB write in bounded
memory. Over local and memory providers, on SQLite and PostgreSQL catalogs."""

from __future__ import annotations

import hashlib
import io
import os
import random
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdir.errors import Conflict, IsADirectory, NotFound
from cdir.providers.base import CHUNK
from cdir.providers.memory import MemoryProvider

MiB = 1024 * 1024
# a little over two provider chunks: ranges cross chunk boundaries
DATA = random.Random(1).randbytes(2 * CHUNK + 12_345)
N = len(DATA)


def roots(kind: str, tmp_path: Path) -> tuple[str, str]:
    if kind == "local":
        return str(tmp_path / "one"), str(tmp_path / "two")
    store = f"mem-{uuid.uuid4().hex}"
    return f"{store}/a", f"{store}/b"


@pytest.fixture(params=["local", "memory"])
def vd(
    request: pytest.FixtureRequest, home: Path, catalog_url: str, tmp_path: Path
) -> Iterator[Any]:
    """A VDir with two providers of one kind, `one` and `two`."""
    from cdir.config import Settings
    from cdir.vdir import VDir

    v = VDir(Settings(catalog_url=catalog_url))
    a, b = roots(request.param, tmp_path)
    v.add_provider("one", request.param, a, {})
    v.add_provider("two", request.param, b, {})
    yield v
    v.close()
    if request.param == "memory":
        MemoryProvider.reset(a.split("/")[0])


def read(v: Any, path: str, start: int = 0, end: int | None = None, **kw: Any) -> bytes:
    return b"".join(v.read(path, start, end, **kw))


def replicas(v: Any, path: str) -> dict[str, tuple[str, int]]:
    return {r.provider: (r.state, r.generation) for r in v.stat(path).replicas}


def put(v: Any, tmp_path: Path, path: str, data: bytes, to: list[str] | None = None) -> None:
    src = tmp_path / f"src-{uuid.uuid4().hex}"
    src.write_bytes(data)
    assert v.put([str(src)], path, to=to, progress=False).files == 1


# --- read ------------------------------------------------------------------------------------
RANGES = {
    "whole": (0, None),
    "whole, end given": (0, N),
    "prefix": (0, 100),
    "suffix": (N - 100, None),
    "middle, across a chunk boundary": (CHUNK - 50, CHUNK + 50),
    "a whole chunk": (CHUNK, 2 * CHUNK),
    "end clipped to the file": (N - 10, N + 1000),
    "at the end": (N, None),
    "past the end": (N + 5, N + 50),
    "start == end": (1000, 1000),
    "end before start": (1000, 10),
    "one byte": (N - 1, N),
}


@pytest.mark.parametrize(("start", "end"), RANGES.values(), ids=RANGES.keys())
def test_read_a_range_is_a_slice_of_the_file(
    vd: Any, tmp_path: Path, start: int, end: int | None
) -> None:
    put(vd, tmp_path, "/d/f.bin", DATA)
    assert read(vd, "/d/f.bin", start, end) == DATA[start:end]
    for name in ("one", "two"):
        assert read(vd, "/d/f.bin", start, end, provider=name) == DATA[start:end]


def test_read_comes_from_the_preferred_replica_then_falls_back(vd: Any, tmp_path: Path) -> None:
    put(vd, tmp_path, "/d/f.bin", DATA)
    # same size on both, different bytes: what comes back shows which replica was read
    mine = {name: bytes([i]) * N for i, name in enumerate(("one", "two"), 1)}
    for name, data in mine.items():
        vd.backend(name).put_stream(io.BytesIO(data), "d/f.bin", size=N)
    for preferred in ("one", "two"):
        vd.prefer("/d", preferred)
        assert read(vd, "/d/f.bin", 10, 20) == mine[preferred][10:20]
    vd.backend("two").delete("d/f.bin")  # the preferred replica's file is gone
    assert read(vd, "/d/f.bin") == mine["one"]
    assert read(vd, "/d/f.bin", N - 3, N + 3) == mine["one"][-3:]
    assert read(vd, "/d/f.bin", 7, 7) == b""
    vd.backend("one").delete("d/f.bin")  # and now the last one too
    with pytest.raises(NotFound):
        read(vd, "/d/f.bin")


def set_enabled(v: Any, name: str, enabled: bool) -> None:
    from sqlalchemy import update

    from cdir.catalog import Provider

    with v.db.transaction(write=True) as s:
        s.execute(update(Provider).where(Provider.name == name).values(enabled=enabled))


def test_read_never_comes_from_a_stale_replica(vd: Any, tmp_path: Path) -> None:
    put(vd, tmp_path, "/f", b"old")
    set_enabled(vd, "two", False)  # a disabled holder is not written: its replica goes stale
    vd.write("/f", io.BytesIO(b"new version"), 11)
    set_enabled(vd, "two", True)
    assert replicas(vd, "/f") == {"one": ("current", 2), "two": ("stale", 1)}
    assert held(vd, "two", "f") == b"old"
    vd.prefer("/f", "two")
    assert read(vd, "/f") == b"new version"
    with pytest.raises(NotFound, match=r"^/f: no current replica on two$"):
        read(vd, "/f", provider="two")


def test_read_of_a_directory_or_a_missing_path(vd: Any, tmp_path: Path) -> None:
    put(vd, tmp_path, "/d/f.bin", b"x")
    for path in ("/d", "/"):
        with pytest.raises(IsADirectory, match=f"^is a directory: {path}$"):
            read(vd, path)
    with pytest.raises(NotFound, match=r"^no such file or directory: /d/nope$"):
        read(vd, "/d/nope")
    vd.rm(["/d/f.bin"], progress=False)
    with pytest.raises(NotFound, match=r"^no such file or directory: /d/f.bin$"):
        read(vd, "/d/f.bin")


def test_read_from_a_named_provider_without_a_current_replica(vd: Any, tmp_path: Path) -> None:
    put(vd, tmp_path, "/f", b"x", to=["one"])
    with pytest.raises(NotFound, match=r"^/f: no current replica on two$"):
        read(vd, "/f", provider="two")


# --- write -----------------------------------------------------------------------------------
def held(v: Any, name: str, remote: str) -> bytes:
    return bytes(v.backend(name).read_bytes(remote))


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def test_write_lands_a_new_version_on_every_target(vd: Any) -> None:
    versions = [b"first", b"second version", b"", DATA, DATA]  # the same bytes again: still new
    for gen, data in enumerate(versions, 1):
        out = vd.write("/w/f.bin", io.BytesIO(data), len(data), 1_000 + gen, to=["one", "two"])
        assert (out.kind, out.size, out.generation, out.hash) == ("file", len(data), gen, md5(data))
        assert replicas(vd, "/w/f.bin") == {"one": ("current", gen), "two": ("current", gen)}
        assert vd.entry("/w/f.bin").mtime_ns == 1_000 + gen
        for name in ("one", "two"):
            assert held(vd, name, "w/f.bin") == data
        assert read(vd, "/w/f.bin") == data
    assert vd.stat("/w").kind == "dir"  # the parent directory is in the catalog


def test_write_to_one_provider_also_updates_every_holder(vd: Any) -> None:
    vd.write("/f", io.BytesIO(b"v1"), 2, to=["one", "two"])
    out = vd.write("/f", io.BytesIO(b"v2!"), 3, to=["two"])
    assert out.generation == 2
    assert replicas(vd, "/f") == {"one": ("current", 2), "two": ("current", 2)}
    assert held(vd, "one", "f") == held(vd, "two", "f") == b"v2!"


def test_write_to_all_enabled_providers_by_default(vd: Any) -> None:
    out = vd.write("/f", io.BytesIO(b"abc"), 3)
    assert {r.provider for r in out.replicas} == {"one", "two"}


def test_write_with_an_unknown_length(vd: Any) -> None:
    class Unsized(io.RawIOBase):
        """A pipe-like stream: no length, short reads."""

        def __init__(self, data: bytes) -> None:
            self._data = memoryview(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            n = min(len(b), len(self._data), 1000)
            b[:n] = self._data[:n]
            self._data = self._data[n:]
            return n

    out = vd.write("/u.bin", Unsized(DATA), None, to=["one", "two"])
    assert (out.size, out.generation, out.hash) == (N, 1, md5(DATA))
    assert replicas(vd, "/u.bin") == {"one": ("current", 1), "two": ("current", 1)}
    assert held(vd, "one", "u.bin") == held(vd, "two", "u.bin") == DATA


@pytest.mark.parametrize("given", [N - 1, N + 1, 0], ids=["longer", "shorter", "not empty"])
def test_write_refuses_a_stream_of_another_length(vd: Any, given: int) -> None:
    with pytest.raises(Conflict, match="nothing written"):
        vd.write("/new", io.BytesIO(DATA), given, to=["one", "two"])
    with pytest.raises(NotFound):
        vd.stat("/new")
    assert vd.ls("/").entries == []
    for name in ("one", "two"):
        assert not vd.backend(name).exists("new")
    # over an existing file: its version, its bytes and its replicas stay as they were
    before = vd.write("/old", io.BytesIO(b"kept"), 4, to=["one", "two"])
    with pytest.raises(Conflict):
        vd.write("/old", io.BytesIO(DATA), given, to=["one", "two"])
    assert vd.stat("/old") == before
    assert held(vd, "one", "old") == held(vd, "two", "old") == b"kept"


def test_write_onto_a_directory_is_refused(vd: Any) -> None:
    vd.mkdir("/d")
    with pytest.raises(IsADirectory, match=r"^is a directory: /d$"):
        vd.write("/d", io.BytesIO(b"x"), 1)
    assert vd.stat("/d").kind == "dir"


# --- bounded memory --------------------------------------------------------------------------
class Generated(io.RawIOBase):
    """`size` bytes made chunk by chunk as they are read (never held whole), hashed as made."""

    def __init__(self, size: int, seed: int = 7) -> None:
        self._chunks = self._make(size, random.Random(seed))
        self._left = b""
        self.md5 = hashlib.md5()

    def _make(self, size: int, rng: random.Random) -> Iterator[bytes]:
        while size > 0:
            chunk = rng.randbytes(min(size, MiB))
            self.md5.update(chunk)
            size -= len(chunk)
            yield chunk

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self._left:
            self._left = next(self._chunks, b"")
        n = min(len(b), len(self._left))
        b[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return "md5:" + h.hexdigest()


def test_a_100_mib_write_runs_in_bounded_memory(home: Path, tmp_path: Path) -> None:
    from cdir.config import Settings
    from cdir.vdir import VDir

    v = VDir(Settings(catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}"))
    v.add_provider("one", "local", str(tmp_path / "one"), {})
    v.add_provider("two", "local", str(tmp_path / "two"), {})
    size = 100 * MiB + 12_345
    stream = Generated(size)
    tracemalloc.start()
    try:
        out = v.write("/big.bin", stream, size, to=["one", "two"])  # two copies from one
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * MiB, f"peak {peak / MiB:.1f} MiB"
    want = "md5:" + stream.md5.hexdigest()
    assert (out.size, out.hash, out.generation) == (size, want, 1)
    assert {r.provider: r.state for r in out.replicas} == {"one": "current", "two": "current"}
    for name in ("one", "two"):
        assert os.path.getsize(tmp_path / name / "big.bin") == size
        assert file_md5(tmp_path / name / "big.bin") == want
    v.close()
