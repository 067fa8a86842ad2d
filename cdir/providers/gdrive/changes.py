"""The change feed: changes.getStartPageToken and changes.list, mapped to provider paths."""

from __future__ import annotations

from cdir.providers.base import ChangeBatch
from cdir.providers.gdrive.api import FIELDS, DriveAPI, Item
from cdir.providers.gdrive.errors import DriveError
from cdir.providers.gdrive.tree import Tree, is_native


def changes(api: DriveAPI, tree: Tree, cursor: str | None) -> ChangeBatch:
    """`Provider.changes`: None gives the current cursor; a cursor Drive no longer knows
    gives a new one with `reset` (list everything)."""
    if cursor is None:
        return ChangeBatch(start_token(api))
    try:
        return since(api, tree, cursor)
    except DriveError as exc:
        if exc.status not in (400, 404, 410):
            raise
        return ChangeBatch(start_token(api), reset=True)


def start_token(api: DriveAPI) -> str:
    return str(api.get("changes/startPageToken", **api.scope())["startPageToken"])


def since(api: DriveAPI, tree: Tree, cursor: str) -> ChangeBatch:
    """Every page from `cursor` on: the paths changed and deleted, and the cursor after them
    (the last page's newStartPageToken). A path deleted and then made again is changed."""
    changed: dict[str, None] = {}
    deleted: dict[str, None] = {}
    token = cursor
    while True:
        page = api.get(
            "changes",
            pageToken=token,
            pageSize=api.s.page_size,
            includeRemoved="true",
            spaces="drive",
            fields=f"nextPageToken,newStartPageToken,changes(fileId,removed,file({FIELDS}))",
            **(api.scope() or {"restrictToMyDrive": "true"}),
        )
        for change in page.get("changes", []):
            _note(tree, change, changed, deleted)
        if page.get("newStartPageToken"):
            new = str(page["newStartPageToken"])
            break
        token = str(page["nextPageToken"])
    gone = tuple(p for p in deleted if p not in changed)
    return ChangeBatch(new, tuple(changed), gone)


def _note(tree: Tree, change: Item, changed: dict[str, None], deleted: dict[str, None]) -> None:
    """One change: its path (walking parents) as changed, or as deleted when it is in the
    trash; the path this process knew it by as deleted when that differs (moved away).
    A file removed for good, or moved, that this process never listed is reported by its
    new path only: Drive does not say where it was."""
    file_id = str(change.get("fileId", ""))
    was = tree.path_of_id(file_id)
    item = change.get("file")
    now, trashed = None, True
    if not change.get("removed") and item is not None and not is_native(item):
        now, trashed = tree.path_of(item)
    if was is not None and was != now:
        deleted[was] = None
        tree.forget(was)
    if now is None or item is None or now == "":
        return
    if trashed:
        deleted[now] = None
        tree.forget(now)
    else:
        tree.remember(now, item)
        changed[now] = None
