"""`cdir daemon start|stop|status|run|logs`: the sync daemon (cdir.syncd) from the command
line, and the `--poll` helpers of `cdir provider add/set/list/show`. Nothing heavy is imported
until a command runs (`cdir --help` stays cheap)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdir.cli import app as cli
from cdir.errors import CdirError, Conflict

if TYPE_CHECKING:
    from cdir.schema import DaemonOut, DaemonStatusOut

PID_FILE, LOG_FILE = "daemon.pid", "daemon.log"  # in the home (as cdir.syncd.daemon)
START_DEADLINE_S = 15.0  # a daemon not registered by then has not come up
STOP_DEADLINE_S = 120.0  # it finishes the pass in progress before it exits
POLL_S = 0.05  # how often a waiting command looks again

daemon_app = cli._app(
    "Run the sync daemon. It polls every provider (and watches local folders) and brings "
    "every replica to the newest version, as `cdir sync` does once."
)


@daemon_app.command("start")
def start_cmd() -> None:
    """Start the sync daemon in the background.

    It logs to <home>/daemon.log and keeps its pid in <home>/daemon.pid; this returns once
    the daemon has registered in the catalog."""
    v = cli.G.open()
    home = v.settings.home
    mine = _registered(v, _pid_file(home))
    if mine is not None:
        from cdir.vdir.daemonops import running_message

        raise Conflict(running_message(mine))
    log = home / LOG_FILE
    offset = log.stat().st_size if log.exists() else 0
    proc = _spawn(home, log)
    deadline = time.monotonic() + START_DEADLINE_S
    while not any(d.pid == proc.pid and d.alive for d in v.daemons()):
        if proc.poll() is not None:
            last = _last_line(log, offset) or f"the daemon exited with code {proc.returncode}"
            raise CdirError(last.removeprefix("cdir: error: "))
        if time.monotonic() > deadline:
            raise CdirError(f"the daemon (pid {proc.pid}) is not up after 15 s; see {log}")
        time.sleep(POLL_S)
    typer.echo(f"cdir: daemon started (pid {proc.pid}); log: {log}")


@daemon_app.command("stop")
def stop_cmd() -> None:
    """Stop the sync daemon (it finishes the pass in progress first)."""
    from cdir import pids

    v = cli.G.open()
    d = _registered(v, _pid_file(v.settings.home)) or _only_one_here(v)
    if d is None:
        typer.echo("cdir: no daemon running", err=True)
        raise typer.Exit(1)
    os.kill(d.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE_S
    while pids.alive(d.pid):
        if time.monotonic() > deadline:
            raise CdirError(
                f"the daemon (pid {d.pid}) is still finishing its pass; it exits when done "
                "(see `cdir daemon logs`)"
            )
        time.sleep(POLL_S)
    typer.echo(f"cdir: daemon stopped (pid {d.pid})")


@daemon_app.command("status")
def status_cmd(
    passes: Annotated[
        int, typer.Option("--passes", "-n", min=0, help="How many recent passes to show")
    ] = 10,
) -> None:
    """Show whether the daemon runs, the poll intervals, the last passes.

    The daemons registered in the catalog (pid, host, since when), each provider's poll
    interval, and the last sync passes (the daemon's and `cdir sync`'s, from the journal)."""
    from cdir.cli.output import emit

    st = cli.G.open().daemon_status(passes)
    if cli.G.output == "json":
        typer.echo(st.model_dump_json(indent=2))
    elif cli.G.output == "csv":
        emit(st.daemons, "csv", ["host", "pid", "since", "heartbeat", "alive"])
    else:
        _status_table(st, emit)


@daemon_app.command("run")
def run_cmd() -> None:
    """Run the sync daemon in the foreground (systemd, containers).

    It logs to standard error. SIGTERM or Ctrl-C: the pass in progress finishes, then it
    exits 0."""
    from cdir.syncd import Daemon
    from cdir.syncd.daemon import setup_logging

    v = cli.G.open_direct()
    v.interactive = False  # no passphrase prompt from a pass: a locked vault is a failed pass
    setup_logging()
    Daemon(v, v.settings.home).run()


@daemon_app.command("logs")
def logs_cmd(
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Show the last N lines")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines")] = False,
) -> None:
    """Show the daemon's log (<home>/daemon.log, of a daemon that `start` started)."""
    path = cli._settings(cli.G.catalog).home / LOG_FILE
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise CdirError(
            f"no daemon log at {path} (a daemon run in the foreground logs to its standard error)"
        ) from None
    with f:
        out = sys.stdout.buffer
        out.write(b"".join(_tail(f, lines)))
        out.flush()
        if follow:
            _follow(f, out)


# --- --poll of `cdir provider …` ----------------------------------------------------------------
def check_poll(text: str | None) -> None:
    """Refuse a bad --poll before anything is changed."""
    if text is not None:
        from cdir.vdir.daemonops import parse_poll

        parse_poll(text)


