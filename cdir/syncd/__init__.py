"""The replica-sync daemon (`cdir daemon run`): keeps running the one reconcile pass that
`cdir sync` runs (`VDir.sync`), on a schedule and when a local folder changes.

    settings   CDIR_DAEMON_* knobs (debounce, full-pass factor, backoff cap, heartbeat)
    passes     one pass at a time, its log line, which providers failed
    schedule   APScheduler: a job per provider at its poll interval, a periodic full pass,
               jittered exponential backoff for a provider that fails
    watcher    watchdog on local providers' folders, debounced, starts a pass of that provider
    daemon     registration and heartbeat in the catalog, PID file, signals, start and stop

It acts only through `cdir.vdir` (import-linter checks it): it opens no catalog session and
calls no provider itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdir.syncd.daemon import Daemon

__all__ = ["Daemon"]


def __getattr__(name: str) -> Any:
    if name == "Daemon":  # APScheduler and watchdog load with it, not with the package
        from cdir.syncd.daemon import Daemon

        return Daemon
    raise AttributeError(name)
