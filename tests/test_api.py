"""The REST service, driven with httpx over real HTTP against a uvicorn server started by
the test, over local folders as providers (S3 and a provider that is down: test_api_remote)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service import Running, running_service


@pytest.fixture
def svc(home: Path, tmp_path: Path) -> Iterator[Running]:
    home.mkdir(parents=True, exist_ok=True)
    with running_service(home, register=False) as running:
        running.vdir.add_provider("laptop", "local", str(tmp_path / "laptop"), {})
        running.vdir.add_provider("archive", "local", str(tmp_path / "archive"), {})
        yield running


@pytest.fixture
def api(svc: Running) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {svc.token}"}
    with httpx.Client(base_url=f"{svc.url}/api/v1", headers=headers, timeout=60) as c:
        yield c


def error(r: httpx.Response) -> tuple[int, str]:
    body = r.json()["error"]
    assert body["status"] == r.status_code and body["message"]
    return r.status_code, body["code"]


# --- auth --------------------------------------------------------------------------------
def concrete(path: str) -> str:
    """A route's path with its parameters filled in."""
    for name, value in (
        ("{path:path}", "x/y.txt"),
        ("{provider}", "laptop"),
        ("{name}", "laptop"),
        ("{entry_id}", "1"),
        ("{job_id}", "1"),
        ("{upload_id}", "a" * 20),
        ("{n}", "0"),
    ):
        path = path.replace(name, value)
    return path


