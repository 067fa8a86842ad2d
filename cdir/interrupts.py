"""Ctrl-C and SIGTERM, delivered where cdir can act on them.

The command line installs `install()`: a signal then raises KeyboardInterrupt as usual —
except inside a `critical()` block (a catalog write transaction), where it is held until the
block ends, so a transaction is never cut in half. A second signal while one is held, or
any signal outside a critical block, raises at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_state = threading.local()
_held = {"pending": False}


def _depth() -> int:
    return getattr(_state, "depth", 0)


def _handler(signum: int, frame: FrameType | None) -> None:
    if _depth() and not _held["pending"]:
        _held["pending"] = True  # raised when the critical block ends
        return
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM through the handler (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)


def pending() -> bool:
    """A signal arrived and is being held (code that polls may wind down early)."""
    return _held["pending"]


@contextmanager
def critical() -> Iterator[None]:
    """A block that a signal does not cut (it is raised as KeyboardInterrupt afterwards)."""
    _state.depth = _depth() + 1
    try:
        yield
    finally:
        _state.depth -= 1
        if (
            not _state.depth
            and _held["pending"]
            and threading.current_thread() is threading.main_thread()
        ):
            _held["pending"] = False
            raise KeyboardInterrupt
