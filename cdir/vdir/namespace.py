"""The namespace: cd, ls, stat, search, status, mkdir, prefer — answered by the catalog
alone (providers are never listed)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from cdir.catalog import EntryKind, queries, writes
from cdir.catalog.models import as_utc
from cdir.catalog.queries import like_escape, path_of
from cdir.errors import AlreadyExists, NotADirectory, NotFound, UsageError
from cdir.schema import EntryOut, ReplicaOut
from cdir.schema.paths import split
from cdir.vdir import state
from cdir.vdir.base import ROOT, Core


@dataclass
class Listing:
    entries: list[EntryOut]
    next_cursor: str | None  # pass back as `after` for the next page


class NamespaceOps(Core):
    def cd(self, text: str) -> str:
        target = self.path(text)
        e = self.entry_or_none(target)
        if e is None:
            raise NotFound(f"no such directory: {target}")
        if e.kind != EntryKind.DIR:
            raise NotADirectory(f"not a directory: {target}")
        state.set_current_dir(self.settings, target)
        return target

    def stat(self, text: str) -> EntryOut:
        path = self.path(text)
        if path == "/":
            return entry_out(ROOT, [], {})
        with self.db.transaction() as s:  # one transaction: the API's most frequent read
            e = queries.entry_at(s, path)
            if e is None:
                raise NotFound(f"no such file or directory: {path}")
            reps = queries.replicas_named(s, [e.id])
            names = self._names(s, [e])
        return entry_out(e, reps.get(e.id, []), names)

    def entry_by_id(self, entry_id: int) -> EntryOut:
        """The entry whose stable id is `entry_id`, with its replicas."""
        with self.db.transaction() as s:
            e = queries.entry_with_id(s, entry_id)
            if e is None:
                raise NotFound(f"no entry with id {entry_id}")
            reps = queries.replicas_named(s, [e.id])
            names = self._names(s, [e])
        return entry_out(e, reps.get(e.id, []), names)

    def ls(
        self,
        text: str = ".",
        *,
        recursive: bool = False,
        limit: int | None = None,
        after: str | None = None,
        replicas: bool = False,
    ) -> Listing:
        """Children of a directory (the entry itself for a file), ordered by path, paged by
        keyset: `after` is the last path of the previous page."""
        path = self.path(text)
        e = self.entry(path)
        with self.db.transaction() as s:
            rows = (
                [e]
                if e.kind == EntryKind.FILE
                else queries.children(
                    s, path, recursive=recursive, after=after, limit=limit + 1 if limit else None
                )
            )
            more = bool(limit) and len(rows) > (limit or 0)
            rows = rows[:limit] if limit else rows
            reps = queries.replicas_named(s, [r.id for r in rows]) if replicas else {}
            names = self._names(s, rows) if not replicas else {}
        out = [entry_out(r, reps.get(r.id, []) if replicas else None, names) for r in rows]
        return Listing(out, path_of(rows[-1]) if more and rows else None)

    def search(
        self, pattern: str, under: str = "/", *, recursive: bool = False, limit: int | None = None
    ) -> list[EntryOut]:
        """Glob over basenames (or over paths below `under` when the pattern has a '/')."""
        base = self.path(under)
        self.entry(base)
        if "\x00" in pattern or not pattern:
            raise UsageError("empty search pattern")
        by_path = "/" in pattern
        like = None if by_path else glob_to_like(pattern)
        hits: list[Any] = []
        with self.db.transaction() as s:
            for r in queries.matching(s, base, recursive=recursive, basename_like=like):
                if path_match(path_of(r), pattern) if by_path else fnmatchcase(r.basename, pattern):
                    hits.append(r)
                    if limit and len(hits) >= limit:
                        break
            names = self._names(s, hits)
        return [entry_out(r, None, names) for r in hits]

    def status(self, text: str = ".", *, recursive: bool = False) -> list[EntryOut]:
        """Every file (below) `text` with each replica and its state — removed files too
        while a replica is left (a delete that failed; `deleted` is set)."""
        path = self.path(text)
        e = self.entry(path)
        with self.db.transaction() as s:
            rows = [e]
            if e.kind != EntryKind.FILE:  # and files removed whose delete is unfinished
                rows = queries.files_in(s, path, recursive=recursive)
                rows += queries.pending_deletes(s, path, recursive=recursive)
            reps = queries.replicas_named(s, [r.id for r in rows])
        return [entry_out(r, reps.get(r.id, [])) for r in rows]

    def mkdir(self, text: str, *, parents: bool = False) -> EntryOut:
        path = self.path(text)
        existing = self.entry_or_none(path)
        if existing is not None:
            if parents and existing.kind == EntryKind.DIR:
                return entry_out(existing, None)
            what = "directory" if existing.kind == EntryKind.DIR else "file"
            raise AlreadyExists(f"{what} exists: {path}")
        parent = split(path)[0]
        if not parents:
            p = self.entry_or_none(parent)
            if p is None:
                raise NotFound(f"no such directory: {parent} (use -p to create parents)")
            if p.kind != EntryKind.DIR:
                raise NotADirectory(f"not a directory: {parent}")

        def work(s: Any) -> Any:
            writes.ensure_dirs(s, [path])
            self.event(s, "mkdir", path)
            return queries.entry_at(s, path)

        return entry_out(self.db.write(work), None)

    def prefer(self, text: str, provider: str | None) -> EntryOut:
        path = self.path(text)
        if path == "/":
            raise UsageError(
                "set a preferred provider on a directory below / (the root has no entry)"
            )
        pid = self.provider_row(provider).id if provider else None
        with self.db.transaction(write=True) as s:
            if not writes.set_preferred(s, path, pid):
                raise NotFound(f"no such file or directory: {path}")
            self.event(s, "prefer", path, provider)
            e = queries.entry_at(s, path)
        return entry_out(e, None, {pid: provider} if pid and provider else {})

    def _names(self, s: Any, rows: Sequence[Any]) -> dict[int, str]:
        """Provider names for the preferred providers of `rows` (none asked when none set)."""
        if not any(r.preferred_provider_id for r in rows):
            return {}
        return {i: p.name for i, p in queries.providers_by_id(s).items()}


def entry_out(e: Any, reps: Sequence[Any] | None, names: dict[int, str] | None = None) -> EntryOut:
    """An entry row and its replica rows (each with `pname`) as the shared output shape;
    model_construct: the catalog's values need no validation."""
    pref = None
    if e.preferred_provider_id is not None:
        pref = (names or {}).get(e.preferred_provider_id) or next(
            (r.pname for r in reps or [] if r.provider_id == e.preferred_provider_id), None
        )
    return EntryOut.model_construct(
        id=e.id or 0,
        path=path_of(e),
        kind=e.kind,
        size=e.size,
        mtime=ns_to_dt(e.mtime_ns),
        hash=e.hash,
        generation=e.generation,
        preferred_provider=pref,
        replicas=None if reps is None else [replica_out(r) for r in reps],
        deleted=e.deleted_at is not None,
    )


