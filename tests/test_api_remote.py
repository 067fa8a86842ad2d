"""The REST service over a real remote server: S3 on SeaweedFS through both URL forms with
ranges and conditional writes, and a real WebDAV server (`rclone serve webdav`) stopped
while the service runs: its requests answer 503 with the JSON error, the others go on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import s3
from tests.service import Running, running_service


@pytest.fixture
def svc(home: Path, tmp_path: Path, s3_server: Any) -> Iterator[tuple[Running, httpx.Client]]:
    home.mkdir(parents=True, exist_ok=True)
    cfg = s3.provider_config(s3_server)
    with running_service(home, register=False) as running:
        running.vdir.add_provider("laptop", "local", str(tmp_path / "laptop"), {})
        running.vdir.add_provider("bucket", "s3", cfg["root"], {**cfg["options"], **cfg["secrets"]})
        headers = {"Authorization": f"Bearer {running.token}"}
        with httpx.Client(base_url=f"{running.url}/api/v1", headers=headers, timeout=120) as c:
            yield running, c


def test_s3_through_both_url_forms(svc: tuple[Running, httpx.Client]) -> None:
    _, api = svc
    body = os.urandom(3 * 1024 * 1024 + 17)
    r = api.put("/replicas/bucket/s3/blob.bin", content=body)
    assert r.status_code == 201, r.text
    assert [x["provider"] for x in r.json()["replicas"]] == ["bucket"]
    assert api.get("/replicas/bucket/s3/blob.bin").content == body
    assert api.get("/files/s3/blob.bin").content == body
    part = api.get("/replicas/bucket/s3/blob.bin", headers={"Range": "bytes=1048570-1048600"})
    assert part.status_code == 206 and part.content == body[1048570:1048601]
    tag = part.headers["etag"]
    assert api.get("/files/s3/blob.bin", headers={"If-None-Match": tag}).status_code == 304
    # a replica on the laptop too, then a read prefers the laptop when told
    assert api.put("/preferred/s3", json={"provider": "laptop"}).status_code == 200
    new = api.put(
        "/files/s3/blob.bin",
        content=b"v2",
        headers={"If-Match": tag},
        params={"to": ["laptop", "bucket"]},
    )
    assert new.status_code == 200 and new.json()["generation"] == 2
    assert api.get("/replicas/bucket/s3/blob.bin").content == b"v2"
    assert (
        api.put("/files/s3/blob.bin", content=b"v3", headers={"If-Match": tag}).status_code == 412
    )
    assert api.head("/replicas/bucket/s3/blob.bin").headers["x-cdir-generation"] == "2"
    assert api.delete("/files/s3/blob.bin").status_code == 200
    assert api.get("/replicas/bucket/s3/blob.bin").status_code == 404


def test_a_provider_down_is_503(home: Path, tmp_path: Path) -> None:
    from tests.servers import webdav
    from tests.servers.util import free_port, running, stop

    data, conf = tmp_path / "dav-data", tmp_path / "rclone.conf"
    data.mkdir()
    conf.touch()
    cmd, server = webdav.rclone_dav(data, conf, free_port())
    url = server.url
    cfg = webdav.provider_config(server, root="down")
    home.mkdir(parents=True, exist_ok=True)
    with (
        running_service(home, register=False) as svc,
        running(cmd, lambda: webdav._answers(url + "/"), "rclone serve webdav") as proc,
    ):
        svc.vdir.add_provider("laptop", "local", str(tmp_path / "laptop"), {})
        svc.vdir.add_provider("dav", "webdav", cfg["root"], {**cfg["options"], **cfg["secrets"]})
        headers = {"Authorization": f"Bearer {svc.token}"}
        with httpx.Client(base_url=f"{svc.url}/api/v1", headers=headers, timeout=120) as api:
            assert (
                api.put("/replicas/dav/x.txt", content=b"x", params={"to": ["dav"]}).status_code
                == 201
            )
            stop(proc)
            for r in (
                api.get("/replicas/dav/x.txt"),
                api.put("/replicas/dav/y.txt", content=b"y"),
                api.post("/providers/dav/test"),
            ):
                assert r.status_code == 503, r.text
                err = r.json()["error"]
                assert err["code"] == "provider_unavailable" and "dav" in err["message"]
                assert "Traceback" not in r.text and webdav.PASSWORD not in r.text
            # the other provider is not held up
            assert (
                api.put("/files/ok.txt", content=b"ok", params={"to": ["laptop"]}).status_code
                == 201
            )
            assert api.get("/files/ok.txt").content == b"ok"
