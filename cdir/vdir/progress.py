"""The progress bar of long transfers (rich, on stderr, only on a terminal)."""

from __future__ import annotations

from typing import Any


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
