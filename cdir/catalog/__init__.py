"""The metadata catalog: the source of truth for every virtual path and its replicas."""

from cdir.catalog.db import Database
from cdir.catalog.models import Entry, Event, Job, Provider, Replica

__all__ = ["Database", "Entry", "Event", "Job", "Provider", "Replica"]