def declared(routes: Any, prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, included routers walked (FastAPI 0.16x keeps them
    whole instead of copying their routes into the app)."""
    for r in routes:
        if hasattr(r, "original_router"):
            yield from declared(r.original_router.routes, prefix + (r.include_context.prefix or ""))
        else:
            yield prefix + r.path, set(getattr(r, "methods", None) or ())


def test_every_route_but_healthz_needs_the_token(svc: Running) -> None:
    """Enumerates what the app declares: a new route without auth fails here by itself."""
    seen = 0
    with httpx.Client(base_url=svc.url, timeout=30) as c:
        for path, methods in declared(svc.app.routes):
            for method in sorted(methods):
                url = concrete(path)
                for headers in (
                    {},
                    {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Basic {svc.token}"},
                ):
                    r = c.request(method, url, headers=headers)
                    if path == "/healthz":
                        assert r.status_code == 200
                    else:
                        assert r.status_code == 401, (method, url, headers, r.text)
                        if method != "HEAD":
                            assert error(r) == (401, "unauthorized")
                seen += 1
    assert seen > 30


def test_a_rotated_token_works_at_once_and_the_old_one_stops(svc: Running, home: Path) -> None:
    from cdir import service

    new = service.token(service.Files(home), rotate=True)
    with httpx.Client(base_url=f"{svc.url}/api/v1", timeout=30) as c:
        assert c.get("/providers", headers={"Authorization": f"Bearer {new}"}).status_code == 200
        assert (
            c.get("/providers", headers={"Authorization": f"Bearer {svc.token}"}).status_code == 401
        )


# --- files --------------------------------------------------------------------------------
def test_both_url_forms_read_and_write(api: httpx.Client, tmp_path: Path) -> None:
    r = api.put("/files/d/data.csv", content=b"a,b\n1,2\n")
    assert r.status_code == 201
    e = r.json()
    assert (e["path"], e["generation"], e["size"]) == ("/d/data.csv", 1, 8)
    assert {x["provider"] for x in e["replicas"]} == {"laptop", "archive"}
    assert api.get("/files/d/data.csv").content == b"a,b\n1,2\n"
    assert api.get("/replicas/archive/d/data.csv").content == b"a,b\n1,2\n"
    assert api.get("/replicas/archive/d/data.csv").headers["x-cdir-provider"] == "archive"
    # a new version through one provider: every holder is brought up to date
    r = api.put("/replicas/laptop/d/data.csv", content=b"v2")
    assert r.status_code == 200 and r.json()["generation"] == 2
    assert api.get("/files/d/data.csv").content == b"v2"
    assert api.get("/replicas/archive/d/data.csv").content == b"v2"
    assert (tmp_path / "laptop/d/data.csv").read_bytes() == b"v2"
    # a file that lives on one provider only: the other has no replica of it
    api.put("/files/d/one.csv", params={"to": ["laptop"]}, content=b"1")
    assert error(api.get("/replicas/archive/d/one.csv")) == (404, "not_found")
    assert error(api.get("/replicas/nowhere/d/data.csv")) == (404, "not_found")
    assert error(api.get("/files/d")) == (409, "is_a_directory")
    assert error(api.get("/files/d/none.csv")) == (404, "not_found")


def test_head_gives_the_metadata_as_headers(api: httpx.Client) -> None:
    e = api.put(
        "/files/m.bin", content=b"12345", headers={"X-Cdir-Mtime-Ns": "1700000000000000000"}
    ).json()
    h = api.head("/files/m.bin").headers
    assert h["content-length"] == "5"
    assert h["x-cdir-generation"] == "1" and h["x-cdir-id"] == str(e["id"])
    assert h["x-cdir-hash"] == "md5:" + hashlib.md5(b"12345").hexdigest()
    assert h["etag"] == f'"{e["id"]}.1"'
    assert h["last-modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert api.head("/replicas/laptop/m.bin").headers["x-cdir-provider"] == "laptop"
    assert api.head("/files/none.bin").status_code == 404


@pytest.mark.parametrize(
    ("header", "status", "body", "content_range"),
    [
        ("bytes=2-5", 206, b"2345", "bytes 2-5/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-3", 206, b"789", "bytes 7-9/10"),
        ("bytes=8-100", 206, b"89", "bytes 8-9/10"),
        ("bytes=0-0", 206, b"0", "bytes 0-0/10"),
        ("bytes=0-1,4-5", 200, b"0123456789", None),  # several ranges: the whole file
        ("items=0-1", 200, b"0123456789", None),  # not a byte range: ignored
        ("bytes=10-", 416, None, "bytes */10"),
        ("bytes=5-2", 416, None, "bytes */10"),
    ],
)
def test_range_reads(
    api: httpx.Client, header: str, status: int, body: bytes | None, content_range: str | None
) -> None:
    api.put("/files/r.txt", content=b"0123456789")
    for url in ("/files/r.txt", "/replicas/archive/r.txt"):
        r = api.get(url, headers={"Range": header})
        assert r.status_code == status
        assert r.headers.get("content-range") == content_range
        if body is not None:
            assert r.content == body and r.headers["content-length"] == str(len(body))
        else:
            assert error(r) == (416, "range_not_satisfiable")


def test_conditional_requests(api: httpx.Client) -> None:
    first = api.put("/files/c.txt", content=b"one", headers={"If-None-Match": "*"})
    assert first.status_code == 201
    tag = first.headers["etag"]
    # only-if-absent fails once it exists
    assert error(api.put("/files/c.txt", content=b"x", headers={"If-None-Match": "*"})) == (
        412,
        "precondition_failed",
    )
    # a read with the current ETag: 304, no body
    r = api.get("/files/c.txt", headers={"If-None-Match": tag})
    assert r.status_code == 304 and r.content == b""
    # a write made against the current version lands; one against an older fails
    second = api.put("/files/c.txt", content=b"two", headers={"If-Match": tag})
    assert second.status_code == 200 and second.json()["generation"] == 2
    assert error(api.put("/files/c.txt", content=b"three", headers={"If-Match": tag})) == (
        412,
        "precondition_failed",
    )
    assert api.put("/files/c.txt", content=b"three", headers={"If-Match": "2"}).status_code == 200
    assert api.get("/files/c.txt").content == b"three"
    assert api.get("/files/c.txt", headers={"If-None-Match": tag}).status_code == 200
    assert error(api.put("/files/c.txt", content=b"x", headers={"If-Match": '"nonsense"'})) == (
        400,
        "bad_request",
    )


def test_delete(api: httpx.Client, tmp_path: Path) -> None:
    api.put("/files/gone/f.txt", content=b"x")
    r = api.delete("/files/gone/f.txt")
    assert r.status_code == 200 and r.json()["files"] == 1
    assert not (tmp_path / "laptop/gone/f.txt").exists()
    assert error(api.get("/files/gone/f.txt")) == (404, "not_found")
    assert error(api.delete("/files/gone")) == (409, "is_a_directory")
    api.put("/files/gone/g.txt", content=b"y")
    assert error(api.delete("/entries/gone")) == (409, "is_a_directory")  # not empty: -r
    assert api.delete("/entries/gone", params={"recursive": True}).status_code == 200
    assert error(api.get("/entries/gone")) == (404, "not_found")


def test_delete_one_replica_keeps_the_file(api: httpx.Client, tmp_path: Path) -> None:
    api.put("/files/two/f.txt", content=b"both")
    r = api.delete("/replicas/archive/two/f.txt")
    assert r.status_code == 200 and [x["provider"] for x in r.json()["replicas"]] == ["laptop"]
    assert not (tmp_path / "archive/two/f.txt").exists()
    assert api.get("/files/two/f.txt").content == b"both"
    assert error(api.delete("/replicas/archive/two/f.txt")) == (404, "not_found")
    # the last current copy is the file itself: removing it is DELETE /files
    assert error(api.delete("/replicas/laptop/two/f.txt")) == (409, "conflict")
    assert (tmp_path / "laptop/two/f.txt").read_bytes() == b"both"
    assert error(api.delete("/replicas/laptop/two")) == (409, "is_a_directory")
    # a later sync pass does not bring the dropped replica back
    assert api.post("/sync", json={"path": "/"}).json()["copied"] == 0
    assert not (tmp_path / "archive/two/f.txt").exists()


def test_streamed_upload_is_not_held_in_memory(svc: Running, api: httpx.Client) -> None:
    """120 MiB through PUT with a chunked body: the server never holds it whole (traced
    allocations in the service's process stay far below the file's size)."""
    import tracemalloc

    size, block = 120 * 1024 * 1024, b"z" * (1024 * 1024)
    digest = hashlib.md5(usedforsecurity=False)

    def body() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            digest.update(block)
            yield block

    tracemalloc.start()
    try:
        r = api.put("/replicas/laptop/big.bin", content=body())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 201, r.text
    assert r.json()["size"] == size and r.json()["hash"] == "md5:" + digest.hexdigest()
    assert peak < 24 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_a_body_over_the_limit_is_413(home: Path, tmp_path: Path) -> None:
    with running_service(home, register=False, max_upload=1000) as s:
        s.vdir.add_provider("laptop", "local", str(tmp_path / "l"), {})
        headers = {"Authorization": f"Bearer {s.token}"}
        with httpx.Client(base_url=f"{s.url}/api/v1", headers=headers) as c:
            assert error(c.put("/files/a", content=b"x" * 1001)) == (413, "too_large")
            gen = (b"x" * 600 for _ in range(2))  # no Content-Length: counted as it comes
            assert error(c.put("/files/b", content=gen)) == (413, "too_large")
            assert c.get("/entries/").json()["children"] == []


def concurrent_writes_agree(c: httpx.Client) -> None:
    """16 PUTs of one new path from 8 threads: no 5xx, one entry, and the catalog names the
    version the provider holds (the last writer wins; writes of one path take turns)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(lambda i: c.put("/files/w/same.csv", content=b"%d" % i).status_code, range(16))
        )
    assert set(codes) <= {200, 201} and 201 in codes  # which one created it: a race
    same = [x for x in c.get("/entries/w").json()["children"] if x["path"].endswith("e.csv")]
    assert len(same) == 1 and same[0]["generation"] == 16  # each write a version, in turn
    body = c.get("/files/w/same.csv")
    assert "md5:" + hashlib.md5(body.content).hexdigest() == same[0]["hash"]


