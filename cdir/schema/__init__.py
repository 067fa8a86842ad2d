"""Shapes shared by the CLI, the API and the daemon (no ORM here)."""

from cdir.schema.models import EntryOut, ProviderOut, ReplicaOut, TransferReport
from cdir.schema.paths import normalize

__all__ = ["EntryOut", "ProviderOut", "ReplicaOut", "TransferReport", "normalize"]
