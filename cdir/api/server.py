"""Run the service in this process under uvicorn (`cdir service start --foreground`, and what
`cdir service start` runs in the background): the token made if missing, the bind checked,
the URL written where the CLI finds it, removed again on exit."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from cdir import service
from cdir.errors import UsageError
from cdir.vdir.protocol import VirtualDirectory


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, certfile: str | None, keyfile: str | None, insecure: bool) -> bool:
    """Whether the service speaks TLS; a certificate without its key (or the reverse) is
    refused, and so is a non-loopback bind without TLS — a token sent in clear over a
    network can be read by anyone on it — unless the user says `--insecure`."""
    if bool(certfile) != bool(keyfile):
        raise UsageError("TLS needs both --certfile and --keyfile")
    tls = bool(certfile and keyfile)
    if not is_loopback(host) and not tls and not insecure:
        raise UsageError(
            f"refusing to serve on {host} without TLS: the token would cross the network in "
            "clear; give --certfile and --keyfile, or --insecure if the network is trusted"
        )
    return tls


def url_of(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = socket.gethostname()
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def serve(
    vdir: VirtualDirectory,
    home: Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    certfile: str | None = None,
    keyfile: str | None = None,
    insecure: bool = False,
    cors_origins: list[str] | None = None,
    daemon_pid: int | None = None,
    inline_reads: bool = False,
) -> None:
    import uvicorn

    from cdir.api.app import create_app

    tls = check_listen(host, certfile, keyfile, insecure)
    files = service.Files(home)
    service.token(files, create=True)
    app = create_app(
        vdir,
        service.CurrentToken(files),
        uploads_dir=home / "uploads",
        cors_origins=cors_origins,
        inline_reads=inline_reads,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        log_level="info",
        access_log=True,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    me = {"url": url_of(host, port, tls), "pid": os.getpid(), "tls": tls}
    service.write_state(files, {**me, "daemon_pid": daemon_pid})
    try:
        uvicorn.Server(config).run()
    finally:
        written = service.read_state(files)
        if written and written.get("pid") == os.getpid():
            service.clear_state(files)
        vdir.close()
