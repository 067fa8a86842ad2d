"""The azure provider against Azurite: the conformance suite, plus what only Azure shows."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from cdir.errors import NotFound, UsageError
from cdir.providers.azure import AzureProvider
from cdir.providers.testing import ProviderSuite, stream
from tests.providers.helpers import (
    assert_bad_sources_change_nothing,
    assert_every_op_raises,
    auth_refused,
    requests_seen,
    unavailable,
)
from tests.servers.azure import AzureServer, provider_config
from tests.servers.util import free_port, provider_from


def make(server: AzureServer, **options: Any) -> AzureProvider:
    return provider_from(AzureProvider, "azure-test", provider_config(server), **options)


class TestAzure(ProviderSuite):
    @pytest.fixture
    def provider(self, azure_server: AzureServer) -> Iterator[AzureProvider]:
        p = make(azure_server, page_size=7)
        yield p
        p.close()


def test_chunked_upload_above_single_put_size(azure_server: AzureServer) -> None:
    p = make(azure_server, single_put_size=256 * 1024, block_size=100 * 1024, concurrency=3)
    try:
        data = os.urandom(1024 * 1024 + 7)
        seen = requests_seen(p)
        got = p.put_stream(stream(data), "big.bin", size=None, mtime_ns=123)
        blocks = [u for u in seen if "comp=block&" in u or u.endswith("comp=block")]
        assert len(blocks) == 11, seen  # ceil(1 MiB+7 / 100 KiB) Put Block requests
        assert sum("comp=blocklist" in u for u in seen) == 1
        md5 = hashlib.md5(data).hexdigest()
        assert got.hashes == {"md5": md5}
        st = p.stat("big.bin")
        assert (st.size, st.mtime_ns, st.hashes, st.fingerprint) == (
            len(data),
            123,
            {"md5": md5},
            got.fingerprint,
        )
        assert p.read_bytes("big.bin") == data
        # a wrong announced size or a broken source leaves the committed version alone
        assert_bad_sources_change_nothing(p, "big.bin", data)
    finally:
        p.delete_tree("")
        p.close()


def test_bad_account_key_is_an_auth_error(azure_server: AzureServer) -> None:
    p = make(azure_server)
    p.secrets["account_key"] = base64.b64encode(b"not the key" * 6).decode()
    auth_refused(p.check, p.secrets["account_key"])


def test_missing_container_is_named(azure_server: AzureServer) -> None:
    cfg = provider_config(azure_server)
    p = AzureProvider("azure-test", "no-such-container/x", cfg["options"], cfg["secrets"])
    assert_every_op_raises(p, NotFound, "no-such-container")


def test_server_down_is_unavailable(azure_server: AzureServer) -> None:
    url = f"http://127.0.0.1:{free_port()}/{azure_server.account_name}"
    sas = "sv=2025-11-05&ss=b&srt=sco&sp=rl&se=2099-01-01&sig=SECRETSIGNATURE"
    p = AzureProvider("azure-test", "c/x", {"account_url": url, "retries": 0}, {"sas_token": sas})
    assert "SECRETSIGNATURE" not in unavailable(p.check)


@pytest.mark.parametrize("way", ["connection_string", "sas_token"])
def test_other_credentials(azure_server: AzureServer, way: str) -> None:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    cfg = provider_config(azure_server)
    if way == "connection_string":
        opts, secrets = {}, {"connection_string": azure_server.connection_string}
    else:
        token = generate_container_sas(
            azure_server.account_name,
            azure_server.container,
            azure_server.account_key,
            permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        opts, secrets = {"account_url": azure_server.account_url}, {"sas_token": token}
    p = AzureProvider("azure-test", cfg["root"], opts, secrets)
    try:
        p.put_stream(stream(b"hello"), "d/f")
        assert p.copy("d/f", "d/g").size == 5  # the source URL carries the SAS
        assert p.read_bytes("d/g") == b"hello"
        assert {st.path for st in p.list("d")} == {"d/f", "d/g"}
        p.delete_tree("")  # Blob Batch, authorized the same way
        assert list(p.list("", recursive=True)) == []
    finally:
        p.close()


@pytest.mark.parametrize(
    "secrets",
    [
        {},
        {"account_key": "a2V5", "sas_token": "sig=x"},
        {"connection_string": "x", "account_key": "a2V5"},
    ],
)
def test_exactly_one_way_to_authenticate(secrets: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="exactly one"):
        AzureProvider("a", "c", {"account_name": "n"}, secrets)


def test_options_are_typed() -> None:
    key = base64.b64encode(b"k" * 32).decode()
    p = AzureProvider(
        "a",
        "c",
        {"account_name": "n", "single_put_size": "4MiB", "concurrency": "2"},
        {"account_key": key},
    )
    assert (p.single_put_max, p._concurrency, p.page_size, p.conf["timeout"]) == (
        4 << 20,
        2,
        5000,
        60,
    )
    with pytest.raises(UsageError, match="a: option block_size must be a size"):
        AzureProvider("a", "c", {"account_name": "n", "block_size": "big"}, {"account_key": key})
