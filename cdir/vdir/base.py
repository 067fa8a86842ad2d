"""What every part of the virtual directory shares: settings, the catalog (opened on first
use), the vault (opened only when a provider needs a secret) and one open provider object per
provider name, shared by the transfer threads."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from cdir.catalog import Database, Provider, queries, writes
from cdir.config import Settings
from cdir.errors import CdirError, Interrupted, NotFound, UsageError
from cdir.providers import Provider as Backend
from cdir.providers import load_provider_class
from cdir.schema import TransferReport
from cdir.schema.paths import normalize, split
from cdir.vdir import claims, engine, plan, state

if TYPE_CHECKING:
    from cdir.vault import Vault

# The root directory has no catalog row; this stands in for it.
ROOT = SimpleNamespace(
    id=0,
    dirname="/",
    basename="",
    kind="dir",
    size=None,
    mtime_ns=None,
    hash=None,
    generation=0,
    preferred_provider_id=None,
    deleted_at=None,
)
BATCH = 500  # files recorded per catalog transaction


class Core:
    def __init__(self, settings: Settings | None = None, *, interactive: bool = False) -> None:
        self.settings = settings or Settings()
        self.interactive = interactive
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()
        self.notice: Callable[[str], None] | None = None  # what the user should hear now

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.catalog)

    @cached_property
    def vault(self) -> Vault:
        from cdir.vault import Vault, passphrase_source

        path = self.settings.vault
        return Vault(path, passphrase_source(path, interactive=self.interactive))

    def close(self) -> None:
        for b in self._backends.values():
            b.close()
        self._backends.clear()
        if "db" in self.__dict__:
            self.db.close()

    def __enter__(self) -> Core:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- paths ----------------------------------------------------------------------------
    @property
    def cwd(self) -> str:
        return state.current_dir(self.settings)

    def path(self, text: str) -> str:
        """Validate and absolutise a user's virtual path against the current directory
        (read only for a relative path: the service gets absolute ones, many a second)."""
        return normalize(text, "/" if text.startswith("/") else self.cwd)

    def entry_or_none(self, path: str) -> Any:
        """The live entry row at `path` (ROOT for "/"), or None."""
        if path == "/":
            return ROOT
        with self.db.transaction() as s:
            return queries.entry_at(s, path)

    def entry(self, path: str) -> Any:
        e = self.entry_or_none(path)
        if e is None:
            raise NotFound(f"no such file or directory: {path}")
        return e

    # --- providers ------------------------------------------------------------------------
    def provider_row(self, name: str) -> Provider:
        with self.db.transaction() as s:
            row = queries.provider_named(s, name)
        if row is None:
            raise NotFound(f"unknown provider {name!r} (see `cdir provider list`)")
        return row

    def resolve_providers(self, names: Sequence[str] | None) -> list[Provider]:
        """Provider rows by name (all enabled ones when `names` is empty)."""
        with self.db.transaction() as s:
            rows = queries.providers(s)
        if not names:
            chosen = [r for r in rows if r.enabled]
            if not chosen:
                raise UsageError(
                    "no provider registered: add one with "
                    "`cdir provider add NAME --kind local --root DIR`"
                )
            return chosen
        by_name = {r.name: r for r in rows}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            self.provider_row(unknown[0])  # raises NotFound with the usual message
        return [by_name[n] for n in dict.fromkeys(names)]

    def backend(self, name: str) -> Backend:
        """The provider object for `name`, opened once per process (shared by threads)."""
        with self._lock:
            b = self._backends.get(name)
        if b is not None:
            return b
        row = self.provider_row(name)
        secrets = self.vault.get(row.secret_ref) if row.secret_ref else {}
        store = self.vault.store(row.secret_ref) if row.secret_ref else None
        cls = load_provider_class(row.kind)
        b = cls(row.name, row.root, row.options, secrets, secret_store=store)
        with self._lock:
            return self._backends.setdefault(name, b)

    def drop_case_clashes(self, s: Session, jobs: Sequence[Any]) -> list[str]:
        """Drop the targets where a provider that ignores case holds the same name in
        another case (plan.drop_case_clashes); the lines that say so."""
        targets = {p.id: p for j in jobs for p in j.targets if p.id is not None}
        insensitive = {
            pid
            for pid, p in targets.items()
            if not self.backend(p.name).capabilities.case_sensitive
        }
        if not insensitive:
            return []
        held = queries.names_held(s, {split(j.vpath)[0] for j in jobs}, insensitive)
        return plan.drop_case_clashes(jobs, held, insensitive)

    def widths(self, tasks: Sequence[engine.Task[Any]]) -> dict[str, int]:
        """The useful concurrency of each provider the tasks use (its lane width in the
        engine). Only those are opened: a provider that is not used needs no secret."""
        return {n: self.backend(n).capabilities.max_parallel for n in {t.lane for t in tasks}}

    def reap(self, folders: dict[str, set[str]]) -> int:
        """Remove what killed writers left in these folders (provider name → remote
        folders); best effort: a provider that fails here fails the next real operation."""
        gone = 0
        for name, dirs in folders.items():
            with contextlib.suppress(CdirError):
                gone += self.backend(name).reap_temporaries(sorted(dirs))
        return gone

    # --- claims ---------------------------------------------------------------------------
    def claim(
        self, paths: Sequence[str], *, exclusive: bool, command: str
    ) -> contextlib.AbstractContextManager[None]:
        """Hold these subtrees while a command works on the providers (vdir.claims)."""
        return claims.claim(
            self.db,
            list(paths),
            exclusive=exclusive,
            command=command,
            wait_s=self.settings.lease_wait,
            notice=self.notice,
        )

    # --- journal --------------------------------------------------------------------------
    def event(
        self,
        s: Session,
        action: str,
        path: str,
        provider: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        writes.add_events(
            s,
            [{"action": action, "path": path, "provider": provider, "detail": detail or {}}],
            actor_name(),
        )


@contextmanager
def interruptible(report: TransferReport, what: str) -> Iterator[None]:
    """Ctrl-C, once the engine drained and the caller recorded what was confirmed, becomes
    Interrupted carrying the report."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"{what} interrupted", report) from None


def bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """`fn(*args)` as a task for the engine."""
    return lambda: fn(*args)


def actor_name() -> str:
    try:
        return os.getlogin()
    except OSError:
        return os.environ.get("USER", "cdir")
