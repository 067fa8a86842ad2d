"""Every error the API returns has one JSON shape, `{"error": {"status", "code", "message"}}`,
and the status that says what went wrong; nothing reaches a client as a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from cdir import errors as e

log = logging.getLogger("cdir.api")


class ErrorBody(BaseModel):
    status: int
    code: str  # stable, for programs: not_found, precondition_failed, provider_unavailable…
    message: str  # one line, for people


class ErrorOut(BaseModel):
    error: ErrorBody


# what any route may answer besides its success (declared in the OpenAPI document)
RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut, "description": what}
    for status, what in (
        (400, "Bad request: an invalid path, option or argument"),
        (401, "No token, or a wrong one"),
        (404, "No such file, directory, provider, job or upload"),
        (409, "In the way: exists, not empty, busy, a directory"),
        (412, "If-Match or If-None-Match failed"),
        (413, "Body over the limit"),
        (416, "Range outside the file"),
        (422, "A parameter or body field of the wrong shape"),
        (503, "A provider, the vault or the catalog is unavailable"),
    )
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    411: "length_required",
    412: "precondition_failed",
    413: "too_large",
    416: "range_not_satisfiable",
}


def body(status: int, code: str, message: str) -> dict[str, dict[str, object]]:
    return {"error": {"status": status, "code": code, "message": message}}


def respond(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body(status, code, message), status, headers=headers)


def for_cdir_error(exc: e.CdirError) -> JSONResponse:
    status, code = next(
        ((s, c) for cls, s, c in e.HTTP_STATUS if isinstance(exc, cls)), (500, "internal")
    )
    headers = {"Retry-After": "5"} if exc.retryable and status in (409, 503) else None
    return respond(status, code, str(exc), headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(e.CdirError)
    async def cdir_error(_: Request, exc: e.CdirError) -> JSONResponse:
        return for_cdir_error(exc)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return respond(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return respond(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return respond(500, "internal", "internal error (see the service log)")
