"""The change feed: Graph's `delta` on the drive root, as `Provider.changes` batches.

Delta items carry no path (renaming a folder does not list its descendants), only a name and
the parent's id, so paths are rebuilt from the ids: from the batch itself, from `known` (the
paths of ids seen in earlier batches, kept by the provider), else one GET of the item. A deleted
item whose path cannot be rebuilt (business drives drop deleted items' names) makes the batch a
`reset`: the caller lists everything rather than miss a deletion.

`changed` holds files and folders (OneDrive Personal reports a folder when something below it
changes); a deleted folder may stand for everything below it (its children need not appear).
"""

from __future__ import annotations

from typing import Any

from cdir.providers.base import TMP_PREFIX, ChangeBatch
from cdir.providers.onedrive.api import Graph, Json, item_url
from cdir.providers.onedrive.errors import GraphError

KNOWN_MAX = 200_000  # ids whose path is remembered between batches


def changes(graph: Graph, root: str, cursor: str | None, known: dict[str, str]) -> ChangeBatch:
    """What changed below `root` (a drive path) since `cursor` (a deltaLink); None gives the
    current cursor and no changes."""
    try:
        items, link = _read(graph, cursor)
    except GraphError as exc:
        if exc.status != 410:  # 410 Gone, resyncRequired: the cursor expired
            raise
        return ChangeBatch(_read(graph, None)[1], reset=True)
    if cursor is None:
        return ChangeBatch(link)
    paths = _Paths(graph, items, known)
    changed: dict[str, None] = {}
    deleted: dict[str, None] = {}
    for item in items:
        path = paths.of(item["id"])
        if path is None:
            if "deleted" in item:
                return ChangeBatch(link, reset=True)
            continue  # gone again since: a later batch reports the deletion
        rel = _relative(path, root)
        if rel is None or any(seg.startswith(TMP_PREFIX) for seg in rel.split("/")):
            continue
        (deleted if "deleted" in item else changed)[rel] = None
    if len(known) > KNOWN_MAX:
        known.clear()
    known.update(paths.found)
    # a path deleted and made again (a new id) exists now: it is a change
    return ChangeBatch(link, tuple(changed), tuple(p for p in deleted if p not in changed))


def _read(graph: Graph, cursor: str | None) -> tuple[list[Json], str]:
    """Every item of the feed since `cursor` (all pages) and the deltaLink to go on from."""
    url = cursor or graph.url(item_url("", "delta"))
    params: dict[str, str] | None = None if cursor else {"token": "latest"}
    items: list[Json] = []
    while True:
        page = graph.json("GET", url, params=params)
        params = None
        items += page.get("value", [])
        if "@odata.nextLink" not in page:
            return items, str(page["@odata.deltaLink"])
        url = page["@odata.nextLink"]


def _relative(path: str, root: str) -> str | None:
    """`path` relative to `root` (both drive paths, compared without case); None outside it
    and for the root itself."""
    if not root:
        return path or None
    if path.casefold().startswith(root.casefold() + "/"):
        return path[len(root) + 1 :]
    return None


class _Paths:
    """Drive paths of item ids ("" the drive root), for one batch."""

    def __init__(self, graph: Graph, items: list[Json], known: dict[str, str]) -> None:
        self.graph = graph
        self.batch = {item["id"]: item for item in items}
        self.known = known
        self.found: dict[str, str] = {}
        self._misses: set[str] = set()

    def of(self, item_id: str | None) -> str | None:
        if not item_id or item_id in self._misses:
            return None
        if item_id in self.found:
            return self.found[item_id]
        item: Any = self.batch.get(item_id)
        if item is None and item_id in self.known:
            return self.known[item_id]
        if item is None:
            try:
                item = self.graph.json("GET", f"/items/{item_id}")
            except GraphError as exc:
                if exc.status != 404:
                    raise
                item = None
        path = self._path(item) if item is not None else None
        if path is None:
            self._misses.add(item_id)
        else:
            self.found[item_id] = path
        return path

    def _path(self, item: Json) -> str | None:
        if "root" in item:
            return ""
        name = item.get("name")
        ref = item.get("parentReference") or {}
        if not name:
            return self.known.get(item["id"])  # a deleted item without its name
        if "path" in ref:  # only outside delta: "/drive/root:/a/b"
            parent: str | None = str(ref["path"]).partition("root:")[2].strip("/")
        else:
            parent = self.of(ref.get("id"))
        if parent is None:
            return None
        return f"{parent}/{name}" if parent else str(name)
