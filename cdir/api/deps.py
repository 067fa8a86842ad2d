"""What routes share: the vdir, the token check, and the virtual path of a URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cdir.errors import Unauthorized
from cdir.schema.paths import url_path
from cdir.service import same_token
from cdir.vdir.protocol import VirtualDirectory

_bearer = HTTPBearer(auto_error=False, description="the token `cdir service token` prints")


def require_token(
    request: Request,
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Every route but /healthz depends on this."""
    if cred is None or cred.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token (see `cdir service token`)")
    if not same_token(cred.credentials, request.app.state.token()):
        raise Unauthorized("wrong token (see `cdir service token`)")


def get_vdir(request: Request) -> VirtualDirectory:
    vdir: VirtualDirectory = request.app.state.vdir
    return vdir


V = Annotated[VirtualDirectory, Depends(get_vdir)]


def vpath(path: str) -> str:
    """The virtual path of a `{path:path}` URL parameter, validated in one place (schema)."""
    return url_path(path)
