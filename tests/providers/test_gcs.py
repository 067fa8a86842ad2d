"""The gcs provider against fake-gcs-server: the conformance suite, plus what only GCS shows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import google_crc32c
import pytest

from cdir.errors import Conflict, NotFound, Unavailable, UsageError
from cdir.providers.gcs import GCSProvider
from cdir.providers.testing import HASH_FUNCTIONS, ProviderSuite, stream
from tests.servers.gcs import GCSServer, provider_config
from tests.servers.util import free_port


def make(server: GCSServer, **options: Any) -> GCSProvider:
    cfg = provider_config(server)
    return GCSProvider("gcs-test", cfg["root"], {**cfg["options"], **options}, cfg["secrets"])


def crc32c_hex(data: bytes) -> str:
    return f"{google_crc32c.value(data):08x}"


class TestGCS(ProviderSuite):
    hash_functions = {**HASH_FUNCTIONS, "crc32c": crc32c_hex}

    @pytest.fixture
    def provider(self, gcs_server: GCSServer) -> Iterator[GCSProvider]:
        p = make(gcs_server, page_size=7)
        yield p
        p.close()


def requests_seen(p: GCSProvider) -> list[str]:
    """Method and URL of every HTTP request the provider sends from now on."""
    p.check()  # builds the client and its session
    seen: list[str] = []
    assert p._http is not None
    p._http.hooks["response"].append(
        lambda r, *a, **k: seen.append(f"{r.request.method} {r.request.url}"))
    return seen


@pytest.mark.parametrize("known_size", [True, False])
def test_resumable_upload_above_threshold(gcs_server: GCSServer, known_size: bool) -> None:
    p = make(gcs_server, multipart_threshold=256 * 1024, chunk_size=256 * 1024)
    try:
        data = os.urandom(1024 * 1024 + 7)
        seen = requests_seen(p)
        got = p.put_stream(stream(data), "big.bin", len(data) if known_size else None, 123)
        assert sum(u.startswith("POST ") and "uploadType=resumable" in u for u in seen) == 1, seen
        assert sum(u.startswith("PUT ") for u in seen) == 5, seen  # 4 full chunks + the rest
        assert not any("uploadType=multipart" in u for u in seen)
        st = p.stat("big.bin")
        assert (st.size, st.mtime_ns, st.fingerprint) == (len(data), 123, got.fingerprint)
        assert st.hashes["crc32c"] == crc32c_hex(data)
        assert p.read_bytes("big.bin") == data
        # a wrong announced size or a broken source never finalizes the upload
        for size in (700_000, 300_000):
            with pytest.raises(Conflict):
                p.put_stream(stream(os.urandom(600_000)), "big.bin", size=size)
        with pytest.raises(Exception, match="broke"):
            p.put_stream(stream(os.urandom(600_000), fail=True), "big.bin")
        assert p.read_bytes("big.bin") == data
    finally:
        p.delete_tree("")
        p.close()


def test_small_files_take_one_request(gcs_server: GCSServer) -> None:
    p = make(gcs_server)
    try:
        seen = requests_seen(p)
        p.put_stream(stream(b"x" * 1000), "small", None, 5)
        assert len(seen) == 1 and "uploadType=multipart" in seen[0], seen
    finally:
        p.delete_tree("")
        p.close()


def test_missing_bucket_is_named(gcs_server: GCSServer) -> None:
    p = GCSProvider("gcs-test", "no-such-bucket/x", provider_config(gcs_server)["options"])
    for op in (p.check, lambda: list(p.list("")), lambda: p.stat("f"),
               lambda: p.put_stream(stream(b"x"), "f")):
        with pytest.raises(NotFound, match="no-such-bucket"):
            op()


def test_server_down_is_unavailable() -> None:
    p = GCSProvider("gcs-test", "b/x", {"endpoint": f"http://127.0.0.1:{free_port()}",
                                        "anonymous": True, "retry_timeout": 0})
    with pytest.raises(Unavailable) as err:
        p.check()
    assert err.value.retryable
    assert "\n" not in str(err.value)


def test_bad_service_account_json_is_a_usage_error() -> None:
    p = GCSProvider("gcs-test", "b", {}, {"service_account_json": '{"type": "service_account"}'})
    with pytest.raises(UsageError, match="service_account_json"):
        p.check()
