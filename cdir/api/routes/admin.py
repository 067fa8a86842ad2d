"""Providers (secrets write-only), sync passes and jobs, and the daemon's status."""

from __future__ import annotations

import logging
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from cdir.api.deps import V, vpath
from cdir.errors import CdirError
from cdir.schema import DaemonStatusOut, JobOut, ProviderOut, SyncReport

router = APIRouter()
log = logging.getLogger("cdir.api")
Name = Annotated[str, Path(min_length=1, max_length=64)]


class ProviderIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1, max_length=32)
    root: str = Field(min_length=1, max_length=4096)
    options: dict[str, str] = Field({}, description="options and secrets (secrets go to the vault)")
    priority: int = 0
    location: str | None = None
    check: bool = True


class TestOut(BaseModel):
    name: str
    seconds: float


class RemovedOut(BaseModel):
    name: str
    replicas_forgotten: int


class SyncIn(BaseModel):
    path: str = "/"
    only: list[str] | None = None
    dry_run: bool = False
    force: bool = False
    max_delete: float = Field(0.5, ge=0, le=1)


class JobIn(BaseModel):
    source: str = Field(min_length=1, max_length=4096, description="cdir:/PATH or local:/DIR")
    destination: str = Field(min_length=1, max_length=4096)
    name: str | None = Field(None, max_length=64)


@router.get("/providers", response_model=list[ProviderOut], tags=["providers"])
def providers(vdir: V) -> list[ProviderOut]:
    return vdir.providers()


@router.post("/providers", status_code=201, response_model=ProviderOut, tags=["providers"])
def add_provider(vdir: V, body: ProviderIn) -> ProviderOut:
    return vdir.add_provider(
        body.name,
        body.kind,
        body.root,
        body.options,
        priority=body.priority,
        location=body.location,
        check=body.check,
    )


@router.get("/providers/{name}", response_model=ProviderOut, tags=["providers"])
def provider(vdir: V, name: Name) -> ProviderOut:
    return vdir.provider(name)


@router.post("/providers/{name}/test", response_model=TestOut, tags=["providers"])
def test_provider(request: Request, vdir: V, name: Name) -> TestOut:
    seconds = vdir.test_provider(name)
    request.app.state.metrics.provider_seconds.labels(name).set(seconds)
    return TestOut(name=name, seconds=seconds)


@router.delete("/providers/{name}", response_model=RemovedOut, tags=["providers"])
def remove_provider(vdir: V, name: Name, force: bool = False) -> RemovedOut:
    return RemovedOut(name=name, replicas_forgotten=vdir.remove_provider(name, force=force))


@router.post(
    "/sync",
    response_model=SyncReport,
    tags=["sync"],
    summary="Run one sync pass now and return what it did",
)
def sync(vdir: V, body: SyncIn) -> SyncReport:
    return vdir.sync(
        vpath(body.path.lstrip("/")),
        only=body.only,
        dry_run=body.dry_run,
        force=body.force,
        max_delete=body.max_delete,
        progress=False,
    )


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobOut,
    tags=["sync"],
    summary="Queue a one-way sync; follow it at /jobs/{id} or /events",
)
async def start_job(request: Request, vdir: V, body: JobIn) -> JobOut:
    job = await anyio.to_thread.run_sync(
        lambda: vdir.sync_to(body.source, body.destination, name=body.name, queue=True)
    )
    request.app.state.run_in_background(lambda: _run_queued(vdir))
    return job


def _run_queued(vdir: V) -> None:
    try:
        vdir.run_queued()
    except CdirError as exc:  # recorded on the job; the service goes on
        log.warning("queued jobs: %s", exc)


@router.get("/jobs", response_model=list[JobOut], tags=["sync"])
def jobs(
    vdir: V, name: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> list[JobOut]:
    return vdir.jobs(name, limit)


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["sync"])
def job(vdir: V, job_id: Annotated[int, Path(ge=1, le=2**62)]) -> JobOut:
    return vdir.job(job_id)


@router.get(
    "/daemon",
    response_model=DaemonStatusOut,
    tags=["sync"],
    summary="The sync daemons, their providers and recent passes",
)
def daemon(vdir: V, limit: Annotated[int, Query(ge=1, le=1000)] = 10) -> DaemonStatusOut:
    return vdir.daemon_status(limit)
