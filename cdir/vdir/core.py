"""The virtual directory: the one layer that writes the catalog and calls providers.

Front ends (CLI, API, daemon) call these methods and nothing below them.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlalchemy import select as sa_select  # Core tables (plain rows)
from sqlmodel import Session, col, select

from cdir.catalog import Database, Entry, Event, Provider, Replica
from cdir.catalog.models import table, utcnow
from cdir.config import Settings
from cdir.errors import (
    AlreadyExists,
    CdirError,
    InvalidPath,
    NotADirectory,
    NotFound,
    UsageError,
)
from cdir.providers import Provider as Backend
from cdir.providers import load_provider_class
from cdir.schema import EntryOut, ProviderOut, ReplicaOut
from cdir.schema.paths import is_within, normalize, split

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BATCH = 500  # catalog rows per transaction


ENTRY, REPLICA, PROVIDER = table(Entry), table(Replica), table(Provider)


def path_of(e: Any) -> str:
    """The virtual path of an Entry or of a plain entry row."""
    return f"{e.dirname.rstrip('/')}/{e.basename}" if e.basename else e.dirname


def ns_to_dt(ns: int | None) -> datetime | None:
    return None if ns is None else datetime.fromtimestamp(ns / 1e9, UTC)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def subtree_clause(path: str) -> Any:
    """Entries strictly below `path` (index-friendly prefix match on dirname)."""
    if path == "/":
        return col(Entry.dirname) != ""  # everything
    return or_(
        col(Entry.dirname) == path,
        col(Entry.dirname).like(like_escape(path) + "/%", escape="\\"),
    )


@dataclass
class Listing:
    entries: list[EntryOut]
    next_cursor: str | None  # pass back as `after` for the next page


class Namespace:
    """Catalog reads, provider registry and namespace writes; transfers are in vdir.ops."""

    def __init__(self, settings: Settings | None = None, *, interactive: bool = False) -> None:
        self.settings = settings or Settings()
        self.db = Database(self.settings.catalog)
        self.interactive = interactive
        self._vault: Any = None
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        for b in self._backends.values():
            b.close()
        self._backends.clear()
        self.db.close()

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- vault ------------------------------------------------------------------------------
    @property
    def vault(self) -> Any:
        if self._vault is None:
            from cdir.vault import Vault, passphrase_source

            path = self.settings.vault
            self._vault = Vault(path, passphrase_source(path, interactive=self.interactive))
        return self._vault

    def remember_passphrase(self, phrase: str) -> None:
        """Check `phrase` opens the vault, then keep it in the OS keyring."""
        import keyring

        from cdir.vault import Vault

        Vault(self.settings.vault, phrase).refs()  # a wrong one fails here, nothing stored
        try:
            keyring.set_password("cdir", str(self.settings.vault), phrase)
        except Exception as exc:  # no backend, locked, headless…: one line, no traceback
            raise CdirError(f"no usable OS keyring: {type(exc).__name__}") from None

    # --- current directory ------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.settings.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    @property
    def cwd(self) -> str:
        cwd = self._state().get("cwd", {}).get(self.settings.catalog, "/")
        return str(cwd)

    def path(self, text: str) -> str:
        """Validate and absolutise a user's virtual path against the current directory."""
        return normalize(text, self.cwd)

    def cd(self, text: str) -> str:
        target = self.path(text)
        if target != "/":
            e = self._entry_or_none(target)
            if e is None:
                raise NotFound(f"no such directory: {target}")
            if e.kind != "dir":
                raise NotADirectory(f"not a directory: {target}")
        state = self._state()
        state.setdefault("cwd", {})[self.settings.catalog] = target
        self.settings.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.settings.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.settings.state_file)
        return target

    # --- providers ------------------------------------------------------------------------
    def add_provider(
        self,
        name: str,
        kind: str,
        root: str,
        options: dict[str, str],
        *,
        priority: int = 0,
        location: str | None = None,
        check: bool = True,
    ) -> ProviderOut:
        if not NAME_RE.match(name):
            raise UsageError(
                f"invalid provider name {name!r}: use letters, digits, '.', '_' or '-' (max 64)"
            )
        cls = load_provider_class(kind)
        specs = {o.name: o for o in cls.options}
        unknown = sorted(set(options) - set(specs))
        if unknown:
            known = ", ".join(sorted(k for k in specs if k != "root")) or "none"
            raise UsageError(f"unknown option(s) for {kind}: {', '.join(unknown)} (known: {known})")
        missing = [
            o.name for o in cls.options if o.required and o.name != "root" and o.name not in options
        ]
        if missing:
            raise UsageError(f"provider kind {kind} needs --option {missing[0]}=…")
        secrets = {k: v for k, v in options.items() if specs[k].secret}
        plain: dict[str, Any] = {k: v for k, v in options.items() if not specs[k].secret}
        if kind == "local":
            root = str(Path(root).expanduser().absolute())
            Path(root).mkdir(parents=True, exist_ok=True)
        with self.db.session() as s:
            if s.exec(select(Provider).where(Provider.name == name)).first():
                raise AlreadyExists(f"provider {name!r} already exists")
        backend = cls(name, root, plain, secrets)
        # what the provider made of its inputs is what gets stored (a password found inside a
        # URL, say, has moved to its secrets)
        plain, secrets = dict(backend.opts), dict(backend.secrets)
        pinned = backend.pin() if check else {}
        if pinned:
            backend.close()
            plain.update(pinned)
            backend = cls(name, root, plain, secrets)
        if check:
            try:
                backend.check()
            finally:
                backend.close()
        if secrets:
            self.vault.set(name, secrets)
        with self.db.session() as s:
            row = Provider(
                name=name,
                kind=kind,
                root=root,
                options=plain,
                secret_ref=name if secrets else None,
                priority=priority,
                location=location,
            )
            s.add(row)
            self._event(s, "provider.add", "/", name, {"kind": kind})
        return self._provider_out(row, secrets)

    def providers(self) -> list[ProviderOut]:
        with self.db.session() as s:
            rows = s.exec(select(Provider).order_by(col(Provider.name))).all()
        return [self._provider_out(r) for r in rows]

    def provider(self, name: str) -> ProviderOut:
        return self._provider_out(self._provider_row(name))

    def remove_provider(self, name: str, *, force: bool = False) -> int:
        """Forget a provider (its files stay where they are). Returns replicas forgotten."""
        row = self._provider_row(name)
        with self.db.session() as s:
            n = s.exec(
                select(func.count()).select_from(Replica).where(Replica.provider_id == row.id)
            ).one()
            if n and not force:
                raise UsageError(
                    f"provider {name!r} holds {n} replica(s); use --force to forget them "
                    "(the files stay on the provider)"
                )
            s.exec(delete(Replica).where(col(Replica.provider_id) == row.id))
            s.exec(
                update(Entry)
                .where(col(Entry.preferred_provider_id) == row.id)
                .values(preferred_provider_id=None)
            )
            s.exec(delete(Provider).where(col(Provider.id) == row.id))
            self._event(s, "provider.remove", "/", name, {"replicas": n})
        if row.secret_ref:
            self.vault.delete(row.secret_ref)
        with self._lock:
            b = self._backends.pop(name, None)
        if b:
            b.close()
        return int(n)

    def test_provider(self, name: str) -> float:
        """Reach the provider; returns the round-trip time in seconds."""
        import time

        backend = self.backend(name)
        t0 = time.perf_counter()
        backend.check()
        return time.perf_counter() - t0

    def _provider_row(self, name: str) -> Provider:
        with self.db.session() as s:
            row = s.exec(select(Provider).where(Provider.name == name)).first()
        if row is None:
            raise NotFound(f"unknown provider {name!r} (see `cdir provider list`)")
        return row

    def _provider_out(self, row: Provider, secrets: dict[str, str] | None = None) -> ProviderOut:
        from cdir.vault import mask

        names: dict[str, str] = {}
        if row.secret_ref:
            try:
                stored = secrets if secrets is not None else self.vault.get(row.secret_ref)
                names = {k: mask(v) for k, v in stored.items()}
            except CdirError:
                names = {"(vault locked)": "****"}
        return ProviderOut(
            name=row.name,
            kind=row.kind,
            root=row.root,
            options=dict(row.options),
            secrets=names,
            priority=row.priority,
            location=row.location,
            enabled=row.enabled,
        )

    def backend(self, name: str) -> Backend:
        """The provider object for `name`, opened once per process (shared by threads)."""
        with self._lock:
            b = self._backends.get(name)
        if b is not None:
            return b
        row = self._provider_row(name)
        secrets = self.vault.get(row.secret_ref) if row.secret_ref else {}
        b = load_provider_class(row.kind)(row.name, row.root, row.options, secrets)
        with self._lock:
            return self._backends.setdefault(name, b)

    def resolve_providers(self, names: Sequence[str] | None) -> list[Provider]:
        """Provider rows by name (all enabled ones when `names` is empty)."""
        with self.db.session() as s:
            rows = list(
                s.exec(
                    select(Provider).order_by(col(Provider.priority).desc(), col(Provider.name))
                ).all()
            )
        if not names:
            chosen = [r for r in rows if r.enabled]
            if not chosen:
                raise UsageError(
                    "no provider registered: add one with "
                    "`cdir provider add NAME --kind local --root DIR`"
                )
            return chosen
        by_name = {r.name: r for r in rows}
        out = []
        for n in dict.fromkeys(names):
            if n not in by_name:
                raise NotFound(f"unknown provider {n!r} (see `cdir provider list`)")
            out.append(by_name[n])
        return out

    # --- catalog reads ----------------------------------------------------------------------
    def _entry_or_none(self, path: str, s: Session | None = None) -> Entry | None:
        if path == "/":
            return Entry(id=0, dirname="/", basename="", kind="dir")
        d, b = split(path)
        q = select(Entry).where(
            Entry.dirname == d, Entry.basename == b, col(Entry.deleted_at).is_(None)
        )
        if s is not None:
            return s.exec(q).first()
        with self.db.session() as s2:
            return s2.exec(q).first()

    def entry(self, path: str) -> Entry:
        e = self._entry_or_none(path)
        if e is None:
            raise NotFound(f"no such file or directory: {path}")
        return e

    def stat(self, text: str) -> EntryOut:
        path = self.path(text)
        e = self.entry(path)
        with self.db.session() as s:
            names = self._provider_names(s)
        return self._entry_out(e, self._replicas([e]).get(e.id or 0, []) if e.id else [], names)

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
        if e.kind == "file":
            return Listing(
                [self._entry_out(e, self._replicas([e]).get(e.id or 0) if replicas else None)], None
            )
        with self.db.session() as s:
            q = sa_select(ENTRY).where(col(Entry.deleted_at).is_(None))
            q = q.where(subtree_clause(path)) if recursive else q.where(ENTRY.c.dirname == path)
            if after:
                d, b = split(after)
                q = q.where(
                    or_(
                        col(Entry.dirname) > d,
                        (col(Entry.dirname) == d) & (col(Entry.basename) > b),
                    )
                )
            q = q.order_by(col(Entry.dirname), col(Entry.basename))
            if limit:
                q = q.limit(limit + 1)
            rows = list(s.execute(q).all())
            more = bool(limit) and len(rows) > (limit or 0)
            rows = rows[:limit] if limit else rows
            reps = self._replicas(rows, s) if replicas else {}
            names = self._provider_names(s) if not replicas else None
        out = [self._entry_out(r, reps.get(r.id or 0) if replicas else None, names) for r in rows]
        return Listing(out, path_of(rows[-1]) if more and rows else None)

    def search(
        self, pattern: str, under: str = "/", *, recursive: bool = False, limit: int | None = None
    ) -> list[EntryOut]:
        """Glob over basenames (or over paths below `under` when the pattern has a '/'),
        answered by the catalog alone — providers are never listed."""
        base = self.path(under)
        self.entry(base)
        if "\x00" in pattern or not pattern:
            raise UsageError("empty search pattern")
        by_path = "/" in pattern
        # the LIKE prefilter is a superset of the glob; fnmatchcase decides
        like = "".join("%" if c == "*" else "_" if c in "?[" else like_escape(c) for c in pattern)
        like = re.sub(r"_[^\]]*\]", "_", like) if "[" in pattern else like
        with self.db.session() as s:
            q = sa_select(ENTRY).where(col(Entry.deleted_at).is_(None))
            q = q.where(subtree_clause(base)) if recursive else q.where(ENTRY.c.dirname == base)
            if not by_path:
                q = q.where(col(Entry.basename).like(like, escape="\\"))
            q = q.order_by(col(Entry.dirname), col(Entry.basename))
            names = self._provider_names(s)
            out: list[EntryOut] = []
            for r in s.execute(q.execution_options(yield_per=2000)):
                if (by_path and _path_match(path_of(r), pattern)) or (
                    not by_path and fnmatchcase(r.basename, pattern)
                ):
                    out.append(self._entry_out(r, None, names))
                    if limit and len(out) >= limit:
                        break
        return out

    def status(self, text: str = ".", *, recursive: bool = False) -> list[EntryOut]:
        """Every file (below) `text` with each replica and its state."""
        path = self.path(text)
        e = self.entry(path)
        with self.db.session() as s:
            rows: list[Any] = [e]
            if e.kind != "file":
                q = sa_select(ENTRY).where(col(Entry.deleted_at).is_(None), ENTRY.c.kind == "file")
                q = q.where(subtree_clause(path)) if recursive else q.where(ENTRY.c.dirname == path)
                rows = list(s.execute(q.order_by(col(Entry.dirname), col(Entry.basename))).all())
            reps = self._replicas(rows, s)
            names = self._provider_names(s)
        return [self._entry_out(r, reps.get(r.id or 0, []), names) for r in rows]

    def _provider_names(self, s: Session) -> dict[int, str]:
        return {i: p.name for i, p in self.providers_by_id(s).items()}

    def _replicas(
        self, entries: Sequence[Any], s: Session | None = None
    ) -> dict[int, list[tuple[Any, str]]]:
        ids = [e.id for e in entries if e.id]
        out: dict[int, list[tuple[Any, str]]] = {}
        if not ids:
            return out

        def q(sess: Session) -> None:
            for i in range(0, len(ids), 900):
                rows = sess.execute(
                    sa_select(REPLICA, col(Provider.name).label("pname"))
                    .join(PROVIDER, col(Provider.id) == col(Replica.provider_id))
                    .where(col(Replica.entry_id).in_(ids[i : i + 900]))
                    .order_by(col(Provider.name))
                ).all()
                for rep in rows:  # plain rows: no ORM objects on read paths
                    out.setdefault(rep.entry_id, []).append((rep, rep.pname))

        if s is not None:
            q(s)
        else:
            with self.db.session() as sess:
                q(sess)
        return out

    def _entry_out(
        self,
        e: Any,
        reps: list[tuple[Any, str]] | None,
        names: dict[int, str] | None = None,
    ) -> EntryOut:
        """An Entry (ORM object or plain row) and its replicas as the shared output shape;
        model_construct: the catalog's values need no validation."""
        pref = None
        if e.preferred_provider_id is not None:
            pref = (names or {}).get(e.preferred_provider_id)
            if pref is None:
                pref = next(
                    (n for r, n in reps or [] if r.provider_id == e.preferred_provider_id), None
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
            replicas=None
            if reps is None
            else [
                ReplicaOut.model_construct(
                    provider=n,
                    remote_path=r.remote_path,
                    state=r.state,
                    generation=r.generation,
                    size=r.size,
                    mtime=ns_to_dt(r.mtime_ns),
                    fingerprint=r.fingerprint,
                    last_error=r.last_error,
                )
                for r, n in reps
            ],
        )

    # --- namespace writes -------------------------------------------------------------------
    def mkdir(self, text: str, *, parents: bool = False) -> EntryOut:
        path = self.path(text)
        if path == "/":
            if parents:
                return self._entry_out(Entry(id=0, dirname="/", basename="", kind="dir"), None)
            raise AlreadyExists("directory exists: /")
        with self.db.session() as s:
            existing = self._entry_or_none(path, s)
            if existing is not None:
                if parents and existing.kind == "dir":
                    return self._entry_out(existing, None)
                raise AlreadyExists(
                    f"{'directory' if existing.kind == 'dir' else 'file'} exists: {path}"
                )
            parent = split(path)[0]
            if not parents:
                p = self._entry_or_none(parent, s)
                if p is None:
                    raise NotFound(f"no such directory: {parent} (use -p to create parents)")
                if p.kind != "dir":
                    raise NotADirectory(f"not a directory: {parent}")
            created = self.ensure_dirs(s, [path])
            self._event(s, "mkdir", path)
        return self._entry_out(created[path], None)

    def entries_at(self, s: Session, paths: Iterable[str]) -> dict[str, Entry]:
        """path → Entry (tombstones too) for exact paths, 400 paths per query."""
        ordered = sorted(set(paths))
        found: dict[str, Entry] = {}
        for i in range(0, len(ordered), 400):
            conds = [
                (col(Entry.dirname) == split(p)[0]) & (col(Entry.basename) == split(p)[1])
                for p in ordered[i : i + 400]
            ]
            for e in s.exec(select(Entry).where(or_(*conds))).all():
                found[e.path] = e
        return found

    def providers_by_id(self, s: Session) -> dict[int, Provider]:
        return {p.id: p for p in s.exec(select(Provider)).all() if p.id is not None}

    def ensure_dirs(self, s: Session, paths: Iterable[str]) -> dict[str, Entry]:
        """Create the directory entries for `paths` and their ancestors in one go; a file in
        the way is an error. Returns path → Entry for what was asked."""
        wanted: set[str] = set()
        for p in paths:
            while p != "/" and p not in wanted:
                wanted.add(p)
                p = split(p)[0]
        if not wanted:
            return {}
        found = self.entries_at(s, wanted)
        for p in sorted(wanted, key=lambda x: x.count("/")):
            e = found.get(p)
            if e is not None and e.deleted_at is None:
                if e.kind != "dir":
                    raise NotADirectory(f"not a directory: {p}")
                continue
            d, b = split(p)
            if e is None:
                e = Entry(dirname=d, basename=b, kind="dir")
                s.add(e)
            else:  # revive a tombstone as a directory
                e.kind, e.deleted_at, e.size, e.mtime_ns, e.hash = "dir", None, None, None, None
                e.updated_at = utcnow()
            found[p] = e
        s.flush()
        return found

    def prefer(self, text: str, provider: str | None) -> EntryOut:
        path = self.path(text)
        if path == "/":
            raise UsageError(
                "set a preferred provider on a directory below / (the root has no entry)"
            )
        pid = self._provider_row(provider).id if provider else None
        with self.db.session() as s:
            e = self._entry_or_none(path, s)
            if e is None:
                raise NotFound(f"no such file or directory: {path}")
            e.preferred_provider_id = pid
            s.add(e)
            self._event(s, "prefer", path, provider)
        return self._entry_out(e, None, {pid: provider} if pid and provider else None)

    def preferences(self, s: Session, paths: Iterable[str]) -> dict[str, int | None]:
        """path → preferred provider id, set on the path or inherited from its nearest
        ancestor; one query for any number of paths (preferences are few)."""
        rows = s.execute(
            sa_select(ENTRY.c.dirname, ENTRY.c.basename, ENTRY.c.preferred_provider_id).where(
                ENTRY.c.preferred_provider_id.is_not(None), ENTRY.c.deleted_at.is_(None)
            )
        ).all()
        prefs = {path_of(r): r.preferred_provider_id for r in rows}
        out: dict[str, int | None] = {}
        for path in paths:
            p, found = path, None
            while found is None and p != "/":
                found = prefs.get(p)
                p = split(p)[0]
            out[path] = found
        return out

    def _event(
        self,
        s: Session,
        action: str,
        path: str,
        provider: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        s.add(
            Event(
                actor=actor_name(), action=action, path=path, provider=provider, detail=detail or {}
            )
        )

    def check_within(self, path: str, ancestor: str) -> None:
        if is_within(path, ancestor) and path != ancestor:
            raise InvalidPath(f"cannot copy or move {ancestor} into itself ({path})")


def _path_match(path: str, pattern: str) -> bool:
    """Glob on whole segments: `*` never crosses a '/'; a relative pattern matches the
    path's last segments, an absolute one the whole path."""
    segs, pats = path.strip("/").split("/"), pattern.strip("/").split("/")
    if (pattern.startswith("/") and len(segs) != len(pats)) or len(pats) > len(segs):
        return False
    return all(fnmatchcase(a, b) for a, b in zip(segs[-len(pats) :], pats, strict=True))


def actor_name() -> str:
    try:
        return os.getlogin()
    except OSError:
        return os.environ.get("USER", "cdir")