def test_concurrent_writes_of_one_path(api: httpx.Client) -> None:
    concurrent_writes_agree(api)


# --- entries ------------------------------------------------------------------------------
@pytest.mark.postgres
def test_on_a_postgresql_catalog(home: Path, tmp_path: Path) -> None:
    """A PostgreSQL catalog: its reads go to worker threads (off the event loop); the same
    answers, and concurrent writers of one path give one entry and no 5xx."""
    from tests.conftest import pg_schema

    home.mkdir(parents=True, exist_ok=True)
    with pg_schema() as url, running_service(home, register=False, catalog_url=url) as s:
        assert s.app.state.inline_reads is False
        s.vdir.add_provider("laptop", "local", str(tmp_path / "l"), {})
        headers = {"Authorization": f"Bearer {s.token}"}
        with httpx.Client(base_url=f"{s.url}/api/v1", headers=headers, timeout=60) as c:
            e = c.put("/files/w/t.csv", content=b"x").json()
            assert c.get("/entries/w").json()["children"][0]["path"] == "/w/t.csv"
            assert [h["path"] for h in c.get("/search", params={"pattern": "*.csv"}).json()] == [
                "/w/t.csv"
            ]
            assert c.get("/status/w", params={"recursive": True}).json()[0]["replicas"]
            assert c.get(f"/ids/{e['id']}").json()["path"] == "/w/t.csv"
            assert error(c.get("/entries/nope")) == (404, "not_found")
            concurrent_writes_agree(c)


