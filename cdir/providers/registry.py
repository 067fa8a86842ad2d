"""Provider kinds are entry points in the group `cdir.providers`, imported only when used
(a `cdir ls` must not import boto3)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from cdir.errors import MissingDependency, UsageError
from cdir.providers.base import Provider

# pip extra that brings each kind's SDK
EXTRAS = {
    "sftp": "sftp",
    "s3": "s3",
    "azure": "azure",
    "gcs": "gcs",
    "webdav": "webdav",
    "gdrive": "gdrive",
    "onedrive": "onedrive",
    "dropbox": "dropbox",
    "box": "box",
    "libcloud": "libcloud",
}


@cache
def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="cdir.providers")}


def available_kinds() -> list[str]:
    return sorted(_entry_points())


def load_provider_class(kind: str) -> type[Provider]:
    eps = _entry_points()
    if kind not in eps:
        raise UsageError(f"unknown provider kind {kind!r} (known: {', '.join(available_kinds())})")
    try:
        cls = eps[kind].load()
    except ImportError as exc:
        extra = EXTRAS.get(kind, kind)
        raise MissingDependency(
            f"provider kind {kind!r} needs {exc.name or 'an SDK'}: pip install 'cdir[{extra}]'"
        ) from exc
    return cls


def open_provider(
    kind: str,
    name: str,
    root: str,
    options: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Provider:
    return load_provider_class(kind)(name, root, options, secrets)
