"""Paths ↔ file IDs. Drive knows files by ID and lets one folder hold two files of the same
name; cdir knows paths. `Tree` walks names down from the root folder, keeping the IDs of the
folders it met (files are looked up each time, so a duplicate is always seen), and forgets
them when a folder is moved or deleted — by us, or as the change feed reports."""

from __future__ import annotations

import logging
import threading
import unicodedata
from collections.abc import Callable, Iterator

from cdir.errors import Conflict, NotADirectory, NotFound, Unsupported
from cdir.providers.gdrive.api import FOLDER, DriveAPI, Item
from cdir.providers.gdrive.errors import DriveError

log = logging.getLogger(__name__)

GOOGLE_APPS = "application/vnd.google-apps."  # Docs, Sheets, shortcuts…: no bytes to copy


def is_folder(item: Item) -> bool:
    return bool(item.get("mimeType") == FOLDER)


def is_native(item: Item) -> bool:
    """A Google Docs/Sheets/Slides file or a shortcut: no md5, not downloadable as is."""
    mime = str(item.get("mimeType", ""))
    return mime.startswith(GOOGLE_APPS) and mime != FOLDER


def quote(name: str) -> str:
    """A name as a string literal of a files.list query."""
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def duplicate(what: str, items: list[Item]) -> Conflict:
    ids = ", ".join(str(i["id"]) for i in items)
    return Conflict(
        f"{what}: Drive holds {len(items)} entries of this name (IDs {ids}); "
        "rename or remove all but one"
    )