def test_listings_page_with_a_cursor_and_children_ranges(api: httpx.Client) -> None:
    for i in range(25):
        api.put(f"/files/many/f{i:02}.txt", content=b"x")
    r = api.get("/entries/many", params={"limit": 10})
    page = r.json()
    assert page["entry"]["kind"] == "dir" and len(page["children"]) == 10
    names, cursor = [c["path"] for c in page["children"]], page["next_cursor"]
    while cursor:
        page = api.get("/entries/many", params={"limit": 10, "cursor": cursor}).json()
        names += [c["path"] for c in page["children"]]
        cursor = page["next_cursor"]
    assert names == [f"/many/f{i:02}.txt" for i in range(25)]
    window = api.get("/entries/many", params={"children": "5-9"}).json()
    assert [c["path"] for c in window["children"]] == [f"/many/f{i:02}.txt" for i in range(5, 10)]
    assert error(api.get("/entries/many", params={"children": "9-5"})) == (400, "bad_request")
    root = api.get("/entries/").json()
    assert root["entry"]["path"] == "/" and [c["path"] for c in root["children"]] == ["/many"]
    f = api.get("/entries/many/f00.txt", params={"replicas": True}).json()
    assert f["entry"]["kind"] == "file" and f["children"] == [] and f["entry"]["replicas"]


def test_mkdir_copy_move_search_status_prefer_and_ids(api: httpx.Client) -> None:
    assert api.post("/dirs/p/q", params={"parents": True}).status_code == 201
    assert error(api.post("/dirs/p/q")) == (409, "already_exists")
    e = api.put("/files/p/q/a.csv", content=b"1").json()
    assert (
        api.post("/copy", json={"src": "/p", "dst": "/p2", "recursive": True}).json()["files"] >= 1
    )
    assert api.post("/move", json={"src": "/p2/q/a.csv", "dst": "/p2/q/b.csv"}).status_code == 200
    hits = api.get("/search", params={"pattern": "*.csv"}).json()
    assert sorted(h["path"] for h in hits) == ["/p/q/a.csv", "/p2/q/b.csv"]
    st = api.get("/status/p", params={"recursive": True}).json()
    assert [s["path"] for s in st] == ["/p/q/a.csv"] and len(st[0]["replicas"]) == 2
    assert (
        api.put("/preferred/p", json={"provider": "archive"}).json()["preferred_provider"]
        == "archive"
    )
    assert error(api.put("/preferred/p", json={"provider": "nowhere"}))[0] == 404
    by_id = api.get(f"/ids/{e['id']}").json()
    assert by_id["path"] == "/p/q/a.csv"
    moved = api.post("/move", json={"src": "/p", "dst": "/p3"})
    assert moved.status_code == 200
    assert api.get(f"/ids/{e['id']}").json()["path"] == "/p3/q/a.csv"  # the id stays
    assert error(api.get("/ids/999999")) == (404, "not_found")


def test_providers_never_return_secrets(api: httpx.Client, tmp_path: Path) -> None:
    body = {
        "name": "dav",
        "kind": "webdav",
        "root": "/",
        "check": False,
        "options": {"url": "http://127.0.0.1:9/", "username": "u", "password": "hunter2-secret"},
    }
    r = api.post("/providers", json=body)
    assert r.status_code == 201, r.text
    for resp in (r, api.get("/providers"), api.get("/providers/dav")):
        assert "hunter2-secret" not in resp.text
    assert api.get("/providers/dav").json()["secrets"]["password"].startswith("****")
    assert api.post("/providers/laptop/test").json()["seconds"] >= 0
    assert error(api.post("/providers", json=body)) == (409, "already_exists")
    assert api.delete("/providers/dav").json() == {"name": "dav", "replicas_forgotten": 0}
    assert error(api.get("/providers/dav")) == (404, "not_found")
    bad = api.post("/providers", json={**body, "kind": "ftp"})
    assert error(bad) == (400, "bad_request")


