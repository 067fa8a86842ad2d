"""The options of a gdrive provider, and the `Settings` they give its API client."""

from __future__ import annotations

from typing import Any

from cdir.errors import UsageError
from cdir.providers.gdrive.api import QUANTUM, Settings
from cdir.providers.options import OptionSpec

MiB = 1024 * 1024
API_URL = "https://www.googleapis.com"
TOKEN_URL = "https://oauth2.googleapis.com/token"

OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("root", "folder path below My Drive (or the shared drive) that holds the files"),
    OptionSpec(
        "client_id",
        "OAuth client ID of your Google Cloud project (Desktop app); none by default: "
        "you must give one",
    ),
    OptionSpec("client_secret", "OAuth client secret of that client", secret=True),
    OptionSpec("token", "OAuth token (JSON), written by the sign-in", secret=True),
    OptionSpec("drive_id", "ID of a shared drive to use instead of My Drive"),
    OptionSpec("trash", "delete moves files to the trash (false: delete for good)", "bool", True),
    OptionSpec("page_size", "entries per listing page (at most 1000)", "int", 1000, minimum=1),
    OptionSpec(
        "chunk_size", "resumable upload chunk (a multiple of 256KiB)", "size", 8 * MiB, minimum=1
    ),
    OptionSpec(
        "upload_cutoff", "files up to this size go in one request", "size", 5 * MiB, minimum=0
    ),
    OptionSpec("retries", "tries again on throttling and server errors", "int", 6, minimum=0),
    OptionSpec("backoff", "seconds before the first retry (doubled each time)", "float", 1.0),
    OptionSpec("timeout", "seconds to wait for the server on each request", "float", 60.0),
    OptionSpec("api_url", "Drive API base URL (a test server's, say)", default=API_URL),
    OptionSpec("token_url", "OAuth token endpoint", default=TOKEN_URL),
)


def settings(name: str, conf: dict[str, Any]) -> Settings:
    """The parsed options as the API client's settings; UsageError for a bad combination."""
    if conf["chunk_size"] % QUANTUM:
        raise UsageError(f"{name}: option chunk_size must be a multiple of 256KiB")
    return Settings(
        api_url=str(conf["api_url"]).rstrip("/"),
        drive_id=conf["drive_id"] or None,
        page_size=min(int(conf["page_size"]), 1000),  # Drive's largest page
        chunk_size=conf["chunk_size"],
        upload_cutoff=conf["upload_cutoff"],
        retries=conf["retries"],
        backoff=conf["backoff"],
        timeout=conf["timeout"],
    )
