"""`ProviderSuite`: the tests every provider passes (usage in the package docstring)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cdir.errors import CdirError, NotADirectory, NotFound, Unsupported
from cdir.providers.base import (
    CHUNK,
    TMP_PREFIX,
    ChangeBatch,
    Provider,
    RemoteStat,
    host_tag,
    temp_name,
)
from cdir.providers.testing.data import (
    AWKWARD_NAMES,
    HASH_FUNCTIONS,
    MiB,
    StreamBroke,
    first_difference,
    name_of_bytes,
    stream,
)

# Fixed, sub-second mtimes (2020-09-13 and 2001-09-09) so precision loss shows.
MTIME_A = 1_600_000_000_123_456_789
MTIME_B = 1_000_000_000_987_654_321


def listing(provider: Provider, path: str, recursive: bool = False) -> dict[str, RemoteStat]:
    """path → entry, failing if an entry is listed twice (e.g. a prefix seen on two pages)."""
    out: dict[str, RemoteStat] = {}
    for st in provider.list(path, recursive):
        assert st.path not in out, f"{st.path!r} listed twice"
        out[st.path] = st
    return out


def kinds(provider: Provider, path: str, recursive: bool = False) -> dict[str, str]:
    return {p: st.kind for p, st in listing(provider, path, recursive).items()}


def require(provider: Provider, flag: str, want: Any = True) -> None:
    """Skip unless `capabilities.<flag>` is `want` (truthiness for sets and numbers)."""
    have = getattr(provider.capabilities, flag)
    if bool(have) != bool(want):
        if want:
            pytest.skip(f"provider lacks capabilities.{flag} (it is {have!r})")
        pytest.skip(f"only for providers without capabilities.{flag} (it is {have!r})")


def dead_pid() -> int:
    """A process id that no process on this machine has now."""
    for pid in range(2**22 - 1, 1, -1):  # above most pid_max settings: no such process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            continue  # another user's process
    raise RuntimeError("no free process id found")


class ProviderSuite:
    """Conformance tests for one `Provider`. Subclass as `TestSomething` and define a `provider`
    fixture; every test works below its own fresh directory `base` and deletes it afterwards."""

    # Size of the large-file tests; remote subclasses may lower it to keep their runs short.
    large_file_size: ClassVar[int] = 20 * MiB
    # Entries written for the paging test: give the provider options={"page_size": 7} so a
    # listing takes several pages, with directories (common prefixes) spread over them.
    paging_files: ClassVar[int] = 20
    paging_dirs: ClassVar[int] = 10
    # Name prefix (no "/") of each test's directory below the provider root.
    prefix: ClassVar[str] = "cdir-suite-"
    # Test name ("test_x" or "test_x[param]") → why this provider fails it: the test is then
    # expected to fail (strict xfail), so a gap stays visible and a fix is noticed.
    known_gaps: ClassVar[Mapping[str, str]] = {}
    # Hash kinds the suite can compute to check `hashes`; others are only checked non-empty.
    hash_functions: ClassVar[Mapping[str, Callable[[bytes], str]]] = HASH_FUNCTIONS

    def provider_at(self, provider: Provider, path: str) -> Provider:
        """A provider like `provider` whose root is `path` below its root. Override when a
        root is not a string that "/" extends (then close() is called on what this returns)."""
        root = f"{provider.root.rstrip('/')}/{path}" if provider.root else path
        return type(provider)(f"{provider.name}-sub", root, provider.opts, provider.secrets)

    # --- fixtures -----------------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def _known_gap(self, request: pytest.FixtureRequest) -> None:
        node = request.node
        reason = self.known_gaps.get(node.name) or self.known_gaps.get(
            getattr(node, "originalname", node.name)
        )
        if reason:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))

    @pytest.fixture
    def base(self, provider: Provider) -> Iterator[str]:
        path = f"{self.prefix}{uuid.uuid4().hex[:12]}"
        yield path
        provider.delete_tree(path)

    # --- helpers ------------------------------------------------------------------------
    def put(
        self,
        provider: Provider,
        path: str,
        data: bytes,
        *,
        known_size: bool = True,
        mtime_ns: int | None = None,
    ) -> RemoteStat:
        """put_stream from an unseekable stream; the result must be what stat then says."""
        size = len(data) if known_size else None
        got = provider.put_stream(stream(data), path, size, mtime_ns)
        assert (got.path, got.kind, got.size) == (path, "file", len(data))
        assert got.fingerprint, "a file's fingerprint must not be empty"
        now = provider.stat(path)
        assert (now.path, now.kind, now.size, now.fingerprint) == (
            got.path,
            got.kind,
            got.size,
            got.fingerprint,
        ), "put_stream must return the stat of what it wrote"
        self.check_hashes(provider, got, data)
        self.check_hashes(provider, now, data)
        return got

    def check_hashes(self, provider: Provider, st: RemoteStat, data: bytes) -> None:
        """`st` has every declared hash kind, and each hash it has matches `data`."""
        for kind in provider.capabilities.hash_kinds:
            assert st.hashes.get(kind), f"{st.path}: no {kind} hash"
        for kind, value in st.hashes.items():
            if kind in self.hash_functions:
                assert value == self.hash_functions[kind](data), f"{st.path}: wrong {kind}"

    @staticmethod
    def assert_mtime(provider: Provider, got: int | None, want: int) -> None:
        precision = provider.capabilities.mtime_precision_ns
        assert got is not None, "no mtime"
        assert abs(got - want) < precision, f"mtime {got}, set {want} (precision {precision} ns)"

    def tree(self, provider: Provider, base: str) -> dict[str, bytes]:
        files = {
            f"{base}/a.txt": b"a",
            f"{base}/b.bin": b"bb",
            f"{base}/sub/c.txt": b"ccc",
            f"{base}/sub/deeper/d.txt": b"dddd",
        }
        for path, data in files.items():
            self.put(provider, path, data)
        return files

    # --- listing ------------------------------------------------------------------------
    def test_list(self, provider: Provider, base: str) -> None:
        files = self.tree(provider, base)
        top = listing(provider, base)
        assert {p: st.kind for p, st in top.items()} == {
            f"{base}/a.txt": "file",
            f"{base}/b.bin": "file",
            f"{base}/sub": "dir",
        }
        assert top[f"{base}/sub"].name == "sub"
        for path in (f"{base}/a.txt", f"{base}/b.bin"):
            st = provider.stat(path)
            assert (top[path].size, top[path].fingerprint) == (len(files[path]), st.fingerprint)
            assert top[path].mtime_ns is not None
        assert kinds(provider, f"{base}/sub") == {
            f"{base}/sub/c.txt": "file",
            f"{base}/sub/deeper": "dir",
        }
        assert kinds(provider, f"{base}/sub/deeper") == {f"{base}/sub/deeper/d.txt": "file"}

    def test_list_recursive(self, provider: Provider, base: str) -> None:
        files = self.tree(provider, base)
        everything = listing(provider, base, recursive=True)
        assert {p: st.kind for p, st in everything.items()} == {
            **dict.fromkeys(files, "file"),
            f"{base}/sub": "dir",
            f"{base}/sub/deeper": "dir",
        }
        for path, data in files.items():
            assert everything[path].size == len(data)
            assert everything[path].fingerprint == provider.stat(path).fingerprint
        assert kinds(provider, f"{base}/sub", recursive=True) == {
            f"{base}/sub/c.txt": "file",
            f"{base}/sub/deeper": "dir",
            f"{base}/sub/deeper/d.txt": "file",
        }

    def test_list_missing_raises_not_found(self, provider: Provider, base: str) -> None:
        self.put(provider, f"{base}/file", b"x")
        with pytest.raises(NotFound):
            list(provider.list(f"{base}/missing"))
        with pytest.raises(NotFound):
            list(provider.list(f"{base}/missing", recursive=True))
        with pytest.raises((NotADirectory, NotFound)):
            list(provider.list(f"{base}/file"))

    def test_list_pages(self, provider: Provider, base: str) -> None:
        top = f"{base}/many"
        files = [f"{top}/f{i:03d}" for i in range(self.paging_files)]
        dirs = [f"{top}/d{i:03d}" for i in range(self.paging_dirs)]
        for path in files:
            self.put(provider, path, path.encode())
        for path in dirs:
            self.put(provider, f"{path}/x", b"")
        flat = {**dict.fromkeys(files, "file"), **dict.fromkeys(dirs, "dir")}
        assert kinds(provider, top) == flat
        assert kinds(provider, top, recursive=True) == {
            **flat,
            **{f"{d}/x": "file" for d in dirs},
        }

    def test_fresh_root_lists_empty(self, provider: Provider, base: str) -> None:
        sub = self.provider_at(provider, f"{base}/root")
        try:
            assert list(sub.list("")) == []
            assert list(sub.list("", recursive=True)) == []
            sub.create_root()  # as `provider add` does; a write never creates a root itself
            self.put(sub, "a/b.txt", b"below a root")
            # paths stay relative to the sub-provider's own root
            assert kinds(sub, "") == {"a": "dir"}
            assert kinds(sub, "", recursive=True) == {"a": "dir", "a/b.txt": "file"}
            assert provider.read_bytes(f"{base}/root/a/b.txt") == b"below a root"
            sub.delete_tree("a")
            assert list(sub.list("")) == []
        finally:
            sub.close()

    def test_list_hides_upload_temporaries(self, provider: Provider, base: str) -> None:
        leftover = f"{base}/tmp/{TMP_PREFIX}crashed-upload"
        provider.put_stream(stream(b"partial"), leftover)
        self.put(provider, f"{base}/tmp/real", b"real")
        assert kinds(provider, f"{base}/tmp") == {f"{base}/tmp/real": "file"}
        assert f"{base}/tmp/{TMP_PREFIX}crashed-upload" not in kinds(provider, base, True)
        # delete_tree must not miss what listings hide, or it would leave litter behind
        provider.delete_tree(f"{base}/tmp")
        assert not provider.exists(leftover)

    def test_reap_temporaries(self, provider: Provider, base: str) -> None:
        require(provider, "temporaries")
        folder = f"{base}/tmp"
        elsewhere = f"{int(host_tag(), 16) ^ 1:08x}"  # another machine's tag
        dead, live = temp_name(pid=dead_pid()), temp_name()
        # another machine's process ids mean nothing here: its temporary waits out a day
        remote = temp_name(pid=dead_pid(), host=elsewhere)
        for name in (dead, live, remote):
            provider.put_stream(stream(b"partial"), f"{folder}/{name}")
        self.put(provider, f"{folder}/real", b"real")
        # a folder that is gone, or a file, is skipped without an error
        assert provider.reap_temporaries([f"{base}/gone", folder, f"{folder}/real"]) == 1
        assert not provider.exists(f"{folder}/{dead}")
        assert provider.exists(f"{folder}/{live}") and provider.exists(f"{folder}/{remote}")
        assert provider.read_bytes(f"{folder}/real") == b"real"
        if provider.capabilities.set_mtime:  # another machine's, over a day old: orphaned
            stale = f"{folder}/{temp_name(pid=os.getpid(), host=elsewhere)}"
            provider.put_stream(stream(b"partial"), stale, mtime_ns=MTIME_B)
            assert provider.reap_temporaries([folder]) == 1
            assert not provider.exists(stale) and provider.exists(f"{folder}/{remote}")
        assert kinds(provider, folder) == {f"{folder}/real": "file"}

    # --- stat ---------------------------------------------------------------------------
    def test_stat_file(self, provider: Provider, base: str) -> None:
        path = f"{base}/dir/file.txt"
        written = self.put(provider, path, b"some content")
        st = provider.stat(path)
        assert (st.path, st.name, st.kind, st.size) == (path, "file.txt", "file", 12)
        assert isinstance(st.mtime_ns, int)
        assert st.fingerprint == written.fingerprint
        # reading must not look like a change (no atime in fingerprints)
        assert provider.read_bytes(path) == b"some content"
        assert provider.stat(path).fingerprint == st.fingerprint
        assert provider.exists(path)

    def test_stat_dir(self, provider: Provider, base: str) -> None:
        self.put(provider, f"{base}/sub/inner/f", b"x")
        for path in (f"{base}/sub", f"{base}/sub/inner"):
            st = provider.stat(path)
            assert (st.path, st.kind) == (path, "dir")
            assert provider.exists(path)

    def test_fingerprint_changes_with_size(self, provider: Provider, base: str) -> None:
        path = f"{base}/f"
        one = self.put(provider, path, b"one")
        two = self.put(provider, path, b"three")
        assert one.fingerprint != two.fingerprint

    def test_fingerprint_changes_with_same_size_content(
        self, provider: Provider, base: str
    ) -> None:
        # Back to back, so within one tick of a coarse clock; then with the same set mtime.
        path = f"{base}/f"
        one = self.put(provider, path, b"aaaa")
        two = self.put(provider, path, b"bbbb")
        assert one.fingerprint != two.fingerprint
        three = self.put(provider, path, b"cccc", mtime_ns=MTIME_A)
        four = self.put(provider, path, b"dddd", mtime_ns=MTIME_A)
        assert three.fingerprint != four.fingerprint

    def test_hashes(self, provider: Provider, base: str) -> None:
        require(provider, "hash_kinds")
        for i, data in enumerate((b"", b"hello", os.urandom(100_003))):
            for known_size in (True, False):
                path = f"{base}/h{i}-{known_size}"
                self.put(provider, path, data, known_size=known_size)
                self.check_hashes(provider, provider.stat(path), data)

    # --- mkdir --------------------------------------------------------------------------
    def test_mkdir(self, provider: Provider, base: str) -> None:
        require(provider, "empty_dirs")
        path = f"{base}/a/b/c"
        provider.mkdir(path)
        provider.mkdir(path)  # idempotent
        provider.mkdir(f"{base}/a")  # an existing parent too
        assert provider.stat(path).kind == "dir"
        assert kinds(provider, f"{base}/a/b") == {path: "dir"}
        assert list(provider.list(path)) == []
        assert kinds(provider, base, recursive=True) == {
            f"{base}/a": "dir",
            f"{base}/a/b": "dir",
            path: "dir",
        }
        self.put(provider, f"{path}/f", b"x")
        provider.mkdir(path)  # no effect on a directory that holds files
        assert kinds(provider, path) == {f"{path}/f": "file"}

    def test_mkdir_without_empty_dirs_is_a_no_op(self, provider: Provider, base: str) -> None:
        require(provider, "empty_dirs", False)
        self.put(provider, f"{base}/anchor", b"x")
        provider.mkdir(f"{base}/empty/deeper")
        provider.mkdir(f"{base}/empty/deeper")
        assert kinds(provider, base) == {f"{base}/anchor": "file"}
        assert not provider.exists(f"{base}/empty")
        with pytest.raises(NotFound):
            list(provider.list(f"{base}/empty"))

    # --- writing ------------------------------------------------------------------------
    def test_put_stream_known_size(self, provider: Provider, base: str) -> None:
        data = os.urandom(256 * 1024 + 3)
        self.put(provider, f"{base}/known", data)
        assert provider.read_bytes(f"{base}/known") == data

    def test_put_stream_unknown_size(self, provider: Provider, base: str) -> None:
        data = os.urandom(MiB + 5)
        self.put(provider, f"{base}/unknown", data, known_size=False)
        assert provider.read_bytes(f"{base}/unknown") == data

    def test_writes_report_md5(self, provider: Provider, base: str, tmp_path: Path) -> None:
        # every version gets a content hash: hashed as the bytes stream, or the server's
        for i, data in enumerate((b"", b"hello", os.urandom(MiB + 17))):
            md5 = hashlib.md5(data).hexdigest()
            for known_size in (True, False):
                got = self.put(provider, f"{base}/s{i}-{known_size}", data, known_size=known_size)
                assert got.hashes.get("md5") == md5, f"put_stream of {len(data)} bytes"
            src = tmp_path / f"src{i}"
            src.write_bytes(data)
            got = provider.put_file(src, f"{base}/f{i}")
            assert got.hashes.get("md5") == md5, f"put_file of {len(data)} bytes"

    def test_put_creates_parents(self, provider: Provider, base: str) -> None:
        self.put(provider, f"{base}/x/y/z/f.txt", b"deep")
        assert kinds(provider, f"{base}/x/y") == {f"{base}/x/y/z": "dir"}

    def test_put_file(self, provider: Provider, base: str, tmp_path: Path) -> None:
        data = os.urandom(70_001)
        src = tmp_path / "src.bin"
        src.write_bytes(data)
        got = provider.put_file(src, f"{base}/put-file.bin")
        st = provider.stat(f"{base}/put-file.bin")
        assert (got.path, got.kind, got.size, got.fingerprint) == (
            st.path,
            "file",
            len(data),
            st.fingerprint,
        )
        assert provider.read_bytes(st.path) == data
        assert src.read_bytes() == data

    def test_zero_length_file(self, provider: Provider, base: str, tmp_path: Path) -> None:
        self.put(provider, f"{base}/known", b"")
        self.put(provider, f"{base}/unknown", b"", known_size=False)
        empty = tmp_path / "empty"
        empty.touch()
        assert provider.put_file(empty, f"{base}/from-file").size == 0
        sizes = {p: st.size for p, st in listing(provider, base).items()}
        assert sizes == dict.fromkeys((f"{base}/known", f"{base}/unknown", f"{base}/from-file"), 0)
        assert provider.read_bytes(f"{base}/known") == b""
        out = tmp_path / "out"
        provider.get_file(f"{base}/unknown", out)
        assert out.read_bytes() == b""

    def test_overwrite(self, provider: Provider, base: str) -> None:
        path = f"{base}/f"
        first = self.put(provider, path, b"the first version, longer")
        second = self.put(provider, path, b"second")
        assert provider.read_bytes(path) == b"second"
        assert provider.stat(path).size == 6
        assert first.fingerprint != second.fingerprint
        entries = listing(provider, base)
        assert list(entries) == [path]
        assert entries[path].size == 6
        bigger = os.urandom(10_000)
        self.put(provider, path, bigger)
        assert provider.read_bytes(path) == bigger

    def test_failed_upload_keeps_old_version(self, provider: Provider, base: str) -> None:
        path = f"{base}/f"
        self.put(provider, path, b"old version")
        new = os.urandom(100_000)
        for size in (len(new) + 1, None):
            with pytest.raises((StreamBroke, CdirError)):
                provider.put_stream(stream(new, fail=True), path, size)
            assert provider.read_bytes(path) == b"old version"
            assert kinds(provider, base) == {path: "file"}

    def test_put_stream_wrong_size_fails(self, provider: Provider, base: str) -> None:
        # The source changed while being sent: storing what came would hide it.
        path = f"{base}/f"
        self.put(provider, path, b"old version")
        for size in (20, 5):  # the stream ends early, or runs long
            with pytest.raises(CdirError):
                provider.put_stream(stream(b"0123456789"), path, size=size)
            assert provider.read_bytes(path) == b"old version"
        assert kinds(provider, base) == {path: "file"}

    def test_large_file(self, provider: Provider, base: str, tmp_path: Path) -> None:
        data = os.urandom(self.large_file_size)
        src, back = tmp_path / "large.bin", tmp_path / "back.bin"
        src.write_bytes(data)
        path = f"{base}/large.bin"
        got = provider.put_file(src, path)
        st = provider.stat(path)
        assert (got.size, got.fingerprint) == (len(data), st.fingerprint)
        assert got.hashes.get("md5") == hashlib.md5(data).hexdigest()
        self.check_hashes(provider, st, data)
        provider.get_file(path, back)
        assert first_difference(back.read_bytes(), data) is None
        if provider.capabilities.range_reads:
            assert provider.read_bytes(path, len(data) - 10) == data[-10:]

    def test_large_file_unknown_size(self, provider: Provider, base: str) -> None:
        data = os.urandom(self.large_file_size)
        path = f"{base}/large-stream.bin"
        got = self.put(provider, path, data, known_size=False)
        assert got.hashes.get("md5") == hashlib.md5(data).hexdigest()
        digest = hashlib.sha256()
        for chunk in provider.read_chunks(path):
            digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()

    # --- reading ------------------------------------------------------------------------
    def test_read_ranges(self, provider: Provider, base: str) -> None:
        require(provider, "range_reads")
        data = os.urandom(CHUNK + 4099)  # spans a chunk boundary
        n = len(data)
        path = f"{base}/ranges.bin"
        self.put(provider, path, data)
        ranges: list[tuple[int, int | None]] = [
            (0, None), (10, None), (n - 1, None), (n, None), (n + 10, None),  # start only
            (0, 10), (10, 20), (0, n), (5, 5), (CHUNK - 3, CHUNK + 3),  # start and end
            (n - 10, n + 100), (n + 5, n + 10),  # end past the size
        ]  # fmt: skip
        for start, end in ranges:
            got = provider.read_bytes(path, start, end)
            assert first_difference(got, data[start:end]) is None, f"range [{start}, {end})"
        chunks = list(provider.read_chunks(path, 100, 200))
        assert all(isinstance(c, bytes) for c in chunks)
        assert b"".join(chunks) == data[100:200]

    def test_get_file(self, provider: Provider, base: str, tmp_path: Path) -> None:
        path = f"{base}/f.bin"
        data = os.urandom(50_000)
        self.put(provider, path, data)
        dest = tmp_path / "dl" / "sub" / "f.bin"  # parents are created
        provider.get_file(path, dest)
        assert dest.read_bytes() == data
        dest.write_bytes(b"a local file to replace")
        provider.get_file(path, dest)
        assert dest.read_bytes() == data
        # a failed download leaves the local file alone and no temporary beside it
        with pytest.raises(NotFound):
            provider.get_file(f"{base}/missing", dest)
        assert dest.read_bytes() == data
        with pytest.raises(NotFound):
            provider.get_file(f"{base}/missing", dest.parent / "new")
        assert os.listdir(dest.parent) == ["f.bin"]

    def test_missing_paths_raise_not_found(
        self, provider: Provider, base: str, tmp_path: Path
    ) -> None:
        self.put(provider, f"{base}/present", b"x")
        missing = f"{base}/no/such.file"
        ops: dict[str, Callable[[], object]] = {
            "stat": lambda: provider.stat(missing),
            "read_bytes": lambda: provider.read_bytes(missing),
            "read_chunks": lambda: list(provider.read_chunks(missing)),
            "read_chunks range": lambda: list(provider.read_chunks(missing, 1, 2)),
            "delete": lambda: provider.delete(missing),
            "delete sibling": lambda: provider.delete(f"{base}/absent"),
            "get_file": lambda: provider.get_file(missing, tmp_path / "x"),
        }
        caps = provider.capabilities
        if caps.set_mtime:
            ops["set_mtime"] = lambda: provider.set_mtime(missing, MTIME_A)
        if caps.server_side_copy:
            ops["copy"] = lambda: provider.copy(missing, f"{base}/copy")
        if caps.server_side_move:
            ops["move"] = lambda: provider.move(missing, f"{base}/move")
        for what, op in ops.items():
            try:
                op()
            except NotFound as exc:
                assert isinstance(exc, FileNotFoundError)
                assert str(exc) and "\n" not in str(exc), f"{what}: not a one-line message"
            else:
                pytest.fail(f"{what} of a missing path did not raise NotFound")
        assert not provider.exists(missing)
        assert kinds(provider, base) == {f"{base}/present": "file"}

    # --- deleting -----------------------------------------------------------------------
    def test_delete(self, provider: Provider, base: str) -> None:
        self.put(provider, f"{base}/keep", b"keep")
        self.put(provider, f"{base}/solo/f", b"x")
        provider.delete(f"{base}/solo/f")
        assert not provider.exists(f"{base}/solo/f")
        with pytest.raises(NotFound):
            provider.stat(f"{base}/solo/f")
        with pytest.raises(NotFound):
            provider.delete(f"{base}/solo/f")
        # the emptied directory stays only where directories exist on their own
        expected = {f"{base}/keep": "file"}
        if provider.capabilities.empty_dirs:
            expected[f"{base}/solo"] = "dir"
        assert kinds(provider, base) == expected
        assert provider.read_bytes(f"{base}/keep") == b"keep"

    def test_delete_tree(self, provider: Provider, base: str) -> None:
        tree = f"{base}/tree"
        inside = [f"{tree}/a", f"{tree}/b/c", f"{tree}/b/e/f", f"{tree}/b/e/g h"]
        # siblings that share the prefix "tree": a prefix delete without "/" would take them
        outside = [f"{base}/tree2/x", f"{base}/tree-x", f"{base}/tree.txt"]
        for path in inside + outside:
            self.put(provider, path, path.encode())
        if provider.capabilities.empty_dirs:
            provider.mkdir(f"{tree}/empty/deeper")
        provider.delete_tree(tree)
        for path in [tree, f"{tree}/b", *inside]:
            assert not provider.exists(path), f"{path} survived delete_tree"
        assert kinds(provider, base) == {
            f"{base}/tree2": "dir",
            f"{base}/tree-x": "file",
            f"{base}/tree.txt": "file",
        }
        for path in outside:
            assert provider.read_bytes(path) == path.encode()
        provider.delete_tree(tree)  # absent: no error
        provider.delete_tree(f"{base}/never/was")

    # --- optional features --------------------------------------------------------------
    def test_copy(self, provider: Provider, base: str) -> None:
        require(provider, "server_side_copy")
        src, dst = f"{base}/src.bin", f"{base}/copies/dst.bin"
        data = os.urandom(30_000)
        self.put(provider, src, data)
        got = provider.copy(src, dst)
        st = provider.stat(dst)
        assert (got.path, got.kind, got.size, got.fingerprint) == (
            dst,
            "file",
            len(data),
            st.fingerprint,
        )
        assert provider.read_bytes(dst) == data
        assert provider.read_bytes(src) == data
        self.check_hashes(provider, st, data)
        self.put(provider, src, b"newer")
        provider.copy(src, dst)  # replaces the earlier copy
        assert provider.read_bytes(dst) == b"newer"

    def test_copy_unsupported(self, provider: Provider, base: str) -> None:
        require(provider, "server_side_copy", False)
        self.put(provider, f"{base}/src", b"x")
        with pytest.raises(Unsupported):
            provider.copy(f"{base}/src", f"{base}/dst")

    def test_move(self, provider: Provider, base: str) -> None:
        require(provider, "server_side_move")
        src, dst = f"{base}/src.bin", f"{base}/moved/dst.bin"
        data = os.urandom(30_000)
        self.put(provider, src, data)
        got = provider.move(src, dst)
        st = provider.stat(dst)
        assert (got.path, got.kind, got.size, got.fingerprint) == (
            dst,
            "file",
            len(data),
            st.fingerprint,
        )
        assert provider.read_bytes(dst) == data
        assert not provider.exists(src)
        self.put(provider, src, b"newer")
        provider.move(src, dst)  # replaces the file there
        assert provider.read_bytes(dst) == b"newer"
        assert kinds(provider, base, recursive=True) == {f"{base}/moved": "dir", dst: "file"}

    def test_move_unsupported(self, provider: Provider, base: str) -> None:
        require(provider, "server_side_move", False)
        self.put(provider, f"{base}/src", b"x")
        with pytest.raises(Unsupported):
            provider.move(f"{base}/src", f"{base}/dst")

    def test_put_keeps_mtime(self, provider: Provider, base: str, tmp_path: Path) -> None:
        require(provider, "set_mtime")
        got = self.put(provider, f"{base}/a", b"a", mtime_ns=MTIME_A)
        self.assert_mtime(provider, got.mtime_ns, MTIME_A)
        self.assert_mtime(provider, provider.stat(f"{base}/a").mtime_ns, MTIME_A)
        got = self.put(provider, f"{base}/b", b"b", known_size=False, mtime_ns=MTIME_B)
        self.assert_mtime(provider, provider.stat(f"{base}/b").mtime_ns, MTIME_B)
        src = tmp_path / "src"
        src.write_bytes(b"from a file")
        provider.put_file(src, f"{base}/c", mtime_ns=MTIME_B)
        self.assert_mtime(provider, provider.stat(f"{base}/c").mtime_ns, MTIME_B)

    def test_set_mtime(self, provider: Provider, base: str) -> None:
        require(provider, "set_mtime")
        path = f"{base}/f"
        self.put(provider, path, b"content")
        for mtime in (MTIME_A, MTIME_B):
            got = provider.set_mtime(path, mtime)
            st = provider.stat(path)
            self.assert_mtime(provider, got.mtime_ns, mtime)
            self.assert_mtime(provider, st.mtime_ns, mtime)
            assert (got.size, got.fingerprint) == (st.size, st.fingerprint)
        assert provider.read_bytes(path) == b"content"

    def test_set_mtime_unsupported(self, provider: Provider, base: str) -> None:
        require(provider, "set_mtime", False)
        self.put(provider, f"{base}/f", b"x")
        with pytest.raises(Unsupported):
            provider.set_mtime(f"{base}/f", MTIME_A)

    def test_case_sensitivity(self, provider: Provider, base: str) -> None:
        upper, lower = f"{base}/Name.TXT", f"{base}/name.txt"
        self.put(provider, upper, b"upper")
        if provider.capabilities.case_sensitive:
            assert not provider.exists(lower)
            self.put(provider, lower, b"lower")
            assert provider.read_bytes(upper) == b"upper"
            assert provider.read_bytes(lower) == b"lower"
            assert set(kinds(provider, base)) == {upper, lower}
        else:
            assert provider.read_bytes(lower) == b"upper"

    # --- names --------------------------------------------------------------------------
    @pytest.mark.parametrize("name", AWKWARD_NAMES.values(), ids=AWKWARD_NAMES.keys())
    def test_awkward_name(self, provider: Provider, base: str, tmp_path: Path, name: str) -> None:
        if len(name.encode()) > provider.capabilities.max_name_bytes:
            limit = provider.capabilities.max_name_bytes
            pytest.skip(f"longer than capabilities.max_name_bytes={limit}")
        self.round_trip(provider, base, name, tmp_path)

    def test_longest_name(self, provider: Provider, base: str, tmp_path: Path) -> None:
        # capped: an object store's limit is on the whole key, which also holds `base`
        name = name_of_bytes(min(provider.capabilities.max_name_bytes, 255))
        self.round_trip(provider, base, name, tmp_path)

    def round_trip(self, provider: Provider, base: str, name: str, tmp_path: Path) -> None:
        """`name` as a file and as a directory: put, stat, list, get, delete, unchanged."""
        path, data = f"{base}/{name}", name.encode() * 3
        self.put(provider, path, data)
        st = provider.stat(path)
        assert (st.path, st.name) == (path, name)
        assert kinds(provider, base) == {path: "file"}
        assert provider.read_bytes(path) == data
        provider.get_file(path, tmp_path / "out")
        assert (tmp_path / "out").read_bytes() == data
        provider.delete(path)
        assert not provider.exists(path)
        inner = f"{path}/{name}"
        self.put(provider, inner, data)
        assert kinds(provider, base, recursive=True) == {path: "dir", inner: "file"}
        assert kinds(provider, path) == {inner: "file"}
        assert provider.read_bytes(inner) == data
        provider.delete_tree(path)
        assert not provider.exists(inner)
        assert not provider.exists(path)

    def test_deep_path(self, provider: Provider, base: str, tmp_path: Path) -> None:
        dirs = [base]
        for i in range(25):
            dirs.append(f"{dirs[-1]}/level{i}")
        path = f"{dirs[-1]}/leaf.txt"
        self.put(provider, path, b"deep")
        assert provider.stat(path).size == 4
        assert kinds(provider, base, recursive=True) == {
            **dict.fromkeys(dirs[1:], "dir"),
            path: "file",
        }
        provider.get_file(path, tmp_path / "leaf")
        assert (tmp_path / "leaf").read_bytes() == b"deep"
        provider.delete(path)
        assert not provider.exists(path)
        provider.delete_tree(dirs[1])
        assert not provider.exists(dirs[1])

    # --- change feed ----------------------------------------------------------------------
    # A service's feed may lag its writes: how long the tests wait for a change to show.
    changes_wait_s: ClassVar[float] = 30.0

    def changes_until(
        self, provider: Provider, cursor: str, want: Callable[[ChangeBatch], bool]
    ) -> ChangeBatch:
        """The changes since `cursor`, asked again (from the same cursor) until `want` holds
        of them or `changes_wait_s` passed; the last answer."""
        deadline = time.monotonic() + self.changes_wait_s
        while True:
            got = provider.changes(cursor)
            if want(got) or time.monotonic() > deadline:
                return got
            time.sleep(0.5)  # a remote service's feed catching up, not a timing assumption

    def test_changes_start(self, provider: Provider) -> None:
        require(provider, "changes")
        start = provider.changes(None)
        assert start.cursor and not (start.changed or start.deleted or start.reset)

    def test_changes_report_writes(self, provider: Provider, base: str) -> None:
        require(provider, "changes")
        path = f"{base}/new.txt"
        cursor = provider.changes(None).cursor
        self.put(provider, path, b"new")
        got = self.changes_until(provider, cursor, lambda b: path in b.changed)
        assert path in got.changed and path not in got.deleted and not got.reset
        again = provider.changes(got.cursor)  # nothing new below base since then
        assert not [p for p in again.changed + again.deleted if p.startswith(f"{base}/")]

    def test_changes_report_deletes(self, provider: Provider, base: str) -> None:
        require(provider, "changes")
        path = f"{base}/gone.txt"
        self.put(provider, path, b"gone")
        cursor = provider.changes(None).cursor
        provider.delete(path)
        got = self.changes_until(provider, cursor, lambda b: path in b.deleted)
        assert path in got.deleted and path not in got.changed

    def test_changes_unsupported(self, provider: Provider) -> None:
        require(provider, "changes", False)
        with pytest.raises(Unsupported):
            provider.changes(None)

    # --- service --------------------------------------------------------------------------
    def test_check(self, provider: Provider) -> None:
        provider.check()
