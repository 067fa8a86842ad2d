"""Jobs: named syncs (`cdir sync SOURCE DEST --name N`), run now or queued for the daemon
(`--async`), with their counters and errors. Functions over a session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlmodel import Session

from cdir.catalog.models import Job, table, utcnow

JOB = table(Job)


def add(s: Session, name: str | None, kind: str, source: str, destination: str, state: str) -> int:
    q = insert(JOB).values(
        name=name,
        kind=kind,
        source=source,
        destination=destination,
        state=state,
        files_done=0,
        files_failed=0,
        bytes_done=0,
        errors=[],
        started_at=utcnow(),
    )
    return int(s.execute(q.returning(JOB.c.id)).scalar_one())


def take(s: Session, job_id: int) -> bool:
    """Mark a queued job running; False if another runner took it first."""
    q = update(JOB).where(JOB.c.id == job_id, JOB.c.state == "queued").values(state="running")
    return bool(s.execute(q).rowcount)  # type: ignore[attr-defined]


def finish(
    s: Session,
    job_id: int,
    *,
    failed: bool,
    files: int,
    files_failed: int,
    nbytes: int,
    errors: Sequence[str],
) -> None:
    s.execute(
        update(JOB)
        .where(JOB.c.id == job_id)
        .values(
            state="failed" if failed else "done",
            files_done=files,
            files_failed=files_failed,
            bytes_done=nbytes,
            errors=list(errors[:50]),
            finished_at=utcnow(),
        )
    )


def listed(s: Session, name: str | None = None, limit: int = 20) -> list[Row[Any]]:
    """The newest jobs first (of one name when given)."""
    q = select(JOB).order_by(JOB.c.id.desc()).limit(limit)
    if name is not None:
        q = q.where(JOB.c.name == name)
    return list(s.execute(q).all())


def queued(s: Session) -> list[Row[Any]]:
    return list(s.execute(select(JOB).where(JOB.c.state == "queued").order_by(JOB.c.id)).all())


def one(s: Session, job_id: int) -> Row[Any] | None:
    return s.execute(select(JOB).where(JOB.c.id == job_id)).first()
