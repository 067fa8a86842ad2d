"""The memory provider: the conformance suite, plus the shared stores that only it has."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from cdir.errors import InvalidPath, IsADirectory
from cdir.providers.memory import MemoryProvider
from cdir.providers.registry import open_provider
from cdir.providers.testing import ProviderSuite, kinds, stream


@pytest.fixture(autouse=True)
def _fresh_stores() -> Iterator[None]:
    MemoryProvider.reset()
    yield
    MemoryProvider.reset()


class TestMemory(ProviderSuite):
    @pytest.fixture
    def provider(self) -> MemoryProvider:
        return MemoryProvider("t", "suite")


def test_same_root_shares_one_tree() -> None:
    a, b = MemoryProvider("a", "lab"), open_provider("memory", "b", "lab")
    sub = MemoryProvider("s", "lab/sub")
    a.put_stream(stream(b"hello"), "sub/f.txt")
    assert b.read_bytes("sub/f.txt") == b"hello"
    assert kinds(sub, "") == {"f.txt": "file"}
    assert list(MemoryProvider("o", "other").list("")) == []
    MemoryProvider.reset("lab")
    assert list(MemoryProvider("a2", "lab").list("")) == []


def test_paths_are_checked() -> None:
    p = MemoryProvider("t", "x")
    for bad in ("/abs", "a//b", "a/../b", "./a", "a/"):
        with pytest.raises(InvalidPath):
            p.put_stream(stream(b"x"), bad)
    with pytest.raises(InvalidPath):
        p.stat("n" * 256)


def test_moves_are_atomic_and_take_directories() -> None:
    p = MemoryProvider("t", "x")
    p.put_stream(stream(b"1"), "d/a")
    p.put_stream(stream(b"2"), "d/e/b")
    p.move("d", "m/d")
    assert kinds(p, "", recursive=True) == {
        "m": "dir",
        "m/d": "dir",
        "m/d/a": "file",
        "m/d/e": "dir",
        "m/d/e/b": "file",
    }
    with pytest.raises(InvalidPath):
        p.move("m", "m/d/inside")
    with pytest.raises(IsADirectory):
        p.move("m/d/a", "m/d/e")


def test_parallel_writes() -> None:
    p = MemoryProvider("t", "x")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: p.put_stream(stream(bytes([i])), f"a/b/f{i}", 1), range(64)))
    assert len(list(p.list("a/b"))) == 64
    assert len({p.stat(f"a/b/f{i}").fingerprint for i in range(64)}) == 64
