"""gc: purge old tombstones whose replicas are all deleted, and rotate the journal, so the
catalog's size and the cost of a put do not grow with its history (see catalog.maintenance).
`cdir gc` runs it; the CLI's write commands run `gc_if_due` after their work: at most once a
day, and one primary-key read when it is not due."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlmodel import Session

from cdir.catalog import maintenance
from cdir.catalog.models import utcnow
from cdir.schema import GcReport
from cdir.vdir.base import Core

GC_EVERY = timedelta(days=1)  # how often write commands run gc on their own


class GcOps(Core):
    def gc(
        self,
        *,
        dry_run: bool = False,
        older_than: float | None = None,
        events_older_than: float | None = None,
    ) -> GcReport:
        """Purge tombstones deleted more than `older_than` days ago (default: the setting
        tombstone_days) whose replicas are all deleted, and events older than
        `events_older_than` days (default: event_days). With `dry_run`, only count."""
        t0 = time.perf_counter()
        now = utcnow()
        days = self.settings.tombstone_days if older_than is None else older_than
        event_days = self.settings.event_days if events_older_than is None else events_older_than
        report = GcReport(
            dry_run=dry_run,
            tombstones_before=now - timedelta(days=days),
            events_before=now - timedelta(days=event_days),
        )

        def work(s: Session) -> maintenance.Collected:
            got = maintenance.collect(
                s, report.tombstones_before, report.events_before, dry_run=dry_run
            )
            if not dry_run:
                maintenance.set_state(s, maintenance.LAST_GC, now.isoformat())
                if got.tombstones or got.events:
                    self.event(
                        s,
                        "gc",
                        "/",
                        None,
                        {"tombstones": got.tombstones, "events": got.events, "kept": got.kept},
                    )
            return got

        if dry_run:
            with self.db.transaction() as s:
                got = work(s)
        else:
            got = self.db.write(work)
        report.tombstones_purged, report.events_deleted = got.tombstones, got.events
        report.tombstones_kept = got.kept
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def gc_if_due(self) -> GcReport | None:
        """Run gc when it last ran a day ago or more (or never); None when it is not due."""
        with self.db.transaction() as s:
            last = maintenance.last_gc(s)
        if last is not None and timedelta(0) <= utcnow() - last < GC_EVERY:
            return None
        return self.gc()
