"""The one asyncio event loop that every SFTP connection of the process lives on.

asyncssh is asynchronous; cdir's callers are threads (the transfer engine, the CLI, the API's
worker threads). A daemon thread runs one event loop, started on first use; a caller hands it a
coroutine (`submit`) and blocks on the result (`wait`) with a timeout, so no caller ever runs
asyncio itself. Calling `wait` from the loop thread would deadlock and is refused. Once the
interpreter exits, nothing more is submitted (connections left open are dropped with the
process): cleanup run by the garbage collector then fails fast instead of waiting for a loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_exiting = False


def _at_exit() -> None:
    global _exiting
    _exiting = True


atexit.register(_at_exit)


def _forget_after_fork() -> None:
    # a forked child has no loop thread: it starts its own on first use
    global _loop, _thread
    _loop = _thread = None


os.register_at_fork(after_in_child=_forget_after_fork)


def get_loop() -> asyncio.AbstractEventLoop:
    """The loop, its thread started on first use."""
    global _loop, _thread
    with _lock:
        if _exiting or sys.is_finalizing():
            raise RuntimeError("cdir.providers.sftp: the interpreter is exiting")
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="cdir-sftp-io", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
        return _loop


def on_loop_thread() -> bool:
    return threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Start `coro` on the loop; its result (or exception) comes through the future."""
    try:
        return asyncio.run_coroutine_threadsafe(coro, get_loop())
    except BaseException:
        coro.close()  # never started
        raise


def wait(future: concurrent.futures.Future[T], timeout: float | None) -> T:
    """The result of `future`; TimeoutError (after cancelling it) when it takes longer than
    `timeout` seconds, and a caller interrupted meanwhile cancels it too."""
    if on_loop_thread():
        raise RuntimeError("cdir.providers.sftp: a blocking call on the event loop thread")
    try:
        return future.result(timeout)
    except BaseException:
        if future.done():
            raise  # what the coroutine raised
        future.cancel()
        if isinstance(sys.exc_info()[1], TimeoutError):
            raise TimeoutError(f"no answer from the server within {timeout:g} s") from None
        raise


def run(coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
    """`coro` run on the loop, waited for from this thread."""
    return wait(submit(coro), timeout)