def set_poll(v: Any, name: str, text: str | None) -> None:
    if text is not None:
        p = v.set_poll(name, text)
        if cli.G.output != "json" and not cli.G.quiet:
            typer.echo(f"  poll = {p.poll}")


def provider_rows(v: Any, provs: list[Any]) -> tuple[list[Any], list[str]]:
    """Rows for `provider list/show`, and the extra column: the table shows each provider's
    poll interval; json and csv keep the provider shape of the REST API."""
    if cli.G.output != "table":
        return provs, []
    polls = {p.name: p.poll for p in v.polls()}
    return [p.model_dump() | {"poll": polls.get(p.name, "-")} for p in provs], ["poll"]


# --- helpers --------------------------------------------------------------------------------------
def _pid_file(home: Path) -> int | None:
    try:
        return int((home / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _registered(v: Any, pid: int | None) -> DaemonOut | None:
    """The live daemon registered on this host with this pid: a PID file is trusted only as
    far as the catalog confirms it (a pid reused by another program is never signalled)."""
    host = socket.gethostname()
    found = [d for d in v.daemons() if d.alive and d.host == host and d.pid == pid]
    return found[0] if found else None


def _only_one_here(v: Any) -> DaemonOut | None:
    """Without a PID file (a daemon run in the foreground elsewhere): the one live daemon of
    this catalog on this host; one elsewhere is stopped where it runs."""
    live = [d for d in v.daemons() if d.alive]
    here = [d for d in live if d.host == socket.gethostname()]
    if len(here) > 1:
        pids = ", ".join(str(d.pid) for d in here)
        raise CdirError(f"several daemons of this catalog run here (pids {pids}): stop one by pid")
    if not here and live:
        raise CdirError(
            f"the daemon of this catalog runs on {live[0].host} (pid {live[0].pid}): stop it there"
        )
    return here[0] if here else None


def _spawn(home: Path, log: Path) -> subprocess.Popen[bytes]:
    """`python -m cdir daemon run`, detached, its output appended to the log (mode 0600)."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = dict(os.environ, CDIR_HOME=str(home.absolute()))
    if cli.G.catalog:  # given on the command line: passed on unseen by `ps`
        env["CDIR_CATALOG_URL"] = cli.G.catalog
    if cli.G.parallel:
        env["CDIR_PARALLEL"] = str(cli.G.parallel)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "cdir", "daemon", "run"],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # not stopped with the terminal that started it
        )
    finally:
        os.close(fd)


def _last_line(log: Path, offset: int) -> str | None:
    """The last line a daemon wrote to the log since `offset` (why it ended)."""
    try:
        with log.open("rb") as f:
            f.seek(offset)
            lines = [x for x in f.read().decode(errors="replace").splitlines() if x.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


def _tail(f: Any, n: int) -> list[bytes]:
    """The last `n` lines of an open file, read backwards in blocks (a big log stays cheap);
    the file is left at its end."""
    end = f.seek(0, os.SEEK_END)
    pos, data = end, b""
    while pos > 0 and data.count(b"\n") <= n:
        step = min(65536, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step) + data
    f.seek(end)
    return list(deque(data.splitlines(keepends=True), maxlen=n)) if n else []


def _follow(f: Any, out: Any) -> None:
    """Print what is appended until Ctrl-C (which ends it quietly)."""
    try:
        while True:
            line = f.readline()
            if line:
                out.write(line)
                out.flush()
            else:
                time.sleep(0.25)  # tail -f's way: look again
    except KeyboardInterrupt:
        return


def _status_table(st: DaemonStatusOut, emit: Any) -> None:
    if not st.daemons:
        typer.echo("daemon: not running")
    for d in st.daemons:
        age = time.time() - d.heartbeat.timestamp()
        state = "running" if d.alive else "not running (registration left by a dead daemon)"
        typer.echo(
            f"daemon: {state}, pid {d.pid} on {d.host} since "
            f"{d.since.strftime('%Y-%m-%d %H:%M:%S UTC')} (heartbeat {age:.0f} s ago)"
        )
    typer.echo("")
    rows = [p.model_dump() | {"watched": "yes" if p.watched else "no"} for p in st.providers]
    for r in rows:
        r["poll"] += " (default)" if r["default"] else ""
        r["poll"] = r["poll"] if r["enabled"] else "disabled"
    emit(rows, "table", ["name", "kind", "poll", "watched"])
    typer.echo("")
    typer.echo("last passes:" if st.passes else "no pass yet")
    if st.passes:
        cols = ["at", "path", "checked", "changed", "imported", "conflicts", "restored"]
        cols += ["deleted", "copied"]
        heads = [*cols[:4], "new", *cols[5:]]
        emit(st.passes, "table", cols, headers=heads)