class Tree:
    """`root` is the provider root as folder names below `base` (the ID "root" of My Drive,
    or a shared drive's ID). `what(rel)` names a path in messages."""

    def __init__(self, api: DriveAPI, base: str, root: list[str], what: Callable[[str], str]):
        self.api = api
        self.base = base
        self.root = root
        self.what = what
        self._folders: dict[str, str] = {}  # provider path → folder ID ("" = the root)
        self._paths: dict[str, str] = {}  # ID → provider path, of whatever was seen
        self._outside: set[str] = set()  # IDs of folders found to be outside the root
        self._lock = threading.Lock()
        self._make_locks: dict[str, threading.Lock] = {}
        self._base_id: str | None = None

    # --- the cache --------------------------------------------------------------------------
    def remember(self, rel: str, item: Item) -> None:
        with self._lock:
            self._paths[str(item["id"])] = rel
            if is_folder(item):
                self._folders[rel] = str(item["id"])

    def forget(self, rel: str) -> None:
        """Drop `rel` and everything below it (it moved or went away)."""

        def inside(path: str) -> bool:
            return not rel or path == rel or path.startswith(rel + "/")

        with self._lock:
            self._folders = {p: i for p, i in self._folders.items() if not inside(p)}
            self._paths = {i: p for i, p in self._paths.items() if not inside(p)}

    def path_of_id(self, file_id: str) -> str | None:
        with self._lock:
            return self._paths.get(file_id)

    def folder_id(self, rel: str) -> str | None:
        with self._lock:
            return self._folders.get(rel)

    def base_id(self) -> str:
        """The real ID of My Drive's root or the shared drive (parents name it so)."""
        if self._base_id is None:
            self._base_id = str(self.api.file(self.base)["id"])
        return self._base_id

    # --- walking names ----------------------------------------------------------------------
    def children(self, folder: str, name: str | None = None) -> Iterator[Item]:
        """The items of a folder (named `name` only, when given), every page."""
        query = f"{quote(folder)} in parents"
        if name is not None:
            query += f" and name = {quote(name)}"
        try:
            for item in self.api.files(query):
                if name is None or unicodedata.normalize("NFC", item["name"]) == name:
                    yield item
        except DriveError as exc:
            if exc.status == 404:  # a folder we knew was removed by someone else
                self.forget("")
            raise

    def child(self, folder: str, name: str, what: str) -> Item | None:
        """The one item called `name` in a folder; None if none; Conflict if several."""
        found = list(self.children(folder, name))
        if len(found) > 1:
            raise duplicate(what, found)
        return found[0] if found else None

    def root_id(self) -> str | None:
        """The ID of the provider root, None while it does not exist."""
        got = self.folder_id("")
        if got is not None:
            return got
        folder = self.base_id()
        for i, name in enumerate(self.root):
            item = self.child(folder, name, f"root {'/'.join(self.root[: i + 1])}")
            if item is None:
                return None
            if not is_folder(item):
                raise NotADirectory(f"{self.what('')}: the root is not a folder")
            folder = str(item["id"])
        with self._lock:
            self._folders[""] = folder
            self._paths[folder] = ""
        return folder

    def lookup(self, rel: str) -> Item:
        """The item at `rel` (a file or a folder); NotFound, NotADirectory or Conflict."""
        what = self.what(rel)
        root = self.root_id()
        if root is None:
            raise NotFound(f"{what}: not found (the root folder does not exist)")
        if not rel:
            return {"id": root, "name": "", "mimeType": FOLDER}
        parent, _, name = rel.rpartition("/")
        folder = self.folder_id(parent) if parent else root
        if folder is None:
            up = self.lookup(parent)
            if not is_folder(up):
                raise NotADirectory(f"{self.what(parent)}: not a directory")
            folder = str(up["id"])
        item = self.child(folder, name, what)
        if item is None:
            raise NotFound(f"{what}: not found")
        self.remember(rel, item)
        return item

    def file(self, rel: str) -> Item:
        """`lookup` for something to read: a Google Docs file is refused with why."""
        item = self.lookup(rel)
        if is_native(item):
            raise Unsupported(
                f"{self.what(rel)}: a Google Docs file ({item['mimeType']}) has no bytes to copy"
            )
        return item

    def make_folders(self, rel: str) -> str:
        """The ID of folder `rel`, made with its missing parents (never the root: a write
        below a root that is gone is NotFound)."""
        known = self.folder_id(rel)
        if known is not None:
            return known
        root = self.root_id()
        if root is None:
            raise NotFound(f"{self.what(rel)}: the root folder does not exist")
        if not rel:
            return root
        parent, _, name = rel.rpartition("/")
        folder = self.make_folders(parent)
        with self._make_lock(rel):  # threads of this process make each folder once
            known = self.folder_id(rel)
            if known is not None:
                return known
            item = self.child(folder, name, self.what(rel))
            if item is None:
                item = self.api.create({"name": name, "mimeType": FOLDER, "parents": [folder]})
            elif not is_folder(item):
                raise NotADirectory(f"{self.what(rel)}: not a directory")
            self.remember(rel, item)
            return str(item["id"])

    def make_root(self) -> None:
        folder = self.base_id()
        for name in self.root:
            item = self.child(folder, name, self.what(""))
            if item is None:
                item = self.api.create({"name": name, "mimeType": FOLDER, "parents": [folder]})
            elif not is_folder(item):
                raise NotADirectory(f"{self.what('')}: the root is not a folder")
            folder = str(item["id"])

    def _make_lock(self, rel: str) -> threading.Lock:
        with self._lock:
            return self._make_locks.setdefault(rel, threading.Lock())

    # --- from IDs back to paths (the change feed) -------------------------------------------
    def path_of(self, item: Item) -> tuple[str | None, bool]:
        """(provider path, whether it is in the trash) of an item, walking its parents up to
        the root; path None when it is outside the root. Trashed: it or a folder above it.
        Folders found outside are remembered, so changes elsewhere in the drive cost no walk."""
        root = self.root_id()
        with self._lock:
            self._outside.discard(str(item["id"]))  # it changed: it may have moved in
        names: list[str] = []
        walked: list[str] = []
        trashed = False
        for _ in range(256):  # deeper than any real tree: a cycle would stop here
            trashed = trashed or bool(item.get("trashed"))
            file_id = str(item["id"])
            if file_id == root:
                return "/".join(reversed(names)), trashed
            known = self.path_of_id(file_id) if names else None  # itself: it may have moved
            if known is not None:
                return "/".join([*([known] if known else []), *reversed(names)]), trashed
            if is_folder(item):
                walked.append(file_id)
            parents = item.get("parents") or []
            if not parents or parents[0] in self._outside:
                break
            names.append(unicodedata.normalize("NFC", item["name"]))
            item = self.api.file(str(parents[0]))
        with self._lock:
            self._outside.update(walked)
        return None, trashed