# --- sync, jobs, events, metrics -------------------------------------------------------------
def test_sync_pass_and_a_queued_job(api: httpx.Client, tmp_path: Path) -> None:
    import time

    (tmp_path / "laptop/new").mkdir(parents=True)
    (tmp_path / "laptop/new/n.txt").write_text("made outside cdir")
    rep = api.post("/sync", json={"path": "/"}).json()
    assert rep["imported"] == 1
    assert api.get("/replicas/archive/new/n.txt").content == b"made outside cdir"
    src = tmp_path / "outside"
    src.mkdir()
    (src / "o.txt").write_text("o")
    r = api.post("/jobs", json={"source": f"local:{src}", "destination": "cdir:/in", "name": "in"})
    assert r.status_code == 202
    job = r.json()
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)  # polling the job's state, with a deadline
        job = api.get(f"/jobs/{job['id']}").json()
    assert job["state"] == "done" and job["files_done"] == 1
    assert [j["id"] for j in api.get("/jobs", params={"name": "in"}).json()] == [job["id"]]
    assert error(api.get("/jobs/424242")) == (404, "not_found")
    d = api.get("/daemon").json()
    assert d["running"] is False and d["passes"]


def test_events_stream_with_ids_and_resume(api: httpx.Client) -> None:
    api.put("/files/e1.txt", content=b"1")
    api.put("/files/e2.txt", content=b"2")
    frames = _frames(api.get("/events", params={"follow": False}).text)
    assert [f["event"] for f in frames][-2:] == ["write", "write"]
    assert [int(f["id"]) for f in frames] == sorted(int(f["id"]) for f in frames)
    last = frames[-2]["id"]
    resumed = _frames(
        api.get("/events", params={"follow": False}, headers={"Last-Event-ID": last}).text
    )
    assert [json.loads(f["data"])["path"] for f in resumed] == ["/"]  # e2's write of /
    # a follower sees what happens after it connected
    with api.stream("GET", "/events", params={"after": frames[-1]["id"]}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        api.put("/files/e3.txt", content=b"3")
        got = ""
        for chunk in r.iter_text():
            got += chunk
            if "\n\n" in got:
                break
    assert _frames(got)[0]["event"] == "write"


def _frames(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if fields:
            out.append(fields)
    return out


def test_metrics(svc: Running, api: httpx.Client) -> None:
    api.put("/files/x.txt", content=b"xyz")
    api.get("/files/x.txt")
    api.post("/providers/laptop/test")
    text = httpx.get(f"{svc.url}/metrics", headers={"Authorization": f"Bearer {svc.token}"}).text
    assert (
        'cdir_http_requests_total{method="PUT",route="/files/{path:path}",status="201"} 1.0' in text
    )
    assert 'cdir_replicas{provider="laptop",state="current"} 1.0' in text
    assert "cdir_http_sent_bytes_total" in text and "cdir_http_request_seconds_bucket" in text
    assert 'cdir_provider_check_seconds{provider="laptop"}' in text


def test_openapi_and_docs(svc: Running) -> None:
    headers = {"Authorization": f"Bearer {svc.token}"}
    spec = httpx.get(f"{svc.url}/openapi.json", headers=headers).json()
    assert (
        "/api/v1/files/{path}" in spec["paths"]
        and "/api/v1/replicas/{provider}/{path}" in spec["paths"]
    )
    assert "swagger" in httpx.get(f"{svc.url}/docs", headers=headers).text.lower()


# --- resumable uploads ----------------------------------------------------------------------
def test_resumable_upload(api: httpx.Client, tmp_path: Path) -> None:
    parts = [os.urandom(1000), os.urandom(1000), os.urandom(10)]
    up = api.post("/uploads", json={"path": "/up/big.bin", "to": ["archive"]}).json()
    url = f"/uploads/{up['id']}"
    # out of order, one sent twice (a retry after a dropped link)
    for n in (2, 0, 0):
        assert api.put(f"{url}/{n}", content=parts[n]).status_code == 204
    assert api.get(url).json()["received"] == [0, 2]
    r = api.post(f"{url}/complete")
    assert r.status_code == 409 and "chunks missing: [1]" in r.json()["error"]["message"]
    assert api.put(f"{url}/1", content=parts[1]).status_code == 204
    e = api.post(f"{url}/complete").json()
    assert e["size"] == 2010 and [x["provider"] for x in e["replicas"]] == ["archive"]
    assert (tmp_path / "archive/up/big.bin").read_bytes() == b"".join(parts)
    assert error(api.get(url)) == (404, "not_found")  # done: gone
    other = api.post("/uploads", json={"path": "/up/cancelled.bin"}).json()
    assert api.delete(f"/uploads/{other['id']}").status_code == 204
    assert error(api.put(f"/uploads/{other['id']}/0", content=b"x")) == (404, "not_found")
    assert error(api.post("/uploads", json={"path": "/a/../b"})) == (400, "invalid_path")


def test_an_abandoned_upload_expires(svc: Running, api: httpx.Client, home: Path) -> None:
    from cdir.api.routes import uploads

    old = api.post("/uploads", json={"path": "/old.bin"}).json()["id"]
    folder = home / "uploads" / old
    past = folder.stat().st_mtime - uploads.UPLOAD_TTL_S - 1
    os.utime(folder, (past, past))
    api.post("/uploads", json={"path": "/new.bin"})
    assert not folder.exists()


# --- bad paths ----------------------------------------------------------------------------
BAD = [
    "..",
    "a/..",
    "../etc/passwd",
    "a/%2e%2e/b",
    "%2E%2E",
    "a/%252e%252e/b",
    ".",
    "a/./b",
    "a/%00b",
    "a/%2500b",
    "a/%0ab",
    "a/%7f",
    "%C0%AE%C0%AE/x",
    "x" * 256,
    "/".join(["d"] * 2100),
]


def raw_status(api: httpx.Client, method: str, url: str, body: Any) -> int:
    """Send a request whose path goes out exactly as written (http.client): httpx removes
    `.` and `..` segments before sending, and a client that does not is what this is about."""
    import http.client

    base = api.base_url
    conn = http.client.HTTPConnection(base.host, base.port, timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else b"data"
        headers = {
            "Authorization": api.headers["Authorization"],
            "Content-Type": "application/json",
        }
        conn.request(method, base.raw_path.decode().rstrip("/") + url, body=data, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _snapshot(api: httpx.Client, tmp_path: Path) -> Any:
    files = sorted(
        str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "home" not in p.parts
    )
    listing = api.get("/entries/", params={"recursive": True, "replicas": True}).json()
    return files, listing


@pytest.mark.parametrize("bad", BAD, ids=lambda b: b[:20])
def test_bad_paths_are_4xx_and_change_nothing(api: httpx.Client, tmp_path: Path, bad: str) -> None:
    api.put("/files/keep/k.txt", content=b"k")
    before = _snapshot(api, tmp_path)
    calls = [
        ("GET", f"/files/{bad}"),
        ("HEAD", f"/files/{bad}"),
        ("PUT", f"/files/{bad}"),
        ("DELETE", f"/files/{bad}"),
        ("GET", f"/replicas/laptop/{bad}"),
        ("PUT", f"/replicas/laptop/{bad}"),
        ("DELETE", f"/replicas/laptop/{bad}"),
        ("GET", f"/entries/{bad}"),
        ("DELETE", f"/entries/{bad}?recursive=true"),
        ("POST", f"/dirs/{bad}"),
        ("GET", f"/status/{bad}"),
        ("PUT", f"/preferred/{bad}"),
    ]
    for method, url in calls:
        body = {"provider": "laptop"} if "preferred" in url else None
        status = raw_status(api, method, url, body)
        assert 400 <= status < 500, (method, url, status)
    for body_path in ({"src": bad, "dst": "/keep2"}, {"src": "/keep", "dst": bad}):
        assert 400 <= api.post("/copy", json={**body_path, "recursive": True}).status_code < 500
        assert 400 <= api.post("/move", json=body_path).status_code < 500
    assert 400 <= api.post("/uploads", json={"path": bad}).status_code < 500
    assert 400 <= api.get("/search", params={"pattern": "*", "under": bad}).status_code < 500
    assert _snapshot(api, tmp_path) == before
