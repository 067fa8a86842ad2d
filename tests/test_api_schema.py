"""schemathesis against the service's own OpenAPI document, over real HTTP: no request it
generates gets a 5xx, and every response keeps to the schema (status, content type, body).
Operations that would act on the machine itself (a provider rooted anywhere, a job reading
any local folder) and the endless event stream are left to test_api.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service import Running, running_service

pytestmark = pytest.mark.slow
SKIPPED = {("POST", "/api/v1/providers"), ("POST", "/api/v1/jobs"), ("GET", "/api/v1/events")}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    import cdir.vault

    base = tmp_path_factory.mktemp("schema")
    mp = pytest.MonkeyPatch()
    mp.setenv("CDIR_VAULT_PASSPHRASE", "test passphrase")
    mp.delenv("CDIR_CATALOG_URL", raising=False)
    mp.setattr(cdir.vault, "SCRYPT_N", 2**10)
    try:
        with running_service(base / "home", register=False) as svc:
            svc.vdir.add_provider("laptop", "local", str(base / "laptop"), {})
            svc.vdir.write("/seed/a.txt", _Bytes(b"seed"), 4)
            yield svc
    finally:
        mp.undo()


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, n: int = -1) -> bytes:
        out, self._data = (
            self._data[: n if n >= 0 else None],
            self._data[n if n >= 0 else len(self._data) :],
        )
        return out


def _spec() -> dict[str, Any]:
    """The app's OpenAPI document; it depends on the routes only, not on a catalog."""
    from cdir.api import create_app

    class NoCatalog:
        def replica_counts(self) -> dict[tuple[str, str], int]:
            return {}

    return create_app(NoCatalog(), "", uploads_dir=Path("/nonexistent")).openapi()  # type: ignore[arg-type]


schema = schemathesis.openapi.from_dict(_spec()).exclude(
    func=lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in SKIPPED
)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_5xx_and_every_response_keeps_to_the_schema(case: Any, live: Running) -> None:
    case.call_and_validate(
        base_url=live.url,
        headers={"Authorization": f"Bearer {live.token}"},
        checks=CHECKS,
        timeout=60,
    )


def test_the_schema_covers_the_routes() -> None:
    paths = set(_spec()["paths"])
    assert {
        "/api/v1/files/{path}",
        "/api/v1/replicas/{provider}/{path}",
        "/api/v1/ids/{entry_id}",
        "/api/v1/uploads/{upload_id}/{n}",
        "/metrics",
        "/healthz",
    } <= paths
