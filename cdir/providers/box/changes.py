"""The change feed: Box's user event stream (GET /events, stream_type=changes) as paths.

Events name items by id, with the item as it is now in `source`: its name and the folders
above it (`path_collection`, from "All Files" down), so where an item now is costs no
request. Where it *was* (a move, a rename, the trash) comes from the tree of ids this
provider has seen; an item we never saw that leaves or is trashed cannot be placed, so the
batch says `reset` and the caller lists everything, which is always right.
"""

from __future__ import annotations

from typing import Any

from box_sdk_gen.managers.events import GetEventsStreamType

from cdir.providers.base import ChangeBatch
from cdir.providers.box.tree import Node, Tree, join, key

PAGE = 500  # events per request (Box's maximum)
# Events that leave an item at its source's place (new, new content, moved, renamed, back).
PLACED = frozenset(
    {"ITEM_CREATE", "ITEM_UPLOAD", "ITEM_COPY", "ITEM_MOVE", "ITEM_RENAME",
     "ITEM_UNDELETE_VIA_TRASH", "ITEM_MAKE_CURRENT_VERSION"}
)  # fmt: skip
GONE = frozenset({"ITEM_TRASH", "ITEM_DELETE"})


def changes(client: Any, cursor: str | None, tree: Tree, root: str) -> ChangeBatch:
    events = client.events
    if cursor is None:
        now = events.get_events(stream_type=GetEventsStreamType.CHANGES, stream_position="now")
        return ChangeBatch(cursor=str(now.raw_data["next_stream_position"]))
    state: dict[str, bool] = {}  # provider path → still there; the last event decides
    reset = False
    while True:
        page = events.get_events(
            stream_type=GetEventsStreamType.CHANGES, stream_position=cursor, limit=PAGE
        ).raw_data
        cursor = str(page["next_stream_position"])
        entries = page.get("entries") or []
        for event in entries:
            reset |= not _apply(event, tree, root, state)
        if not entries:
            break
    changed = tuple(p for p, there in state.items() if there)
    deleted = tuple(p for p, there in state.items() if not there)
    return ChangeBatch(cursor=cursor, changed=changed, deleted=deleted, reset=reset)


def _apply(event: dict[str, Any], tree: Tree, root: str, state: dict[str, bool]) -> bool:
    """Record one event in `state` and the tree; False when it cannot be placed."""
    kind, source = event.get("event_type"), event.get("source") or {}
    if kind not in PLACED | GONE or source.get("type") not in ("file", "folder"):
        return True  # comments, locks, collaborations…: no content changed
    item_id = str(source["id"])
    was = tree.path_of(item_id)
    if was is not None:
        _note(was, root, state, False)
        tree.forget(was)
    if kind in GONE:
        return was is not None
    now = _path(source)
    if now is None:
        return False
    tree.add(Node(item_id, "dir" if source["type"] == "folder" else "file", now))
    _note(now, root, state, True)
    return True


def _path(source: dict[str, Any]) -> str | None:
    """The Box path of an event's item: the folders above it (without "All Files") and its
    name; None when the source does not say."""
    folders = (source.get("path_collection") or {}).get("entries")
    if folders is None or "name" not in source:
        return None
    path = ""
    for folder in folders[1:]:  # the first is the root, id "0"
        path = join(path, folder["name"])
    return join(path, source["name"])


def _note(box_path: str, root: str, state: dict[str, bool], there: bool) -> None:
    """`box_path` as a provider path in `state`, when it is below the root."""
    if not root:
        rel = box_path
    elif key(box_path).startswith(key(root) + "/"):
        rel = box_path[len(root) + 1 :]
    else:
        return
    state.pop(rel, None)  # re-inserted: the order of the batch follows the last event
    state[rel] = there