def replica_out(r: Any) -> ReplicaOut:
    return ReplicaOut.model_construct(
        provider=r.pname,
        remote_path=r.remote_path,
        state=r.state,
        generation=r.generation,
        size=r.size,
        mtime=ns_to_dt(r.mtime_ns),
        fingerprint=r.fingerprint,
        last_error=r.last_error,
        last_checked=as_utc(r.last_checked) if getattr(r, "last_checked", None) else None,
    )


def ns_to_dt(ns: int | None) -> datetime | None:
    return None if ns is None else datetime.fromtimestamp(ns / 1e9, UTC)


def glob_to_like(pattern: str) -> str:
    """A LIKE pattern matching a superset of the glob (fnmatchcase then decides)."""
    like = "".join("%" if c == "*" else "_" if c in "?[" else like_escape(c) for c in pattern)
    return re.sub(r"_[^\]]*\]", "_", like) if "[" in pattern else like


def path_match(path: str, pattern: str) -> bool:
    """Glob on whole segments: `*` never crosses a '/'; a relative pattern matches the
    path's last segments, an absolute one the whole path."""
    segs, pats = path.strip("/").split("/"), pattern.strip("/").split("/")
    if (pattern.startswith("/") and len(segs) != len(pats)) or len(pats) > len(segs):
        return False
    return all(fnmatchcase(a, b) for a, b in zip(segs[-len(pats) :], pats, strict=True))
