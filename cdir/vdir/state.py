"""The current virtual directory, kept per user and per catalog between invocations. Client
state, not catalog state: reading it opens no catalog (`cdir pwd` imports no SQLAlchemy)."""

from __future__ import annotations

import json
from typing import Any

from cdir.config import Settings, write_private


def _load(settings: Settings) -> dict[str, Any]:
    try:
        return dict(json.loads(settings.state_file.read_text()))
    except (OSError, ValueError):
        return {}


def current_dir(settings: Settings) -> str:
    return str(_load(settings).get("cwd", {}).get(settings.catalog, "/"))


def set_current_dir(settings: Settings, path: str) -> None:
    """Written atomically and private (0600): it names the catalog."""
    state = _load(settings)
    state.setdefault("cwd", {})[settings.catalog] = path
    write_private(settings.state_file, json.dumps(state))
