"""The parallel transfer engine: runs transfer tasks on a thread pool with retries and a
progress bar, and hands back results in completion order so the caller can batch catalog
writes. It knows providers, never the catalog."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cdir.errors import CdirError

T = TypeVar("T")

RETRIES = 4
BACKOFF_S = 0.2


@dataclass
class Task(Generic[T]):
    key: T  # the caller's handle (e.g. (entry path, provider name))
    size: int
    run: Callable[[], Any]  # does the transfer; returns what the caller needs (a RemoteStat)
    label: str = ""


@dataclass
class Outcome(Generic[T]):
    task: Task[T]
    result: Any = None
    error: CdirError | None = None
    attempts: int = 1


def _with_retries(task: Task[T]) -> Outcome[T]:
    """Retry retryable errors only, with jittered exponential backoff."""
    for attempt in range(1, RETRIES + 1):
        try:
            return Outcome(task, task.run(), None, attempt)
        except CdirError as exc:
            if not exc.retryable or attempt == RETRIES:
                return Outcome(task, None, exc, attempt)
            time.sleep(BACKOFF_S * 2 ** (attempt - 1) * (0.5 + random.random()))
        except OSError as exc:  # local file trouble: not retryable, still one clear line
            return Outcome(task, None, CdirError(f"{task.label}: {exc.strerror or exc}"), attempt)
    raise AssertionError("unreachable")


class Progress:
    """A rich progress bar (files, bytes, rate) on stderr if it is a terminal, else silent."""

    def __init__(
        self, title: str, total_files: int, total_bytes: int, enabled: bool = True
    ) -> None:
        self.title, self.total_files, self.total_bytes = title, total_files, total_bytes
        self.enabled = enabled
        self.files_done = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if not (self.enabled and self.total_files):
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as Bar

        console = Console(stderr=True)
        if console.is_terminal:
            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[files]}"),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                self.title, total=max(self.total_bytes, 1), files=self._files_text()
            )
        return self

    def _files_text(self) -> str:
        return f"{self.files_done}/{self.total_files} files"

    def advance(self, files: int, nbytes: int) -> None:
        self.files_done += files
        if self._bar is not None:
            self._bar.update(self._task, advance=nbytes, files=self._files_text())

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def run(
    tasks: Iterable[Task[T]], parallel: int, progress: Progress | None = None
) -> Iterator[Outcome[T]]:
    """Run tasks with at most `parallel` in flight; yield outcomes as they complete.

    Tasks are submitted lazily so a million-file plan does not sit in the pool's queue."""
    parallel = max(1, parallel)
    it = iter(tasks)
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="cdir-xfer") as pool:
        inflight: set[Future[Outcome[T]]] = set()

        def fill() -> None:
            while len(inflight) < parallel * 4:
                task = next(it, None)
                if task is None:
                    return
                inflight.add(pool.submit(_with_retries, task))

        fill()
        while inflight:
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for fut in done:
                inflight.discard(fut)
                outcome = fut.result()
                if progress is not None:
                    progress.advance(1, outcome.task.size if outcome.error is None else 0)
                yield outcome
            fill()
