"""Walking a local source tree for `put`, with os.scandir (one stat per entry)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from cdir.errors import CdirError


def walk_local(top: Path, recursive: bool) -> Iterator[tuple[Path, str, os.stat_result | None]]:
    """(path, relative path, stat) for files and (path, rel, None) for dirs."""
    stack = [(top, "")]
    while stack:
        d, rel = stack.pop()
        try:
            it = os.scandir(d)
        except OSError as exc:
            raise CdirError(f"cannot read directory {d}: {exc.strerror}") from None
        with it:
            for de in it:
                r = f"{rel}/{de.name}" if rel else de.name
                if de.is_dir(follow_symlinks=True):
                    if recursive:
                        yield Path(de.path), r, None
                        stack.append((Path(de.path), r))
                elif de.is_file(follow_symlinks=True):
                    yield Path(de.path), r, de.stat()
