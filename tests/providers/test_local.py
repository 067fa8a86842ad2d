"""The local provider: the conformance suite, plus what only a folder on this machine shows."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from cdir.errors import CdirError, InvalidPath
from cdir.providers.local import LocalProvider
from cdir.providers.testing import ChunkStream, ProviderSuite, kinds, stream
from cdir.providers.testing.data import MiB, StreamBroke


class TestLocal(ProviderSuite):
    @pytest.fixture
    def provider(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProvider]:
        p = LocalProvider("t", str(tmp_path_factory.mktemp("root")))
        yield p
        p.close()


@pytest.fixture
def local(tmp_path: Path) -> LocalProvider:
    return LocalProvider("t", str(tmp_path))


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", "a\0b"]
)
def test_paths_outside_the_root_are_refused(local: LocalProvider, path: str) -> None:
    with pytest.raises(InvalidPath):
        local.stat(path)
    with pytest.raises(InvalidPath):
        local.put_stream(stream(b"x"), path)


def test_new_files_get_the_umask_mode(local: LocalProvider, tmp_path: Path) -> None:
    # mkstemp's 0600 would make replicas private to the daemon's user
    old = os.umask(0o022)
    try:
        local.put_stream(stream(b"x"), "streamed")
        src = tmp_path / "src"
        src.write_bytes(b"x")
        local.put_file(src, "from-file")
        local.copy("streamed", "copied")
        local.get_file("streamed", tmp_path / "downloaded")
    finally:
        os.umask(old)
    for path in ("streamed", "from-file", "copied", "downloaded"):
        assert stat.S_IMODE(os.stat(tmp_path / path).st_mode) == 0o644, path


def test_recursive_list_ends_on_a_symlink_loop(local: LocalProvider, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x")
    os.symlink("..", tmp_path / "d" / "up")
    assert kinds(local, "", recursive=True) == {"d": "dir", "d/f": "file", "d/up": "dir"}


def test_in_place_edit_keeping_mtime_changes_fingerprint(
    local: LocalProvider, tmp_path: Path
) -> None:
    # another program rewrites the file in place, same size, and restores the mtime
    before = local.put_stream(stream(b"aaaa"), "f")
    with open(tmp_path / "f", "r+b") as f:
        f.write(b"bbbb")
    assert before.mtime_ns is not None
    os.utime(tmp_path / "f", ns=(before.mtime_ns, before.mtime_ns))
    assert local.stat("f").fingerprint != before.fingerprint


def test_a_vanished_root_is_a_fault_never_recreated(tmp_path: Path) -> None:
    root = tmp_path / "nas"
    p = LocalProvider("nas", str(root))
    p.create_root()
    p.put_stream(stream(b"one"), "a/x.txt")
    import shutil

    shutil.rmtree(root)  # the disk was unmounted
    from cdir.errors import Unavailable

    with pytest.raises(
        Unavailable, match=r"^nas: root .*/nas is missing \(an unmounted disk\?\); not recreated"
    ):
        p.put_stream(stream(b"two"), "a/x.txt")
    src = tmp_path / "src.txt"
    src.write_bytes(b"three")
    with pytest.raises(Unavailable):
        p.put_file(src, "b/c.txt")
    assert not root.exists()


@pytest.mark.parametrize("size", [0, 4096, 9 * MiB + 5])  # the last one is pipelined
def test_writes_hash_what_they_write(local: LocalProvider, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    src = tmp_path / "src"
    src.write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    assert local.put_file(src, "f").hashes == {"md5": md5}
    whole_chunks = cast(BinaryIO, ChunkStream(data[i : i + MiB] for i in range(0, size, MiB)))
    assert local.put_stream(whole_chunks, "s").hashes == {"md5": md5}
    assert (tmp_path / "f").read_bytes() == data == (tmp_path / "s").read_bytes()
    if size > MiB:  # a big source that breaks at its end leaves the old version, no temporary
        with pytest.raises((StreamBroke, CdirError), match="broke"):
            local.put_stream(stream(os.urandom(size), fail=True), "f")
        assert (tmp_path / "f").read_bytes() == data
        assert sorted(os.listdir(tmp_path)) == ["f", "s", "src"]
