"""The five real servers as cdir providers, for the end-to-end tests (test_remote_e2e.py,
test_sync_remote.py): `remotes` gives each one's provider config and rclone remote, `add`
registers one through the CLI, `raw` opens a provider object of its own on the same root to
change files behind cdir's back."""

from __future__ import annotations

from typing import Any

import pytest

from tests.servers import azure, gcs, s3, sftp, webdav


def add(cli: Any, name: str, cfg: dict[str, Any], *extra: str) -> Any:
    args = ["provider", "add", name, "--kind", cfg["kind"], "--root", cfg["root"], *extra]
    for k, v in {**cfg["options"], **cfg["secrets"]}.items():
        args += ["-O", f"{k}={v}"]
    return cli(*args)


@pytest.fixture
def remotes(
    sftp_server: Any, s3_server: Any, azure_server: Any, gcs_server: Any, webdav_server: Any
) -> dict[str, Any]:
    """name → (provider config, rclone env, rclone remote path of the provider root)."""
    out = {}
    for name, mod, server in (
        ("ssh", sftp, sftp_server),
        ("s3", s3, s3_server),
        ("azure", azure, azure_server),
        ("gcs", gcs, gcs_server),
        ("dav", webdav, webdav_server),
    ):
        cfg = mod.provider_config(server)
        root = cfg["root"] if name != "dav" else cfg["root"].lstrip("/")
        out[name] = (cfg, mod.rclone_env(server, name.upper()), f"{name.upper()}:{root}")
    return out


def raw(cli: Any, name: str, cfg: dict[str, Any]) -> Any:
    """A provider object on `name`'s root as cdir stored it, not cdir's own."""
    import json

    from cdir.providers import load_provider_class

    stored = {p["name"]: p for p in json.loads(cli("provider", "list", "-o", "json").out)}
    cls = load_provider_class(cfg["kind"])
    return cls("raw", stored[name]["root"], stored[name]["options"], cfg["secrets"])
