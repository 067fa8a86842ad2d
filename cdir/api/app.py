"""The FastAPI application: every route under /api/v1 (and /metrics, /docs, /openapi.json)
behind the bearer token (`auth.TokenGate`); /healthz alone is open."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cdir import __version__
from cdir.api import auth, errors
from cdir.api.auth import TokenGate
from cdir.api.metrics import Metrics, MetricsMiddleware
from cdir.api.routes import admin, entries, events, files, uploads
from cdir.vdir.protocol import VirtualDirectory

GiB = 1024**3
PREFIX = "/api/v1"
# Worker threads for the routes that call vdir (catalog reads, mostly). Fewer than anyio's 40:
# under 64 clients, 8 served 712 metadata GETs a second and 40 served 601 (measured: the
# threads mostly fight over the GIL). Uploads and jobs, which hold a thread for their whole
# length, take theirs from `app.state.transfers` so they never starve the reads.
THREADS, TRANSFER_THREADS = 8, 32


@asynccontextmanager
async def _threads(app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    app.state.transfers = anyio.CapacityLimiter(TRANSFER_THREADS)
    yield


def create_app(
    vdir: VirtualDirectory,
    token: str | Callable[[], str],
    *,
    uploads_dir: Path,
    max_upload: int = 1024 * GiB,
    max_chunk: int = 256 * 1024**2,
    cors_origins: list[str] | None = None,
    inline_reads: bool = False,
) -> FastAPI:
    """The service over `vdir`. `max_upload`: the largest body a PUT takes; `max_chunk`: the
    largest resumable-upload chunk; `cors_origins`: none unless configured. `token`: the
    bearer token, or a callable giving the current one (re-read when rotated)."""
    app = FastAPI(
        lifespan=_threads,
        title="cdir",
        version=__version__,
        description="A multi-cloud virtual directory. Every route but /healthz needs "
        "`Authorization: Bearer TOKEN` (`cdir service token`).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.vdir = vdir
    app.state.token = token if callable(token) else lambda: token
    app.state.max_upload, app.state.max_chunk = max_upload, max_chunk
    app.state.uploads = uploads_dir
    app.state.inline_reads = inline_reads  # deps.catalog_read says when and why
    background = ThreadPoolExecutor(1, thread_name_prefix="cdir-jobs")
    app.state.run_in_background = lambda fn: background.submit(fn)
    errors.install(app)

    api = APIRouter(prefix=PREFIX, responses=errors.RESPONSES)
    for module in (files, entries, admin, events, uploads):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(_service_routes(app, vdir))

    metrics = Metrics(vdir.replica_counts)
    app.state.metrics = metrics
    app.add_middleware(TokenGate, token=app.state.token)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts the 401s too
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Content-Range"],
        )
    return app


def _service_routes(app: FastAPI, vdir: VirtualDirectory) -> APIRouter:
    open_router = APIRouter(tags=["service"])
    guarded = APIRouter(tags=["service"], responses=errors.RESPONSES)

    @open_router.get("/healthz", summary="Liveness: the only route without a token")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @guarded.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics(request: Request) -> Response:
        data = generate_latest(request.app.state.metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    @guarded.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    def described() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = auth.document(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = described  # type: ignore[method-assign]

    @guarded.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="cdir API")

    open_router.include_router(guarded)
    return open_router
