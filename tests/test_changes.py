"""The daemon's use of change feeds: a poll of a provider with `capabilities.changes` asks
its feed first and lists the provider only when something changed (memory providers have a
feed); the cursor is kept in the catalog only after a pass that went well."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdir.providers.memory import MemoryProvider
from cdir.syncd.passes import Passes
from cdir.vdir.sync import CHANGES
from tests.conftest import make_tree


@pytest.fixture
def store() -> Iterator[str]:
    name = f"feed-{uuid.uuid4().hex}"
    yield name
    MemoryProvider.reset(name)


@pytest.fixture
def mem(home: Path, catalog_url: str, store: str) -> Iterator[Any]:
    """A VDir over memory providers `m1` and `m2` (two folders of one store)."""
    from cdir.config import Settings
    from cdir.vdir import VDir

    v = VDir(Settings(catalog_url=catalog_url))
    v.add_provider("m1", "memory", f"{store}/a", {})
    v.add_provider("m2", "memory", f"{store}/b", {})
    yield v
    v.close()


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each provider (by name) was listed."""
    calls: Counter[str] = Counter()
    real = MemoryProvider.list

    def counting(self: MemoryProvider, *args: Any, **kw: Any) -> Any:
        calls[self.name] += 1
        return real(self, *args, **kw)

    monkeypatch.setattr(MemoryProvider, "list", counting)
    return calls


def cursor(v: Any, name: str) -> str | None:
    from cdir.catalog import maintenance

    with v.db.transaction() as s:
        return maintenance.get_state(s, CHANGES + name)


def poll(v: Any, name: str) -> set[str]:
    return Passes(v).run([name], "poll", ["m1", "m2"])


def test_poll_lists_a_provider_only_when_its_feed_changed(
    mem: Any, store: str, listed: Counter[str], tmp_path: Path
) -> None:
    mem.put([str(make_tree(tmp_path / "src", {"a.txt": "A"}) / "a.txt")], "/", progress=False)

    assert poll(mem, "m1") == set()  # no cursor yet: a full pass of m1, then its cursor
    assert listed["m1"] == 1 and cursor(mem, "m1") is not None

    listed.clear()
    assert poll(mem, "m1") == set()  # nothing changed: not listed
    assert listed["m1"] == 0

    # a file saved on m1 behind cdir's back: the feed shows it, m1 is listed, m2 gets it
    MemoryProvider("other", f"{store}/a").put_stream(make_stream(b"new"), "new.txt")
    before = cursor(mem, "m1")
    assert poll(mem, "m1") == set()
    assert listed["m1"] == 1 and cursor(mem, "m1") != before
    assert mem.backend("m2").read_bytes("new.txt") == b"new"

    listed.clear()  # what the pass wrote went to m2, not m1: m1's feed is quiet again
    assert poll(mem, "m1") == set()
    assert listed["m1"] == 0


def test_cursor_kept_only_after_a_pass_without_errors(
    mem: Any, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert poll(mem, "m1") == set()
    kept = cursor(mem, "m1")
    MemoryProvider("other", f"{store}/a").put_stream(make_stream(b"x"), "x.txt")

    def broken(self: MemoryProvider, *args: Any, **kw: Any) -> Any:
        raise OSError("the copy to m2 failed")

    monkeypatch.setattr(MemoryProvider, "put_stream", broken)
    rep = mem.poll("m1")
    assert rep is not None and rep.errors  # the pass went on, with the copy as an error
    assert cursor(mem, "m1") == kept  # the change is asked for again next time
    monkeypatch.undo()
    poll(mem, "m1")
    assert cursor(mem, "m1") != kept
    assert mem.backend("m2").read_bytes("x.txt") == b"x"


def test_remove_provider_forgets_its_cursor(mem: Any) -> None:
    poll(mem, "m1")
    assert cursor(mem, "m1") is not None
    mem.remove_provider("m1", force=True)
    assert cursor(mem, "m1") is None


def make_stream(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
