"""The gcs provider against fake-gcs-server: the conformance suite, plus what only GCS shows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import google_crc32c
import pytest

from cdir.errors import NotFound, UsageError
from cdir.providers.gcs import GCSProvider
from cdir.providers.testing import HASH_FUNCTIONS, ProviderSuite, stream
from tests.providers.helpers import (
    assert_bad_sources_change_nothing,
    assert_every_op_raises,
    requests_seen,
    unavailable,
)
from tests.servers.gcs import GCSServer, provider_config
from tests.servers.util import free_port, provider_from


def make(server: GCSServer, **options: Any) -> GCSProvider:
    return provider_from(GCSProvider, "gcs-test", provider_config(server), **options)


def crc32c_hex(data: bytes) -> str:
    return f"{google_crc32c.value(data):08x}"


class TestGCS(ProviderSuite):
    hash_functions = {**HASH_FUNCTIONS, "crc32c": crc32c_hex}

    @pytest.fixture
    def provider(self, gcs_server: GCSServer) -> Iterator[GCSProvider]:
        p = make(gcs_server, page_size=7)
        yield p
        p.close()


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
        assert_bad_sources_change_nothing(p, "big.bin", data)
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
    assert_every_op_raises(p, NotFound, "no-such-bucket")


def test_server_down_is_unavailable() -> None:
    p = GCSProvider(
        "gcs-test",
        "b/x",
        {"endpoint": f"http://127.0.0.1:{free_port()}", "anonymous": True, "retry_timeout": 0},
    )
    unavailable(p.check)


def test_bad_service_account_json_is_a_usage_error() -> None:
    p = GCSProvider("gcs-test", "b", {}, {"service_account_json": '{"type": "service_account"}'})
    with pytest.raises(UsageError, match="service_account_json"):
        p.check()


def test_options_are_typed() -> None:
    p = GCSProvider("g", "b", {"anonymous": "yes", "chunk_size": "512KiB", "retry_timeout": "0"})
    assert (p._anonymous, p._chunk, p._retry, p.single_put_max) == (True, 512 * 1024, None, 8 << 20)
    with pytest.raises(UsageError, match="chunk_size must be a positive multiple of 262144"):
        GCSProvider("g", "b", {"chunk_size": "300KiB"})
