"""Box addresses items by id; cdir by path. `Tree` remembers the id of each path seen, so a
path costs a folder listing once per process, not once per call.

Paths here are *Box paths*: below Box's root folder (id "0", path ""), the provider root
included. Box compares names case-insensitively, so the keys are case-folded and each node
keeps the spelling Box gave. A folder whose every child is known ("listed") answers that a
name is absent without asking again; our own writes keep it right, and a stale entry (an
item changed by another client) is dropped when Box says the id is gone, or by `changes`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

ROOT_ID = "0"
GONE_KEPT = 10_000  # ids of items no longer in the tree remembered with their last path


@dataclass(frozen=True)
class Node:
    id: str
    kind: Literal["file", "dir"]
    path: str  # the Box path, as Box spells it


def key(path: str) -> str:
    return path.casefold()


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class Tree:
    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {"": Node(ROOT_ID, "dir", "")}  # by key
        self._kids: dict[str, set[str]] = {}  # folder key → keys of its children we know
        self._ids: dict[str, str] = {ROOT_ID: ""}  # id → key
        self._listed: set[str] = set()  # keys of folders whose children are all known
        self._gone: dict[str, str] = {}  # id → last path, for events about deleted items
        self._lock = threading.Lock()

    def get(self, path: str) -> Node | None:
        with self._lock:
            return self._nodes.get(key(path))

    def listed(self, path: str) -> bool:
        with self._lock:
            return key(path) in self._listed

    def add(self, node: Node) -> None:
        with self._lock:
            self._add(node)

    def fill(self, folder: str, children: list[Node]) -> None:
        """All the children of `folder`, as a listing just gave them."""
        with self._lock:
            fresh = {key(n.path) for n in children}
            for k in self._kids.get(key(folder), set()) - fresh:
                self._drop(k)  # no longer there
            for node in children:
                self._add(node)
            self._listed.add(key(folder))

    def forget(self, path: str, *, stale: bool = False) -> None:
        """`path` and all below it are gone. `stale`: what we knew of its parent is wrong
        too (another client changed it), so the parent is listed again when next asked."""
        with self._lock:
            self._drop(key(path))
            if stale:
                self._listed.discard(_parent(key(path)))

    def path_of(self, item_id: str) -> str | None:
        """Where the item `item_id` is, or was last seen (events name items by id)."""
        with self._lock:
            k = self._ids.get(item_id)
            return self._nodes[k].path if k is not None else self._gone.get(item_id)

    def _add(self, node: Node) -> None:
        k = key(node.path)
        for stale in (self._nodes.get(k), self._nodes.get(self._ids.get(node.id, k))):
            if stale is not None and (stale.id != node.id or key(stale.path) != k):
                self._drop(key(stale.path))  # another item took the name, or this one moved
        self._nodes[k] = node
        self._ids[node.id] = k
        self._kids.setdefault(_parent(k), set()).add(k)

    def _drop(self, k: str) -> None:
        if not k:
            return  # the Box root stays
        node = self._nodes.pop(k, None)
        if node is not None:
            self._gone[node.id] = node.path
            if self._ids.get(node.id) == k:
                del self._ids[node.id]
        for child in self._kids.pop(k, set()):
            self._drop(child)
        self._kids.get(_parent(k), set()).discard(k)
        self._listed.discard(k)
        while len(self._gone) > GONE_KEPT:
            del self._gone[next(iter(self._gone))]  # the oldest first


def _parent(k: str) -> str:
    return k.rpartition("/")[0]
