"""Provider rows, and what the catalog notes about a provider's health: functions over a
session (in a write transaction, see `Database.transaction`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session

from cdir.catalog.maintenance import delete_state, get_state, set_state
from cdir.catalog.models import Provider, utcnow
from cdir.catalog.queries import ENTRY, PROVIDER, REPLICA
from cdir.catalog.writes import MAX_ERROR

DOWN = "down:"  # catalog_state key prefix: a provider a sync pass could not use, and why


def mark_down(s: Session, provider_id: int, name: str, why: str) -> None:
    """A provider a pass could not use: noted once (with the time), and its replicas carry
    the reason as their last error until a pass lists it again (their state is untouched:
    what they hold is unknown, not gone)."""
    if get_state(s, DOWN + name) is not None:
        return
    note = f"{name} unreachable since {utcnow():%Y-%m-%d %H:%M:%S} UTC: {why}"[:MAX_ERROR]
    set_state(s, DOWN + name, note)
    s.execute(
        update(REPLICA)
        .where(REPLICA.c.provider_id == provider_id, REPLICA.c.last_error.is_(None))
        .values(last_error=note)
    )


def mark_up(s: Session, provider_id: int, name: str) -> None:
    """A provider listed again: the reasons `mark_down` left are cleared."""
    note = get_state(s, DOWN + name)
    if note is None:
        return
    delete_state(s, [DOWN + name])
    s.execute(
        update(REPLICA)
        .where(REPLICA.c.provider_id == provider_id, REPLICA.c.last_error == note)
        .values(last_error=None)
    )


# --- providers -------------------------------------------------------------------------------
def add_provider(s: Session, row: Provider) -> None:
    s.add(row)
    s.flush()  # the row gets its id


def update_provider(s: Session, provider_id: int, values: Mapping[str, Any]) -> None:
    s.execute(update(PROVIDER).where(PROVIDER.c.id == provider_id).values(**values))


def forget_provider(s: Session, provider_id: int) -> None:
    """Delete a provider with its replica rows; preferences for it are cleared (the files
    stay on the provider)."""
    s.execute(delete(REPLICA).where(REPLICA.c.provider_id == provider_id))
    s.execute(
        update(ENTRY)
        .where(ENTRY.c.preferred_provider_id == provider_id)
        .values(preferred_provider_id=None)
    )
    s.execute(delete(PROVIDER).where(PROVIDER.c.id == provider_id))
