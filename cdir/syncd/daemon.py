"""The daemon process (`cdir daemon run`): registers itself in the catalog (one per SQLite
catalog; `VDir.register_daemon` refuses a second), renews that registration while it lives,
writes its PID file, runs the schedule and the watchers, and on SIGTERM or SIGINT lets the
pass in progress finish, then unregisters and exits."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from cdir.config import redact, write_private
from cdir.errors import CdirError
from cdir.syncd.passes import Passes
from cdir.syncd.schedule import Schedule
from cdir.syncd.settings import DaemonSettings
from cdir.syncd.watcher import Watchers

log = logging.getLogger("cdir.syncd")
PID_FILE = "daemon.pid"
LOG_FILE = "daemon.log"


def setup_logging(stream: TextIO | None = None) -> None:
    """One line per record, UTC times, to `stream` (standard error: `cdir daemon start` sends
    it to the log file, systemd and docker to their journals)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    fmt.converter = time.gmtime
    handler.setFormatter(fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # a poll skipped because the pass before it still runs is the lock doing its job
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.captureWarnings(True)


class Daemon:
    def __init__(self, vdir: Any, home: Path, settings: DaemonSettings | None = None) -> None:
        self.vdir, self.home = vdir, Path(home)
        self.settings = settings or DaemonSettings()
        self.stopping = threading.Event()
        self.taken_over = False

    @property
    def pid_file(self) -> Path:
        return self.home / PID_FILE

    def run(self) -> None:
        """Run until a signal (or until another daemon took the registration over)."""
        old = self._on_signals()  # from the start: a stop while starting up is a clean stop
        try:
            me = self.vdir.register_daemon()  # Conflict: another one runs on this catalog
            try:
                self._serve(me)
            finally:
                self._unregister(me)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        if self.taken_over:
            raise CdirError("another daemon took this one's registration over; stopped")
        log.info("daemon stopped")

    def _serve(self, me: Any) -> None:
        self.vdir.notice = log.info  # "waiting for `put /t` (pid …) to finish with /t"
        write_private(self.pid_file, f"{me.pid}\n")
        passes = Passes(self.vdir)
        watchers = Watchers(self.settings.debounce, lambda name: schedule.trigger(name))
        schedule = Schedule(self.vdir, passes, watchers, self.settings)
        beat_stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(me, beat_stop), daemon=True)
        catalog = redact(self.vdir.settings.catalog)
        log.info("daemon started: pid %d on %s, catalog %s", me.pid, me.host, catalog)
        try:
            watchers.start()
            schedule.start()
            beat.start()
            while not self.stopping.wait(1.0):
                pass
            log.info("stopping: the pass in progress finishes first")
            passes.stopping.set()
            schedule.stop()
        finally:
            watchers.stop()
            beat_stop.set()

    def _on_signals(self) -> dict[int, Any]:
        def stop(signum: int, frame: FrameType | None) -> None:
            self.stopping.set()

        return {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _beat(self, me: Any, stop: threading.Event) -> None:
        while not stop.wait(self.settings.heartbeat):
            try:
                if not self.vdir.daemon_heartbeat(me):
                    log.error("this daemon's registration was taken over by another; stopping")
                    self.taken_over = True
                    self.stopping.set()
                    return
            except CdirError as exc:  # the next beat tries again
                log.warning("could not renew this daemon's registration: %s", exc)

    def _unregister(self, me: Any) -> None:
        try:
            self.vdir.unregister_daemon(me)
        except CdirError as exc:  # a dead registration is taken over by the next daemon
            log.warning("could not unregister: %s", exc)
        try:
            if self.pid_file.read_text().strip() == str(me.pid):
                self.pid_file.unlink()
        except OSError:
            pass
