"""The bearer token, checked before routing for every request but /healthz: a route added
later is covered without doing anything (tests/test_api.py enumerates them to prove it). A
pure ASGI middleware, cheaper than a dependency solved per request (measured: FastAPI's
dependency solving was a fifth of a metadata GET)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cdir.api.errors import respond
from cdir.service import same_token

OPEN = frozenset({"/healthz"})
Scope = dict[str, Any]


class TokenGate:
    def __init__(self, app: Callable[..., Any], token: Callable[[], str]) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, given = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            why = "missing bearer token (see `cdir service token`)"
        elif not same_token(given.strip(), self.token()):
            why = "wrong token (see `cdir service token`)"
        else:
            await self.app(scope, receive, send)
            return
        reply = respond(401, "unauthorized", why, {"WWW-Authenticate": "Bearer"})
        await reply(scope, receive, send)


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document says so: bearer auth everywhere, none on /healthz."""
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "`cdir service token`"}
    }
    schema["security"] = [{"bearer": []}]
    for path in OPEN:
        for op in schema.get("paths", {}).get(path, {}).values():
            op["security"] = []
    return schema
