"""Helpers shared by the server fixtures: free ports, waiting for readiness, stopping by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from cdir.providers.base import Provider

P = TypeVar("P", bound="Provider")

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"  # where scripts/install-test-servers.sh puts what pip cannot


def tool(name: str, install: str) -> str:
    """An executable of this environment (its bin dir, even when not on PATH), else from PATH.
    scripts/test.sh installs them all, so a missing one is an error, never a skip."""
    here = Path(sysconfig.get_path("scripts")) / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not installed: {install}")
    return found


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory for a server's data, configuration and logs, removed after."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def provider_from(cls: type[P], name: str, cfg: dict[str, Any], **options: Any) -> P:
    """A `cls` provider made from a server's `provider_config()`, `options` added or replaced."""
    return cls(name, cfg["root"], {**cfg["options"], **options}, cfg["secrets"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0
) -> None:
    """Poll `ready` until it is true; fail early with the server's output if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{out[-3000:]}")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{what} did not become ready in {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextlib.contextmanager
def running(
    cmd: list[str],
    ready: Callable[[], bool],
    what: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    try:
        wait_until(ready, proc, what)
        yield proc
    finally:
        stop(proc)
