"""Azurite (Azure Blob emulator) on a free 127.0.0.1 port, in memory, for the azure provider.

`azure_server` (pytest, session scope) and `azure_server_running()` (plain context manager, for
benchmarks) both yield an `AzureServer` with one container already made; `provider_config()`
turns it into what `cdir provider add` takes, `rclone_env()` into an rclone remote for the same
server.
"""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers.util import CACHE, free_port, running, scratch_dir

AZURITE = CACHE / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's fixed development account (public, documented by Microsoft)
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class AzureServer:
    port: int
    account_url: str  # http://127.0.0.1:PORT/devstoreaccount1
    account_name: str
    account_key: str
    container: str  # made at start

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.account_url};"
        )

    def fresh_root(self) -> str:
        """`container/<unique prefix>`: a new, empty root for one test or benchmark."""
        return f"{self.container}/{uuid.uuid4().hex[:12]}"

    def service(self) -> Any:
        """A plain BlobServiceClient for checks that go around the provider."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)


def _answers(port: int) -> bool:
    """Any HTTP answer (403 without auth) means it is up; refused connections raise."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{ACCOUNT}?comp=list", timeout=1):
            pass
    except urllib.error.HTTPError:
        pass
    return True


@contextlib.contextmanager
def azure_server_running(
    container: str = "cdir-test", location: Path | None = None
) -> Iterator[AzureServer]:
    """Start Azurite in memory (or on disk in `location`, for big benchmark files), make
    `container`, and stop the server after."""
    if not AZURITE.exists():
        raise RuntimeError("Azurite not installed: scripts/install-test-servers.sh")
    with scratch_dir("cdir-azurite-") as work:
        port = free_port()
        store = (
            ["--location", str(location)]
            if location
            else ["--inMemoryPersistence", "--extentMemoryLimit", "1024"]
        )
        cmd = [
            str(AZURITE),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            *store,
            "--disableTelemetry",
            "--silent",
            # azure-storage-blob sends a newer API version than Azurite 3.35 knows
            "--skipApiVersionCheck",
        ]
        with running(cmd, lambda: _answers(port), "Azurite", cwd=work):
            server = AzureServer(
                port=port,
                account_url=f"http://127.0.0.1:{port}/{ACCOUNT}",
                account_name=ACCOUNT,
                account_key=KEY,
                container=container,
            )
            with server.service() as svc:
                svc.create_container(container)
            yield server


@pytest.fixture(scope="session")
def azure_server() -> Iterator[AzureServer]:
    with azure_server_running() as server:
        yield server


def provider_config(server: AzureServer, root: str | None = None) -> dict[str, Any]:
    """`cdir provider add` inputs for this server: kind, root, options and secrets."""
    return {
        "kind": "azure",
        "root": root if root is not None else server.fresh_root(),
        "options": {"account_url": server.account_url, "account_name": server.account_name},
        "secrets": {"account_key": server.account_key},
    }


def rclone_env(server: AzureServer, name: str = "AZURE") -> dict[str, str]:
    """Env vars defining rclone remote `name` for this server; paths on it are
    `NAME:container/prefix/...` (the provider's root)."""
    p = f"RCLONE_CONFIG_{name.upper()}_"
    return {
        p + "TYPE": "azureblob",
        p + "ACCOUNT": server.account_name,
        p + "KEY": server.account_key,
        p + "ENDPOINT": server.account_url,
    }
