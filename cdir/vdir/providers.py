"""The provider registry side of the virtual directory: register, list, show, test and
forget providers; secrets go to the vault, never the catalog."""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import update

from cdir.catalog import Provider, queries
from cdir.catalog.queries import ENTRY, PROVIDER, REPLICA
from cdir.errors import AlreadyExists, CdirError, UsageError
from cdir.providers import load_provider_class
from cdir.providers.options import missing_required
from cdir.schema import ProviderOut
from cdir.vdir.base import Core

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ProviderOps(Core):
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
        missing = missing_required(cls.options, options)
        if missing:
            raise UsageError(f"provider kind {kind} needs --option {missing[0]}=…")
        secret = {o.name for o in cls.options if o.secret}
        with self.db.transaction() as s:
            if queries.provider_named(s, name) is not None:
                raise AlreadyExists(f"provider {name!r} already exists")
        backend = cls(
            name,
            root,
            {k: v for k, v in options.items() if k not in secret},
            {k: v for k, v in options.items() if k in secret},
        )
        # what the provider made of its inputs is what gets stored (a password found inside a
        # URL has moved to its secrets, a relative folder became absolute)
        backend.create_root()
        if check:
            pinned = backend.pin()
            if pinned:
                backend.close()
                backend = cls(name, backend.root, {**backend.opts, **pinned}, backend.secrets)
            try:
                backend.check()
            finally:
                backend.close()
        if backend.secrets:
            self.vault.set(name, dict(backend.secrets))
        row = Provider(
            name=name,
            kind=kind,
            root=backend.root,
            options=dict(backend.opts),
            secret_ref=name if backend.secrets else None,
            priority=priority,
            location=location,
        )
        with self.db.transaction(write=True) as s:
            s.add(row)
            self.event(s, "provider.add", "/", name, {"kind": kind})
        return self._provider_out(row, dict(backend.secrets))

    def providers(self) -> list[ProviderOut]:
        with self.db.transaction() as s:
            rows = sorted(queries.providers(s), key=lambda p: p.name)
        return [self._provider_out(r) for r in rows]

    def provider(self, name: str) -> ProviderOut:
        return self._provider_out(self.provider_row(name))

    def remove_provider(self, name: str, *, force: bool = False) -> int:
        """Forget a provider (its files stay where they are). Returns replicas forgotten."""
        row = self.provider_row(name)
        with self.db.transaction(write=True) as s:
            n = queries.count_replicas(s, row.id or 0)
            if n and not force:
                raise UsageError(
                    f"provider {name!r} holds {n} replica(s); use --force to forget them "
                    "(the files stay on the provider)"
                )
            s.execute(REPLICA.delete().where(REPLICA.c.provider_id == row.id))
            s.execute(
                update(ENTRY)
                .where(ENTRY.c.preferred_provider_id == row.id)
                .values(preferred_provider_id=None)
            )
            s.execute(PROVIDER.delete().where(PROVIDER.c.id == row.id))
            self.event(s, "provider.remove", "/", name, {"replicas": n})
        if row.secret_ref:
            self.vault.delete(row.secret_ref)
        with self._lock:
            b = self._backends.pop(name, None)
        if b:
            b.close()
        return n

    def test_provider(self, name: str) -> float:
        """Reach the provider; returns the round-trip time in seconds."""
        backend = self.backend(name)
        t0 = time.perf_counter()
        backend.check()
        return time.perf_counter() - t0

    def remember_passphrase(self, phrase: str) -> None:
        """Check `phrase` opens the vault, then keep it in the OS keyring."""
        import keyring

        from cdir.vault import Vault

        Vault(self.settings.vault, phrase).refs()  # a wrong one fails here, nothing stored
        try:
            keyring.set_password("cdir", str(self.settings.vault), phrase)
        except Exception as exc:  # no backend, locked, headless…: one line, no traceback
            raise CdirError(f"no usable OS keyring: {type(exc).__name__}") from None

    def _provider_out(self, row: Provider, secrets: dict[str, str] | None = None) -> ProviderOut:
        from cdir.vault import mask

        names: dict[str, Any] = {}
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
