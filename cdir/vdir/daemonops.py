"""What the sync daemon (`cdir.syncd`) keeps in the catalog, and what `cdir daemon status`
reads back: each provider's poll interval, the daemons' registrations with their heartbeats
(one daemon per SQLite catalog, several on PostgreSQL), and the last sync passes from the
journal. All of it lives in the `catalog_state` key/value table: no schema change."""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from cdir import pids
from cdir.catalog import Provider, maintenance, queries
from cdir.catalog.models import as_utc
from cdir.errors import Conflict, MissingDependency, UsageError
from cdir.providers import load_provider_class
from cdir.schema import DaemonOut, DaemonStatusOut, PassOut, PollOut
from cdir.schema.models import DEFAULT_POLL_S
from cdir.vdir.base import Core

# another host's daemon whose heartbeat is older than this is gone (it beats every 15 s)
BEAT_TTL = timedelta(seconds=60)
# a live pid on this host whose heartbeat is older than this is a pid reused after a crash
REUSED = timedelta(minutes=10)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
_POLL = re.compile(r"(\d{1,7})([smh]?)")


def parse_poll(text: str) -> int:
    """`90`, `90s`, `5m`, `1h` → seconds; anything else is one clear UsageError."""
    m = _POLL.fullmatch(text.strip().lower())
    if not m:
        raise UsageError(
            f"--poll takes seconds, or a number with s, m or h (90, 90s, 5m, 1h), not {text!r}"
        )
    seconds = int(m[1]) * _UNITS[m[2]]
    if seconds < 1:
        raise UsageError(f"--poll must be at least 1s, not {text!r}")
    return seconds


def format_poll(seconds: int) -> str:
    for unit, n in (("h", 3600), ("m", 60)):
        if seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


def running_message(d: DaemonOut) -> str:
    since = d.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"a sync daemon already runs on this catalog (pid {d.pid} on {d.host} since {since}); "
        "stop it with `cdir daemon stop`"
    )


class DaemonOps(Core):
    # --- poll intervals --------------------------------------------------------------------
    def set_poll(self, name: str, every: str | None) -> PollOut:
        """Set how often the daemon polls provider `name` (`90`, `90s`, `5m`, `1h`); None
        goes back to the default (DEFAULT_POLL_S)."""
        seconds = None if every is None else parse_poll(every)
        row = self.provider_row(name)
        every_s = None if seconds is None else str(seconds)
        self.db.write(lambda s: maintenance.set_state(s, maintenance.POLL + name, every_s))
        return _poll_out(row, seconds)

    def polls(self) -> list[PollOut]:
        """Every provider, by name, with its poll interval (read without the vault)."""
        with self.db.transaction() as s:
            rows = sorted(queries.providers(s), key=lambda p: p.name)
            chosen = {k: int(v) for k, v in maintenance.states(s, maintenance.POLL).items()}
        return [_poll_out(r, chosen.get(r.name)) for r in rows]

    # --- registrations ---------------------------------------------------------------------
    def register_daemon(self) -> DaemonOut:
        """Register this process as a sync daemon. On SQLite there is one: a live one
        already registered is a Conflict (running_message); a dead one's registration is
        taken over. On PostgreSQL each daemon has a key of its own; dead ones are dropped."""
        now = _now()
        me = DaemonOut(host=socket.gethostname(), pid=os.getpid(), since=now, heartbeat=now)

        def work(s: Any) -> DaemonOut | None:
            regs = _parsed(_registrations(s))
            live = [d for d in regs.values() if _alive(d, now) and not _same(d, me)]
            if live and not self.db.is_postgres:
                return live[0]
            maintenance.delete_state(s, [k for k, d in regs.items() if not _alive(d, now)])
            maintenance.set_state(s, self._key(me), me.model_dump_json(exclude={"alive"}))
            return None

        other = self.db.write(work)  # raised outside: write() runs a Conflict again
        if other is not None:
            raise Conflict(running_message(other))
        return me

    def daemon_heartbeat(self, me: DaemonOut) -> bool:
        """Renew `me`'s registration; False when it is no longer `me`'s (taken over)."""

        def work(s: Any) -> bool:
            raw = maintenance.get_state(s, self._key(me))
            if raw is None or not _same(DaemonOut.model_validate_json(raw), me):
                return False
            beat = me.model_copy(update={"heartbeat": _now()})
            maintenance.set_state(s, self._key(me), beat.model_dump_json(exclude={"alive"}))
            return True

        return self.db.write(work)

    def unregister_daemon(self, me: DaemonOut) -> None:
        def work(s: Any) -> None:
            raw = maintenance.get_state(s, self._key(me))
            if raw is not None and _same(DaemonOut.model_validate_json(raw), me):
                maintenance.delete_state(s, [self._key(me)])

        self.db.write(work)

    def daemons(self) -> list[DaemonOut]:
        """The registered daemons, oldest first, each marked alive or not."""
        with self.db.transaction() as s:
            regs = _parsed(_registrations(s))
        now = _now()
        found = [d.model_copy(update={"alive": _alive(d, now)}) for d in regs.values()]
        return sorted(found, key=lambda d: d.since)

    # --- what happened ---------------------------------------------------------------------
    def recent_passes(self, limit: int = 10) -> list[PassOut]:
        """The last `limit` sync passes (the daemon's and `cdir sync`'s), newest first (the
        journal also has a "sync" event per batch of copies: those are left out)."""
        with self.db.transaction() as s:
            rows = maintenance.recent_events(s, "sync", limit, key="checked")
        return [PassOut(at=as_utc(r.at), path=r.path, **_counts(r.detail)) for r in rows]

    def daemon_status(self, limit: int = 10) -> DaemonStatusOut:
        daemons = self.daemons()
        return DaemonStatusOut(
            running=any(d.alive for d in daemons),
            daemons=daemons,
            providers=self.polls(),
            passes=self.recent_passes(limit),
        )

    def _key(self, d: DaemonOut) -> str:
        if self.db.is_postgres:
            return f"{maintenance.DAEMON}:{d.host}:{d.pid}"
        return maintenance.DAEMON


