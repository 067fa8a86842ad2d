"""Shapes shared by the CLI, the API and the daemon (no ORM here)."""

from cdir.schema.models import (
    EntryOut,
    GcReport,
    PinOut,
    PinsOut,
    ProviderOut,
    ReplicaOut,
    SyncReport,
    TransferReport,
)
from cdir.schema.paths import normalize

__all__ = [
    "EntryOut",
    "GcReport",
    "PinOut",
    "PinsOut",
    "ProviderOut",
    "ReplicaOut",
    "SyncReport",
    "TransferReport",
    "normalize",
]
