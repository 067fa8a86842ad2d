"""The metadata catalog: the source of truth for every virtual path and its replicas.
Tables (`models`), the engine and transactions (`db`), and the operations vdir needs as
functions over a session (`queries` reads, `writes` writes)."""

from cdir.catalog import jobs, leases, queries, registry, writes
from cdir.catalog.db import Database
from cdir.catalog.models import Entry, EntryKind, Event, Job, Provider, Replica, ReplicaState

__all__ = [
    "Database",
    "Entry",
    "EntryKind",
    "Event",
    "Job",
    "Provider",
    "Replica",
    "ReplicaState",
    "jobs",
    "leases",
    "queries",
    "registry",
    "writes",
]
