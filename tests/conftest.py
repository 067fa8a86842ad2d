"""Shared fixtures. Each real server lives in its own module under tests/servers/."""

from __future__ import annotations

pytest_plugins = [
    "tests.servers.sftp",
    "tests.servers.s3",
    "tests.servers.azure",
    "tests.servers.gcs",
    "tests.servers.webdav",
]
