"""Serve an ASGI app on loopback in a thread, for SDKs that speak their own HTTP stack
(requests, httplib2) and so cannot be handed an httpx transport."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_asgi(app: Any, deadline_s: float = 10.0) -> Iterator[str]:
    """Run `app` until the block ends; yields its base URL, `http://127.0.0.1:PORT`."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + deadline_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > end:
            raise RuntimeError(f"the fake server on port {port} did not start")
        time.sleep(0.01)  # polling a condition with a deadline, not a timing sleep
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(deadline_s)