def _poll_out(row: Provider, seconds: int | None) -> PollOut:
    every = seconds or DEFAULT_POLL_S
    return PollOut(
        name=row.name,
        kind=row.kind,
        root=row.root,
        enabled=row.enabled,
        poll_s=every,
        poll=format_poll(every),
        default=seconds is None,
        watched=row.enabled and _local_folder(row.kind),
    )


def _local_folder(kind: str) -> bool:
    """Whether providers of `kind` keep their files in a folder of this machine (one a
    watcher can follow); a kind whose SDK is not installed is taken not to."""
    try:
        return load_provider_class(kind).capabilities.local_folder
    except MissingDependency:
        return False


def _registrations(s: Any) -> dict[str, str]:
    """Key → value of every daemon registration (`daemon`, `daemon:<host>:<pid>`)."""
    return {maintenance.DAEMON + k: v for k, v in maintenance.states(s, maintenance.DAEMON).items()}


def _parsed(regs: dict[str, str]) -> dict[str, DaemonOut]:
    out = {}
    for key, raw in regs.items():
        try:
            out[key] = DaemonOut.model_validate_json(raw)
        except ValueError:  # unreadable: taken for a dead one, and dropped
            out[key] = DaemonOut(host="?", pid=0, since=_now(), heartbeat=datetime.min)
    return out


def _alive(d: DaemonOut, now: datetime) -> bool:
    """On this host the pid decides (a killed daemon is taken over at once); on another,
    the heartbeat does."""
    age = now - as_utc(d.heartbeat)
    if d.host == socket.gethostname():
        return d.pid > 0 and pids.alive(d.pid) and age < REUSED
    return age < BEAT_TTL


def _same(a: DaemonOut, b: DaemonOut) -> bool:
    return (a.host, a.pid) == (b.host, b.pid)


def _counts(detail: Any) -> dict[str, int]:
    keys = PassOut.model_fields.keys() - {"at", "path"}
    return {k: int(v) for k, v in (detail or {}).items() if k in keys}


def _now() -> datetime:
    return datetime.now(UTC)
