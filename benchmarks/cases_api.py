"""The REST service (issue 9): metadata GETs under load against a bare FastAPI app, a big
download through the API against reading the provider's file, and CLI commands as the
service's clients against the same commands working on the catalog directly.

Run as `python -m benchmarks.cases_api bare PORT BODY_JSON` it is the bare app, and as
`python -m benchmarks.cases_api load URL TOKEN CONNECTIONS SECONDS` the load generator used
when wrk is not installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.data import make_big_file
from benchmarks.harness import (
    BenchError,
    Column,
    Context,
    GiB,
    Group,
    MiB,
    Row,
    Series,
    alternate,
    case,
    removed_after,
    timed,
    usage_note,
)
from benchmarks.report import value_cell

ROOT = Path(__file__).resolve().parents[1]

# the goals of issue 9 (docs/benchmarks.md, "Targets and method of the newer cases")
GOAL_THROUGHPUT = 0.5  # cdir req/s ÷ bare FastAPI req/s, at least
GOAL_DOWNLOAD = 0.8  # direct read time ÷ API download time, at least
GOAL_CLIENT = 0.4  # CLI through the service ÷ CLI on the catalog, at most

CONNECTIONS = 64
LOAD_SECONDS, LOAD_SECONDS_QUICK = 5.0, 2.0
WARMUP_SECONDS, WARMUP_SECONDS_QUICK = 2.0, 1.0
BIG_SIZE, BIG_SIZE_QUICK = GiB, 256 * MiB
CLI_DIRS, CLI_FILES_PER_DIR = 10, 30  # 300 files, a third of them .csv
START_TIMEOUT_S = 20.0

SERVICE = Group(
    "service",
    "the REST service",
    "The service as `cdir service start --no-daemon` runs it (uvicorn, one process, on "
    "127.0.0.1), against a reference on the same machine in the same run. Metadata: "
    f"{CONNECTIONS} keep-alive clients send `GET /api/v1/entries/<file>` with the bearer token "
    "for a fixed time after a warm-up, to cdir and to a bare FastAPI app returning the same "
    "JSON body from a plain route under the same uvicorn settings (`cdir/api/server.py`); "
    "ratio = cdir req/s ÷ bare req/s. Download: a file in a local provider streamed by "
    "`GET /api/v1/files/…` to /dev/null, against `cat` (and `rclone cat`) of the provider's "
    "own copy, both from the page cache; ratio = direct time ÷ API time (the throughput ratio). "
    "CLI: fresh `cdir` processes on a catalog of 300 files, with no service (direct) and with "
    "the home's service running (the CLI is then its HTTP client); ratio = client ÷ direct, "
    "start-up included. Each row's notes give its goal and which way is better.",
    rank=50,
    shows_min=False,
    columns=(
        Column("through the service", value_cell("cdir")),
        Column("reference", value_cell("ref")),
        Column("ratio", value_cell("ratio", "{:.2f}")),
    ),
)


# --- processes: the service, the bare app ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cpu_seconds(pid: int) -> float:
    """User + system time of a running process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Service:
    url: str
    pid: int
    token: str
    log: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def running_service(ctx: Context, home: Path, env: dict[str, str]) -> Iterator[Service]:
    """`cdir service start --no-daemon` on a free port (untimed); stopped when the block ends
    whatever happens: `cdir service stop`, and the process killed if that did not do it."""
    pid: int | None = None
    try:
        port = free_port()
        ctx.setup(ctx.cdir_cmd("service", "start", "--no-daemon", "--port", str(port)), env)
        state = json.loads((home / "service.json").read_text())
        pid = int(state["pid"])
        token = ctx.setup(ctx.cdir_cmd("service", "token"), env).strip()
        yield Service(str(state["url"]), pid, token, home / "service.log")
    finally:
        with suppress(BenchError, subprocess.SubprocessError, OSError):
            ctx.setup(ctx.cdir_cmd("service", "stop"), env)
        if pid is None:  # started, but failed before its state was read
            with suppress(OSError, ValueError, KeyError):
                pid = int(json.loads((home / "service.json").read_text())["pid"])
        if pid is not None and _alive(pid):
            with suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # it runs in a session of its own
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _wait_http(url: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"the server of {url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError(f"{url} does not answer after {START_TIMEOUT_S:g} s")


@contextmanager
def bare_app(ctx: Context, body: Path, log: Path) -> Iterator[tuple[str, int]]:
    """The bare FastAPI app (`bare_main`) on a free port: (base URL, pid); killed after."""
    port = free_port()
    cmd = [ctx.python, "-m", "benchmarks.cases_api", "bare", str(port), str(body)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=ctx.cdir_env(ctx.work),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/api/v1/entries/ping", proc)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def bare_main(port: int, body_file: str) -> None:
    """A FastAPI app with one route returning a fixed JSON body: the floor of the stack.
    A plain `def` route (run in the thread pool) like cdir's, under uvicorn configured as
    `cdir.api.server.serve` configures it (one process, default loop and HTTP parser, access
    log on at level info, no server header)."""
    import uvicorn
    from fastapi import FastAPI

    body = json.loads(Path(body_file).read_text())
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/v1/entries/{path:path}")
    def entry(path: str) -> dict[str, Any]:
        return body

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="info",
        access_log=True,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


# --- load generation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    p99_ms: float
    requests: int
    server_cpu_s: float  # CPU the server used during the timed run
    generator_cpu_s: float  # CPU the load generator used


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(out: str) -> tuple[float, float, int]:
    """(requests/s, p99 ms, requests) from `wrk --latency`; BenchError on failed requests."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
    total = re.search(r"^\s*(\d+) requests in", out, re.M)
    if not (rps and p99 and total):
        raise BenchError(f"cannot read wrk's output:\n{out[-1500:]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if bad:
        raise BenchError(f"{bad[1]} requests failed (wrk):\n{out[-1500:]}")
    errs = re.search(r"Socket errors:.*", out)
    if errs and re.search(r"(connect|read|write) [1-9]", errs[0]):
        raise BenchError(f"wrk: {errs[0]}")
    return float(rps[1]), float(p99[1]) * _UNIT_MS[p99[2]], int(total[1])


def load_tool() -> str:
    return "wrk" if shutil.which("wrk") else "asyncio"


def generate_load(
    ctx: Context, url: str, token: str, seconds: float, server_pid: int, tool: str
) -> Load:
    """`CONNECTIONS` keep-alive clients GETting `url` for `seconds`: wrk (C, one thread) when
    installed, else `load_main` below (asyncio, in a process of its own)."""
    if tool == "wrk":
        cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
        cmd += ["-H", f"Authorization: Bearer {token}", url]
    else:
        cmd = [ctx.python, "-m", "benchmarks.cases_api", "load", url, token]
        cmd += [str(CONNECTIONS), str(seconds)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = cpu_seconds(server_pid)
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    server_cpu = cpu_seconds(server_pid) - cpu0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    gen_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if done.returncode != 0:
        raise BenchError(f"{tool} failed (exit {done.returncode}):\n{done.stderr[-1500:]}")
    if tool == "wrk":
        rps, p99, n = parse_wrk(done.stdout)
    else:
        got = json.loads(done.stdout)
        if got["errors"]:
            raise BenchError(f"{got['errors']} requests failed (asyncio load generator)")
        rps, p99, n = got["requests"] / got["seconds"], got["p99_ms"], got["requests"]
    return Load(rps, p99, n, server_cpu, gen_cpu)


async def _load(url: str, token: str, connections: int, seconds: float) -> dict[str, Any]:
    m = re.fullmatch(r"http://([^/:]+):(\d+)(/.*)", url)
    if not m:
        raise SystemExit(f"load: not an http://host:port/path URL: {url}")
    host, port, path = m[1], int(m[2]), m[3]
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                await reader.readexactly(int(length[1]) if length else 0)
                latencies.append(time.perf_counter() - t0)
                if head[9:12] != b"200":
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return {"requests": len(latencies), "seconds": elapsed, "p99_ms": p99 * 1000, "errors": errors}


def load_main(url: str, token: str, connections: int, seconds: float) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_load(url, token, connections, seconds))))


# --- the cases -------------------------------------------------------------------------------


def _local_provider(ctx: Context, env: dict[str, str], root: Path) -> None:
    ctx.setup(ctx.cdir_cmd("provider", "add", "loc", "-k", "local", "--root", str(root)), env)


def _get(url: str, headers: dict[str, str]) -> bytes:
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        body: bytes = r.read()
        return body


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


@case(
    "service-metadata",
    SERVICE,
    f"GET /api/v1/entries/<file> at {CONNECTIONS} clients: cdir vs a bare FastAPI app",
)
def service_metadata(ctx: Context) -> list[Row]:
    home, prov, src = ctx.scratch("cdir-home"), ctx.scratch("provider"), ctx.scratch("src")
    with removed_after(home, prov, src):
        env = ctx.cdir_env(home)
        _local_provider(ctx, env, prov)
        for i in range(5):
            (src / f"f{i:03d}.csv").write_bytes(os.urandom(4096))
        ctx.setup(ctx.cdir_cmd("put", f"{src}/", "/d", "-r", "--to", "loc"), env)
        seconds = LOAD_SECONDS_QUICK if ctx.quick else LOAD_SECONDS
        warmup = WARMUP_SECONDS_QUICK if ctx.quick else WARMUP_SECONDS
        tool = load_tool()
        path = "/api/v1/entries/d/f002.csv"
        with running_service(ctx, home, env) as svc:
            body = _get(svc.url + path, svc.auth)
            if json.loads(body)["entry"]["path"] != "/d/f002.csv":
                raise BenchError(f"unexpected entry from the service: {body[:300]!r}")
            body_file = ctx.work / "body.json"
            body_file.write_bytes(body)
            with bare_app(ctx, body_file, ctx.work / "bare.log") as (bare_url, bare_pid):
                if len(_get(bare_url + path, svc.auth)) != len(body):
                    raise BenchError("the bare app's body differs in size from cdir's")
                runs: dict[str, list[Load]] = {"cdir": [], "bare": []}
                targets = {"cdir": (svc.url, svc.pid), "bare": (bare_url, bare_pid)}

                def run(who: str) -> Callable[[], None]:
                    def go() -> None:
                        base, pid = targets[who]
                        generate_load(ctx, base + path, svc.token, warmup, pid, tool)  # untimed
                        runs[who].append(
                            generate_load(ctx, base + path, svc.token, seconds, pid, tool)
                        )

                    return go

                for i in range(ctx.repeats):
                    ctx.log(f"  service-metadata: repetition {i + 1}/{ctx.repeats} ({tool})")
                    alternate(i, run("cdir"), run("bare"))
        c, b = runs["cdir"], runs["bare"]
        c_rps, b_rps = (
            _median([x.requests_per_s for x in c]),
            _median([x.requests_per_s for x in b]),
        )
        c_p99, b_p99 = _median([x.p99_ms for x in c]), _median([x.p99_ms for x in b])
        c_cpu = _median([x.server_cpu_s / x.requests * 1000 for x in c])
        b_cpu = _median([x.server_cpu_s / x.requests * 1000 for x in b])
        gen = max(x.generator_cpu_s for x in [*c, *b])
        how = (
            f"wrk, 1 thread, {CONNECTIONS} connections"
            if tool == "wrk"
            else f"an asyncio load generator (uvloop, one process, {CONNECTIONS} connections; "
            "wrk is not installed)"
        )
        label = f"GET {path} ({len(body)} B JSON), {CONNECTIONS} clients"
        rps = Row(
            f"{label}: requests/s",
            notes=[
                f"goal ≥ {GOAL_THROUGHPUT:.1f} (cdir ÷ bare, higher is better)",
                f"load: {how}; {seconds:g} s per run after a {warmup:g} s warm-up, "
                "cdir and bare alternating",
                f"server CPU per request: cdir {c_cpu:.2f} ms, bare {b_cpu:.2f} ms",
                f"the load generator used at most {gen:.2f} s CPU in a {seconds:g} s run",
            ],
            values={
                "cdir": f"{c_rps:,.0f} req/s",
                "ref": f"{b_rps:,.0f} req/s (bare FastAPI)",
                "ratio": round(c_rps / b_rps, 3),
                "cdir_rps": round(c_rps, 1),
                "bare_rps": round(b_rps, 1),
                "cdir_cpu_ms_per_request": round(c_cpu, 3),
                "bare_cpu_ms_per_request": round(b_cpu, 3),
                "tool": tool,
            },
        )
        p99 = Row(
            f"{label}: p99 latency",
            notes=[f"no goal of its own; cdir's p99 is {c_p99 / b_p99:.1f}x the bare app's"],
            values={
                "cdir": f"{c_p99:.1f} ms",
                "ref": f"{b_p99:.1f} ms (bare FastAPI)",
                "cdir_p99_ms": round(c_p99, 2),
                "bare_p99_ms": round(b_p99, 2),
            },
        )
        return [rps, p99]


def _mib_s(size: int, seconds: float) -> float:
    return size / MiB / seconds


@case(
    "service-download",
    SERVICE,
    "GET /api/v1/files/big.bin (1 GiB; 256 MiB --quick) vs cat and rclone cat of the file",
)
def service_download(ctx: Context) -> list[Row]:
    size = BIG_SIZE_QUICK if ctx.quick else BIG_SIZE
    home, prov, src = ctx.scratch("cdir-home"), ctx.scratch("provider"), ctx.scratch("src")
    with removed_after(home, prov, src):
        env = ctx.cdir_env(home)
        _local_provider(ctx, env, prov)
        ctx.log(f"  service-download: writing and putting {size // MiB} MiB (not timed)…")
        make_big_file(src / "big.bin", size)
        ctx.setup(ctx.cdir_cmd("put", f"{src}/", "/", "-r", "--to", "loc"), env)
        shutil.rmtree(src)
        direct = prov / "big.bin"
        if direct.stat().st_size != size:
            raise BenchError(f"the provider holds {direct.stat().st_size} bytes, not {size}")
        curl = shutil.which("curl")
        api, cat, rcat = Series([]), Series([]), Series([])
        cpu: list[float] = []
        with running_service(ctx, home, env) as svc:
            url = f"{svc.url}/api/v1/files/big.bin"
            if curl:
                client = "curl -o /dev/null"
                get = [
                    curl,
                    "-sS",
                    "--fail",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{size_download}",
                ]
                get += ["-H", f"Authorization: Bearer {svc.token}", url]
            else:
                client = "a Python http.client loop of 1 MiB reads (curl is not installed)"
                get = [ctx.python, "-m", "benchmarks.cases_api", "get", url, svc.token]
            cat_cmd = ["cat", str(direct)]
            rclone_cmd = ctx.rclone_cmd("cat", str(direct))
            run_env = ctx.rclone_env()
            # untimed: the file in the page cache, the tools warm
            ctx.measure(cat_cmd, run_env, discard_output=True)
            ctx.measure(rclone_cmd, run_env, discard_output=True)

            def download() -> None:
                cpu0 = cpu_seconds(svc.pid)
                run = ctx.measure(get, run_env)
                cpu.append(cpu_seconds(svc.pid) - cpu0)
                if run.stdout.split() != ["200", str(size)]:
                    raise BenchError(f"the download got {run.stdout!r}, expected 200 {size}")
                api.command = api.command or [a.replace(svc.token, "$TOKEN") for a in get]
                api.samples.append(run.sample)

            download()  # untimed warm-up of the service's read path
            api.samples.clear()
            cpu.clear()
            for i in range(ctx.repeats):
                ctx.log(f"  service-download: repetition {i + 1}/{ctx.repeats}")
                alternate(i, download, lambda: timed(ctx, cat_cmd, run_env, cat))
                timed(ctx, rclone_cmd, run_env, rcat)
        mib = size // MiB
        what = f"{mib // 1024} GiB" if mib >= 1024 else f"{mib} MiB"
        shown = f"{api.median:.2f} s, {_mib_s(size, api.median):,.0f} MiB/s"
        svc_cpu = _median(cpu)
        rows = [
            Row(
                f"GET /api/v1/files/big.bin ({what}) vs cat of the provider's file",
                cdir=api,
                notes=[
                    f"goal ≥ {GOAL_DOWNLOAD:.1f} (direct time ÷ API time, higher is better)",
                    f"client: {client}; direct: `cat FILE > /dev/null`; both from the page cache",
                    "cat copies each byte once (page cache to cat; writing to /dev/null is free), "
                    "the API path three times (page cache to the service, into the loopback "
                    "socket, out to curl)",
                    f"the service used {svc_cpu:.2f} s CPU per download "
                    f"({svc_cpu / (size / GiB):.2f} s per GiB); client {usage_note(api)}",
                ],
                values={
                    "cdir": shown,
                    "ref": f"{cat.median:.2f} s, {_mib_s(size, cat.median):,.0f} MiB/s (cat)",
                    "ratio": round(cat.median / api.median, 3),
                    "api_mib_s": round(_mib_s(size, api.median), 1),
                    "cat_mib_s": round(_mib_s(size, cat.median), 1),
                    "service_cpu_s": round(svc_cpu, 3),
                },
            ),
            Row(
                f"the same GET vs rclone cat of the provider's file ({what})",
                notes=[
                    "reference: rclone reading the same local file (ratio rclone time ÷ API time)",
                    f"rclone {usage_note(rcat)}",
                ],
                values={
                    "cdir": shown,
                    "ref": f"{rcat.median:.2f} s, {_mib_s(size, rcat.median):,.0f} MiB/s "
                    "(rclone cat)",
                    "ratio": round(rcat.median / api.median, 3),
                    "rclone_cat_mib_s": round(_mib_s(size, rcat.median), 1),
                },
            ),
        ]
        return rows


def get_main(url: str, token: str) -> None:
    """GET `url` and discard the body in 1 MiB reads; print the status and the byte count."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=300)
    conn.request("GET", u.path, headers={"Authorization": f"Bearer {token}"})
    r = conn.getresponse()
    n = 0
    while chunk := r.read(MiB):
        n += len(chunk)
    print(r.status, n)


def _cli_tree(root: Path) -> int:
    n = 0
    for d in range(CLI_DIRS):
        sub = root / f"dir{d:02d}"
        sub.mkdir(parents=True)
        for f in range(CLI_FILES_PER_DIR):
            ext = ("csv", "txt", "bin")[f % 3]
            (sub / f"file-{f:03d}.{ext}").write_bytes(os.urandom(1024))
            n += 1
    return n


@case(
    "service-cli",
    SERVICE,
    "cdir ls /, status -r /d, search / '*.csv' -r: through the service vs direct",
)
def service_cli(ctx: Context) -> list[Row]:
    per_block = 3 if ctx.quick else 4
    home, prov, src = ctx.scratch("cdir-home"), ctx.scratch("provider"), ctx.scratch("src")
    with removed_after(home, prov, src):
        env = ctx.cdir_env(home)
        _local_provider(ctx, env, prov)
        files = _cli_tree(src)
        ctx.setup(ctx.cdir_cmd("put", f"{src}/", "/d", "-r", "--to", "loc"), env)
        plan: list[tuple[str, list[str], int | None]] = [
            ("cdir ls /", ctx.cdir_cmd("ls", "/"), 1),
            ("cdir status -r /d", ctx.cdir_cmd("status", "-r", "/d"), files + 1),
            ("cdir search / '*.csv' -r", ctx.cdir_cmd("search", "/", "*.csv", "-r"), files // 3),
            ("reference: python -c pass (the floor)", [ctx.python, "-c", "pass"], None),
        ]
        client = {label: Series([]) for label, *_ in plan}
        direct = {label: Series([]) for label, *_ in plan}
        outputs: dict[str, str] = {}

        def block(through_service: bool) -> None:
            series = client if through_service else direct
            cm: AbstractContextManager[Service | None] = (
                running_service(ctx, home, env) if through_service else nullcontext()
            )
            with cm as svc:
                for label, cmd, lines in plan:  # untimed warm-up, checks the output
                    before = svc.log.stat().st_size if svc else 0
                    out = ctx.setup(cmd, env)
                    if lines is None:
                        continue
                    if len(out.splitlines()) != lines:
                        raise BenchError(f"{label} printed {len(out.splitlines())} lines")
                    if outputs.setdefault(label, out) != out:
                        raise BenchError(f"{label} prints differently through the service")
                    if svc and svc.log.stat().st_size == before:
                        raise BenchError(f"{label} did not go through the service")
                for _ in range(per_block):
                    for _label, cmd, _lines in plan:
                        timed(ctx, cmd, env, series[_label])

        for i in range(ctx.repeats):
            ctx.log(f"  service-cli: repetition {i + 1}/{ctx.repeats}")
            order = (False, True) if i % 2 == 0 else (True, False)
            for through in order:
                block(through)
        rows = []
        for label, _cmd, lines in plan:
            c, d = client[label], direct[label]
            ratio = round(c.median / d.median, 3) if lines is not None else None
            tags = ("client", "direct") if lines is not None else ("service up", "no service")
            notes = (
                [
                    f"goal ≤ {GOAL_CLIENT:.1f} (client ÷ direct, lower is better)",
                    f"{lines} line(s), the same both ways",
                ]
                if lines is not None
                else ["run alongside the others; the floor of any Python CLI"]
            )
            notes.append(f"client {usage_note(c)}; direct {usage_note(d)}")
            rows.append(
                Row(
                    label,
                    cdir=c,
                    notes=notes,
                    values={
                        "cdir": f"{c.median:.3f} s ({tags[0]})",
                        "ref": f"{d.median:.3f} s ({tags[1]})",
                        "ratio": ratio,
                        "client_s": round(c.median, 4),
                        "direct_s": round(d.median, 4),
                    },
                )
            )
        rows[0].notes.insert(1, f"catalog: {files} files in {CLI_DIRS} dirs under /d")
        return rows


if __name__ == "__main__":
    what, *args = sys.argv[1:]
    if what == "bare":
        bare_main(int(args[0]), args[1])
    elif what == "load":
        load_main(args[0], args[1], int(args[2]), float(args[3]))
    elif what == "get":
        get_main(args[0], args[1])
    else:
        raise SystemExit(f"usage: python -m benchmarks.cases_api bare|load|get …, not {what}")
