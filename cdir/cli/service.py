"""`cdir service start|stop|status|logs|token`: the REST service from the command line. Once
it runs, later `cdir` commands of this home talk to it (see `cdir.cli.client`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from cdir import pids, service
from cdir.cli import app as cli
from cdir.errors import CdirError, Conflict, UsageError

START_DEADLINE_S = 20.0
STOP_DEADLINE_S = 30.0
POLL_S = 0.05
DEFAULT_PORT = 8765

service_app = cli._app(
    "Run the REST service (and the sync daemon); later commands become its clients."
)

HostOpt = Annotated[str, typer.Option("--host", help="Address to bind (loopback by default)")]
PortOpt = Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port")]


def _files() -> service.Files:
    return service.Files(cli._settings(cli.G.catalog).home)


@service_app.command("start")
def start_cmd(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = DEFAULT_PORT,
    certfile: Annotated[str | None, typer.Option(help="TLS certificate (PEM)")] = None,
    keyfile: Annotated[str | None, typer.Option(help="TLS private key (PEM)")] = None,
    insecure: Annotated[
        bool, typer.Option(help="Allow a non-loopback bind without TLS (a trusted network)")
    ] = False,
    cors: Annotated[
        list[str] | None, typer.Option(help="An origin allowed by CORS (none by default)")
    ] = None,
    daemon: Annotated[bool, typer.Option(help="Also start the sync daemon")] = True,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Run here, logging to stderr (containers)")
    ] = False,
    docker: Annotated[
        bool, typer.Option("--docker", help="Run the cdir container image instead")
    ] = False,
) -> None:
    """Start the REST service in the background and print its URL.

    It binds 127.0.0.1 unless told otherwise; every route but /healthz needs the token
    (`cdir service token`). It logs to <home>/service.log. The sync daemon starts with it
    unless one runs already (--no-daemon: not at all)."""
    from cdir.api.server import check_listen

    files = _files()
    check_listen(host, certfile, keyfile, insecure)
    if docker:
        _docker_or_fail()
    running = service.running(files)
    if running:
        raise Conflict(f"the service runs already at {running['url']} (pid {running['pid']})")
    if foreground:
        _foreground(files, host, port, certfile, keyfile, insecure, cors)
        return
    daemon_pid = _start_daemon() if daemon else None
    args = ["--host", host, "--port", str(port)]
    args += ["--certfile", certfile, "--keyfile", keyfile] if certfile and keyfile else []
    args += ["--insecure"] if insecure else []
    for origin in cors or []:
        args += ["--cors", origin]
    proc = _spawn(files, args, daemon_pid)
    url = _wait_healthy(files, proc)
    typer.echo(f"cdir: service started at {url} (pid {proc.pid}); log: {files.log}")
    typer.echo("cdir: later commands use it; `cdir service token` prints its token")


def _foreground(
    files: service.Files,
    host: str,
    port: int,
    certfile: str | None,
    keyfile: str | None,
    insecure: bool,
    cors: list[str] | None,
) -> None:
    from cdir.api.server import serve
    from cdir.vdir import VDir

    vdir = VDir(cli._settings(cli.G.catalog), interactive=False)
    daemon_pid = os.environ.get("CDIR_SERVICE_DAEMON_PID")
    serve(
        vdir,
        files.home,
        host,
        port,
        certfile=certfile,
        keyfile=keyfile,
        insecure=insecure,
        cors_origins=cors,
        daemon_pid=int(daemon_pid) if daemon_pid else None,
        inline_reads=vdir.settings.catalog.startswith("sqlite"),
    )


def _start_daemon() -> int | None:
    """The sync daemon, unless one of this catalog runs already; its pid when started here."""
    from cdir.cli import daemon as d

    v = cli.G.open_direct()
    if any(x.alive for x in v.daemons()):
        return None
    d.start_cmd()
    return d._pid_file(v.settings.home)


def _spawn(
    files: service.Files, args: list[str], daemon_pid: int | None
) -> subprocess.Popen[bytes]:
    files.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = dict(os.environ, CDIR_HOME=str(files.home.absolute()))
    env.pop(service.ENV_URL, None)  # the service itself works directly on the catalog
    if cli.G.catalog:
        env["CDIR_CATALOG_URL"] = cli.G.catalog
    if daemon_pid:
        env["CDIR_SERVICE_DAEMON_PID"] = str(daemon_pid)
    fd = os.open(files.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "cdir", "service", "start", "--foreground", *args],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    finally:
        os.close(fd)


def _wait_healthy(files: service.Files, proc: subprocess.Popen[bytes]) -> str:
    """Wait until the new process wrote its URL and /healthz answers there."""
    import httpx

    offset = files.log.stat().st_size if files.log.exists() else 0
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CdirError(_why_exited(files.log, offset, proc.returncode))
        state = service.read_state(files)
        if state and state.get("pid") == proc.pid:
            try:
                if httpx.get(f"{state['url']}/healthz", timeout=1, verify=False).is_success:
                    return str(state["url"])
            except httpx.HTTPError:
                pass
        time.sleep(POLL_S)
    raise CdirError(
        f"the service (pid {proc.pid}) is not up after {START_DEADLINE_S:g} s; see {files.log}"
    )


def _why_exited(log: Path, offset: int, code: int | None) -> str:
    try:
        with log.open("rb") as f:
            f.seek(offset)
            lines = [x for x in f.read().decode(errors="replace").splitlines() if x.strip()]
    except OSError:
        lines = []
    for line in reversed(lines):
        if "error" in line.lower():
            return line.split("error:", 1)[-1].strip() if "error:" in line else line.strip()
    return f"the service exited with code {code}; see {log}"


def _docker_or_fail() -> None:
    if shutil.which("docker") is None:
        raise UsageError("--docker: no docker command here; run without --docker")
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise UsageError(
            "--docker: no Docker engine answers here (`docker info` failed); "
            "run without --docker to start the service as a local process"
        )
    raise UsageError(
        "--docker: the cdir container image is not built yet (a later issue); run without --docker"
    )


@service_app.command("stop")
def stop_cmd() -> None:
    """Stop the service (and the sync daemon it started)."""
    files = _files()
    state = service.running(files)
    if state is None:
        typer.echo("cdir: no service running", err=True)
        raise typer.Exit(1)
    pid = int(str(state["pid"]))
    os.kill(pid, signal.SIGTERM)
    _wait_gone(pid, "service")
    typer.echo(f"cdir: service stopped (pid {pid})")
    daemon_pid = state.get("daemon_pid")
    if daemon_pid and pids.alive(int(str(daemon_pid))):
        from cdir.cli import daemon as d

        d.stop_cmd()


def _wait_gone(pid: int, what: str) -> None:
    deadline = time.monotonic() + STOP_DEADLINE_S
    while pids.alive(pid):
        if time.monotonic() > deadline:
            raise CdirError(f"the {what} (pid {pid}) has not stopped after {STOP_DEADLINE_S:g} s")
        time.sleep(POLL_S)


@service_app.command("status")
def status_cmd() -> None:
    """Whether the service runs, where, and whether it answers."""
    import httpx

    state = service.running(_files())
    if state is None:
        typer.echo("cdir: no service running", err=True)
        raise typer.Exit(1)
    try:
        ok = httpx.get(f"{state['url']}/healthz", timeout=2, verify=False).is_success
    except httpx.HTTPError:
        ok = False
    row = {"url": state["url"], "pid": state["pid"], "tls": state.get("tls", False), "healthy": ok}
    from cdir.cli.output import emit

    emit([row], cli.G.output, ["url", "pid", "tls", "healthy"])
    if not ok:
        raise typer.Exit(1)


@service_app.command("logs")
def logs_cmd(
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Show the last N lines")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines")] = False,
) -> None:
    """Show the service's log (<home>/service.log)."""
    from cdir.cli import daemon as d

    path = _files().log
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise CdirError(f"no service log at {path}") from None
    with f:
        out = sys.stdout.buffer
        out.write(b"".join(d._tail(f, lines)))
        out.flush()
        if follow:
            d._follow(f, out)


@service_app.command("token")
def token_cmd(
    rotate: Annotated[
        bool,
        typer.Option(
            "--rotate",
            help="Make a new token (a running service keeps the old one until restarted)",
        ),
    ] = False,
) -> None:
    """Print the service's bearer token (made on first start)."""
    tok = service.token(_files(), rotate=rotate)
    if tok is None:
        raise CdirError("no token yet: it is made by the first `cdir service start`")
    typer.echo(tok)
