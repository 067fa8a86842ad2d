"""Where a running cdir service is found: its token, URL, PID and log files under cdir's home.
Shared by the service (which writes them) and the CLI (which reads them to become its client);
imports nothing heavy, so the client path stays fast."""

from __future__ import annotations

import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdir.config import write_private

ENV_URL = "CDIR_URL"
ENV_TOKEN = "CDIR_TOKEN"


@dataclass(frozen=True)
class Files:
    home: Path

    @property
    def token(self) -> Path:
        return self.home / "service.token"

    @property
    def state(self) -> Path:
        """JSON {url, pid, host, port, tls} of the service this home started."""
        return self.home / "service.json"

    @property
    def log(self) -> Path:
        return self.home / "service.log"


def token(files: Files, *, create: bool = False, rotate: bool = False) -> str | None:
    """The service's bearer token (mode 0600): made on first start (`create`) or on
    `rotate`; None when there is none yet."""
    if not rotate:
        try:
            text = files.token.read_text().strip()
        except FileNotFoundError:
            text = ""
        if text or not create:
            return text or None
    new = secrets.token_urlsafe(32)
    write_private(files.token, new + "\n")
    return new


class CurrentToken:
    """The token in the file, re-read when the file changes: `cdir service token --rotate`
    takes effect on a running service at once, and the old token stops working."""

    def __init__(self, files: Files) -> None:
        self._files = files
        self._seen: tuple[int, int] | None = None
        self._token = ""

    def __call__(self) -> str:
        try:
            st = self._files.token.stat()
        except FileNotFoundError:
            return ""  # no token: nothing matches
        if (st.st_mtime_ns, st.st_ino) != self._seen:
            self._token = self._files.token.read_text().strip()
            self._seen = (st.st_mtime_ns, st.st_ino)
        return self._token


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison: the time taken says nothing about how much matched."""
    return hmac.compare_digest(given.encode(), expected.encode())


def write_state(files: Files, state: dict[str, object]) -> None:
    write_private(files.state, json.dumps(state))


def read_state(files: Files) -> dict[str, Any] | None:
    try:
        data = json.loads(files.state.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clear_state(files: Files) -> None:
    files.state.unlink(missing_ok=True)


def running(files: Files) -> dict[str, Any] | None:
    """The state of the service this home started, while its process runs."""
    from cdir import pids

    state = read_state(files)
    pid = int(str(state.get("pid", 0))) if state else 0
    return state if state and pid > 0 and pids.alive(pid) else None


def client_target(files: Files, url: str | None) -> tuple[str, str, bool] | None:
    """(URL, token, whether it is this home's own service) the CLI talks to: `url` (--url
    or CDIR_URL) when given, else the service this home started, while it runs; the token
    is CDIR_TOKEN or the token file."""
    own = not url
    if own:
        state = running(files)
        if state is None:
            return None
        url = str(state["url"])
    assert url is not None
    return url.rstrip("/"), os.environ.get(ENV_TOKEN) or token(files) or "", own
