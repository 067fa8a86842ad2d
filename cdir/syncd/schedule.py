"""APScheduler (3.x, BackgroundScheduler): one interval job per enabled provider at its poll
interval, a full pass every `full_every` times the shortest interval (the first one at start:
what changed while no daemon ran), and a re-read of the providers every `refresh` seconds, so
`cdir provider add/set/remove` reach a running daemon; queued one-way syncs run every `jobs`
seconds. A provider whose pass fails is tried again after a jittered, doubling delay (at most
`max_backoff`); the others go on."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from cdir.errors import CdirError
from cdir.schema.models import DEFAULT_POLL_S
from cdir.syncd.passes import Passes
from cdir.syncd.settings import DaemonSettings
from cdir.syncd.watcher import Watchers
from cdir.vdir.daemonops import format_poll

log = logging.getLogger("cdir.syncd")
FIRST_RETRY_S = 2.0
FULL = "full"


class Schedule:
    def __init__(
        self, vdir: Any, passes: Passes, watchers: Watchers, settings: DaemonSettings
    ) -> None:
        self.vdir, self.passes, self.watchers, self.settings = vdir, passes, watchers, settings
        self.polls: dict[str, int] = {}  # provider → poll interval (s), as scheduled
        self.failures: dict[str, int] = {}  # provider → passes failed in a row
        self.full_s = 0.0
        # jobs wait for the pass in progress (Passes.lock) in threads of their own; a
        # provider's job coalesces, and a watched folder may queue one more pass behind it
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(64)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> None:
        self.refresh()
        self.scheduler.add_job(
            self.refresh, IntervalTrigger(seconds=self.settings.refresh), id="refresh"
        )
        self.scheduler.add_job(  # `cdir sync SOURCE DESTINATION --async` left these to us
            self.passes.run_jobs, IntervalTrigger(seconds=self.settings.jobs), id="jobs"
        )
        self.scheduler.start()

    def stop(self) -> None:
        """No new pass starts; the one in progress finishes."""
        self.scheduler.shutdown(wait=True)

    def trigger(self, name: str) -> None:
        """A watched folder changed: a pass of that provider, unless it waits for a retry."""
        if name in self.polls and not self.failures.get(name):
            self.scheduler.add_job(
                self._pass,
                args=[name, "watch"],
                id=f"watch:{name}",
                replace_existing=True,
                max_instances=2,  # one running, one queued behind it: no change missed
            )

    # --- jobs ------------------------------------------------------------------------------
    def _pass(self, name: str, why: str) -> None:
        failed = self.passes.run([name], why, self.polls)
        self._settle([name], failed)

    def _full(self) -> None:
        names = list(self.polls)
        self._settle(names, self.passes.run(None, "full", names))

    def _settle(self, names: list[str], failed: set[str]) -> None:
        if self.passes.stopping.is_set():
            return
        for name in names:
            if name in failed:
                self._back_off(name)
            elif self.failures.pop(name, 0):
                log.info("%s: back to normal", name)

    def _back_off(self, name: str) -> None:
        n = self.failures[name] = self.failures.get(name, 0) + 1
        delay = min(self.settings.max_backoff, FIRST_RETRY_S * 2 ** min(n - 1, 30))
        delay *= random.uniform(0.5, 1.0)  # daemons that failed together do not retry together
        job = self.scheduler.get_job(f"poll:{name}")
        if job is not None:
            job.modify(next_run_time=_now() + timedelta(seconds=delay))
        log.warning("%s: failed %d time(s) in a row; next try in %.0f s", name, n, delay)

    # --- what to poll ----------------------------------------------------------------------
    def refresh(self) -> None:
        """Schedule exactly the enabled providers, each at its interval; watch the local ones."""
        try:
            found = [p for p in self.vdir.polls() if p.enabled]
        except CdirError as exc:  # the catalog is away: keep the schedule as it is
            log.warning("could not read the providers: %s", exc)
            return
        want = {p.name: p.poll_s for p in found}
        for name in set(self.polls) - set(want):
            self.scheduler.remove_job(f"poll:{name}")
            self.failures.pop(name, None)
            log.info("%s: no longer polled", name)
        for name, every in want.items():
            if self.polls.get(name) != every:
                self.scheduler.add_job(
                    self._pass,
                    IntervalTrigger(seconds=every),
                    args=[name, "poll"],
                    id=f"poll:{name}",
                    replace_existing=True,
                )
                log.info("%s: polled every %s", name, format_poll(every))
        self.polls = want
        self._schedule_full(min(want.values(), default=DEFAULT_POLL_S))
        self.watchers.update({p.name: p.root for p in found if p.watched})

    def _schedule_full(self, shortest: int) -> None:
        every = self.settings.full_every * shortest
        if every == self.full_s:
            return
        first = self.full_s == 0  # at start: the first full pass runs now
        self.full_s = every
        self.scheduler.add_job(
            self._full,
            IntervalTrigger(seconds=every),
            id=FULL,
            replace_existing=True,
            **({"next_run_time": _now()} if first else {}),
        )
        log.info("a full pass every %s", format_poll(round(every)))


def _now() -> datetime:
    return datetime.now(UTC)
