"""Shapes shared by the CLI, the API and the daemon (no ORM here)."""

from cdir.schema.models import (
    DaemonOut,
    DaemonStatusOut,
    EntryOut,
    EventOut,
    GcReport,
    JobOut,
    PassOut,
    PinOut,
    PinsOut,
    PollOut,
    ProviderOut,
    ReplicaOut,
    SyncReport,
    TransferReport,
)
from cdir.schema.paths import normalize

__all__ = [
    "DaemonOut",
    "DaemonStatusOut",
    "EntryOut",
    "EventOut",
    "GcReport",
    "JobOut",
    "PassOut",
    "PinOut",
    "PinsOut",
    "PollOut",
    "ProviderOut",
    "ReplicaOut",
    "SyncReport",
    "TransferReport",
    "normalize",
]
