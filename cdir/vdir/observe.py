"""What the service shows of the catalog as it changes: the journal as an event stream, and
replica-state counts for metrics."""

from __future__ import annotations

from cdir.catalog import queries
from cdir.catalog.models import as_utc
from cdir.schema import EventOut
from cdir.vdir.base import Core


class ObserveOps(Core):
    def events(self, after: int = 0, limit: int = 100) -> list[EventOut]:
        """Journal events with an id above `after`, oldest first (ids only grow, so a reader
        resumes where it stopped)."""
        with self.db.transaction() as s:
            rows = queries.events_after(s, after, limit)
        return [
            EventOut(
                id=r.id or 0,
                at=as_utc(r.at),
                actor=r.actor,
                action=r.action,
                path=r.path,
                provider=r.provider,
                detail=dict(r.detail or {}),
            )
            for r in rows
        ]

    def replica_counts(self) -> dict[tuple[str, str], int]:
        """(provider, replica state) → how many replicas."""
        with self.db.transaction() as s:
            return queries.replica_states(s)
