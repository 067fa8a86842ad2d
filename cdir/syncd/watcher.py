"""watchdog observers on local providers' folders: a change there starts a pass of that
provider once the folder has been quiet for the debounce delay (an editor's save or a tree
copied in is one pass, not one per event). cdir's own upload temporaries are ignored."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("cdir.syncd")
TMP_PREFIX = ".cdir-tmp-"  # an upload in flight (cdir.providers.base names them so)
# what changes a folder; not opened / closed-without-writing: reading a replica (to copy it
# to another provider) must not start a pass
CHANGES = frozenset({"created", "modified", "deleted", "moved", "closed"})


class Debounce:
    """Calls `fire` once `delay` seconds have passed since the last `poke`."""

    def __init__(self, delay: float, fire: Callable[[], None]) -> None:
        self.delay, self.fire = delay, fire
        self._lock = threading.Lock()
        self._last = 0.0
        self._timer: threading.Timer | None = None

    def poke(self) -> None:
        with self._lock:
            self._last = time.monotonic()
            if self._timer is None:
                self._arm(self.delay)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _arm(self, after: float) -> None:
        self._timer = threading.Timer(after, self._due)
        self._timer.daemon = True
        self._timer.start()

    def _due(self) -> None:
        with self._lock:
            if self._timer is None:
                return  # cancelled meanwhile
            left = self._last + self.delay - time.monotonic()
            if left > 0:  # poked again since: wait for quiet
                self._arm(left)
                return
            self._timer = None
        self.fire()


class _Handler(FileSystemEventHandler):
    def __init__(self, debounce: Debounce) -> None:
        self.debounce = debounce

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGES:
            return
        if event.is_directory and event.event_type == "modified":
            return  # a folder's own times: the change inside it has its own event
        paths = [p for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        if all(os.path.basename(os.fsdecode(p)).startswith(TMP_PREFIX) for p in paths):
            return
        self.debounce.poke()


@dataclass
class _Watch:
    root: str
    ino: int  # the folder watched: another one at the same path (remounted) is watched anew
    handle: Any
    debounce: Debounce


class Watchers:
    """One observer thread for every watched folder; `update` adds and drops folders as
    providers come and go, and watches a folder again when it was replaced."""

    def __init__(self, debounce_s: float, fire: Callable[[str], None]) -> None:
        self.debounce_s, self.fire = debounce_s, fire
        self.observer: Any = Observer()
        self.watches: dict[str, _Watch] = {}
        self.refused: dict[str, str] = {}  # name → root that could not be watched (said once)

    def start(self) -> None:
        self.observer.start()

    def update(self, roots: Mapping[str, str]) -> None:
        """Watch exactly these folders (provider name → root)."""
        for name, w in list(self.watches.items()):
            if roots.get(name) != w.root or _ino(w.root) != w.ino:
                self._drop(name)
        for name, root in roots.items():
            if name not in self.watches:
                self._watch(name, root)

    def _watch(self, name: str, root: str) -> None:
        debounce = Debounce(self.debounce_s, lambda: self.fire(name))
        try:
            ino = os.stat(root).st_ino
            handle = self.observer.schedule(_Handler(debounce), root, recursive=True)
        except OSError as exc:  # a root missing (unmounted disk), too many inotify watches
            if self.refused.get(name) != root:
                log.warning("%s: not watched, polled only: %s: %s", name, root, exc.strerror or exc)
                self.refused[name] = root
            return
        self.refused.pop(name, None)
        self.watches[name] = _Watch(root, ino, handle, debounce)
        log.info("%s: watching %s", name, root)

    def _drop(self, name: str) -> None:
        w = self.watches.pop(name)
        w.debounce.cancel()
        with contextlib.suppress(KeyError):  # its emitter may have ended with its folder
            self.observer.unschedule(w.handle)
        log.info("%s: no longer watching %s", name, w.root)

    def stop(self) -> None:
        for w in self.watches.values():
            w.debounce.cancel()
        if self.observer.is_alive():
            self.observer.stop()
            self.observer.join()


def _ino(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
