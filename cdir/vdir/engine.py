"""The parallel transfer engine: runs transfer tasks on a thread pool with retries and a
progress bar, and hands back results in completion order so the caller can batch catalog
writes. It knows providers, never the catalog."""

from __future__ import annotations

import queue
import random
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
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
    lane: str = ""  # tasks of one lane share its width (a provider's max_parallel)


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
                DownloadColumn(binary_units=True),
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


BUNDLE_FILES = 64  # small tasks of one lane run as one unit of work…
BUNDLE_BYTES = 4 * 1024 * 1024  # …up to this many bytes in all
SMALL = 256 * 1024  # a task this small may join a bundle


def run(
    tasks: Iterable[Task[T]],
    parallel: int,
    progress: Progress | None = None,
    widths: Mapping[str, int] | None = None,
) -> Iterator[Outcome[T]]:
    """Run tasks with at most `parallel` in flight, and at most `widths[lane]` per lane (a
    provider that is fastest one transfer at a time, say); yield outcomes as they complete.

    Tasks are pulled lazily (a bounded look-ahead), so a million-file plan never sits in a
    queue, and results come back through one queue. Small tasks of a lane go to a worker in
    bundles: handing 20,000 4 KiB files to threads one by one cost more (thread wake-ups and
    GIL hand-offs, ~100 µs a file measured) than copying them."""
    parallel = max(1, parallel)
    limits = dict(widths or {})
    it = iter(tasks)
    # each bundle answers once: its outcomes, and the exception that stopped it if any
    results: queue.SimpleQueue[tuple[list[Outcome[T]], BaseException | None]] = queue.SimpleQueue()
    waiting: dict[str, deque[Task[T]]] = defaultdict(deque)
    busy: Counter[str] = Counter()
    state = {"queued": 0, "running": 0, "exhausted": False}
    lookahead = max(parallel * 16, BUNDLE_FILES * 2)

    def width(lane: str) -> int:
        return max(1, min(parallel, limits.get(lane) or parallel))

    def work(bundle: list[Task[T]]) -> None:
        done: list[Outcome[T]] = []
        try:
            for t in bundle:
                done.append(_with_retries(t))
        except BaseException as exc:  # Ctrl-C or a bug: the caller gets what was done first
            results.put((done, exc))
            return
        results.put((done, None))

    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="cdir-xfer")

    def take(lane: str) -> list[Task[T]]:
        q = waiting[lane]
        bundle, nbytes = [q.popleft()], 0
        nbytes = bundle[0].size
        while (
            q
            and bundle[-1].size <= SMALL
            and q[0].size <= SMALL
            and len(bundle) < BUNDLE_FILES
            and nbytes + q[0].size <= BUNDLE_BYTES
        ):
            nbytes += q[0].size
            bundle.append(q.popleft())
        state["queued"] -= len(bundle)
        return bundle

    def pull() -> bool:
        """Read tasks ahead into their lanes; False once there are none left."""
        while not state["exhausted"] and state["queued"] < lookahead:
            task = next(it, None)
            if task is None:
                state["exhausted"] = True
                break
            waiting[task.lane].append(task)
            state["queued"] += 1
        return bool(state["queued"])

    def fill() -> None:
        while state["running"] < parallel and pull():
            lane = next((ln for ln, q in waiting.items() if q and busy[ln] < width(ln)), None)
            if lane is None:
                return
            busy[lane] += 1
            state["running"] += 1
            pool.submit(work, take(lane))

    try:
        fill()
        while state["running"]:
            outs, exc = results.get()
            state["running"] -= 1
            if exc is None:
                busy[outs[0].task.lane] -= 1
                fill()
            for out in outs:
                if progress is not None:
                    progress.advance(1, out.task.size if out.error is None else 0)
                yield out
            if exc is not None:
                raise exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
