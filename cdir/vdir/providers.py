"""The provider registry side of the virtual directory: register, change, re-pin, list, show,
test and forget providers, and sign in to the ones that use OAuth; secrets go to the vault,
never the catalog. Changing a provider keeps every replica: only its options, secrets,
priority or location change, never its root."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from typing import Any

from cdir.catalog import Provider, maintenance, queries, registry
from cdir.errors import AlreadyExists, CdirError, UsageError
from cdir.providers import Provider as Backend
from cdir.providers import load_provider_class
from cdir.providers.options import missing_required
from cdir.schema import PinOut, PinsOut, ProviderOut
from cdir.vdir.base import Core
from cdir.vdir.sync import CHANGES

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
            backend = self._pin_and_check(cls, backend)
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
            registry.add_provider(s, row)
            self.event(s, "provider.add", "/", name, {"kind": kind})
        return self._provider_out(row, dict(backend.secrets))

    def set_provider(
        self,
        name: str,
        options: dict[str, str],
        *,
        priority: int | None = None,
        location: str | None = None,
        check: bool = True,
    ) -> ProviderOut:
        """Change a provider's options and secrets (an empty value removes one), and its
        priority or location; every replica stays. The merged options are validated by
        making the provider (and with `check`, by reaching it) before anything is stored;
        the provider object open in this process is dropped, so the next use reopens it."""
        row = self.provider_row(name)
        cls = load_provider_class(row.kind)
        if "root" in options:
            raise UsageError(
                f"{name}: the root cannot be changed (every replica is a path below it); "
                "add a provider with the new root, replicate, then remove this one"
            )
        old_secrets = self.vault.get(row.secret_ref) if row.secret_ref else {}
        opts, secrets = _merged(cls, row.options, old_secrets, options)
        missing = missing_required(cls.options, {**opts, **secrets})
        if missing:
            raise UsageError(f"provider kind {row.kind} needs --option {missing[0]}=…")
        backend = cls(name, row.root, opts, secrets)  # typed options refuse bad values here
        if check:
            backend = self._pin_and_check(cls, backend)
        new_secrets = dict(backend.secrets)
        changed = _changed(row.options, dict(backend.opts))
        changed_secrets = _changed(old_secrets, new_secrets)
        ref = row.secret_ref or name
        if changed_secrets:
            self.vault.set(ref, new_secrets)  # {} removes them
        values: dict[str, Any] = {
            "options": dict(backend.opts),
            "secret_ref": ref if new_secrets else None,
        }
        if priority is not None:
            values["priority"] = priority
        if location is not None:
            values["location"] = location or None
        with self.db.transaction(write=True) as s:
            registry.update_provider(s, row.id or 0, values)
            detail = {"options": changed, "secrets": changed_secrets}
            self.event(s, "provider.set", "/", name, detail | {"kind": row.kind})
        self._drop_backend(name)
        return self.provider(name)

    def provider_pins(self, name: str) -> PinsOut:
        """What the provider pins (an SSH host key) against what the service presents now;
        no pins for a kind that pins nothing. Nothing is stored (see pin_provider)."""
        row = self.provider_row(name)
        cls = load_provider_class(row.kind)
        out = PinsOut(name=name, kind=row.kind)
        if cls.pin is Backend.pin:
            return out
        b = self.backend(name)
        for option, new in b.pin(renew=True).items():
            old = row.options.get(option)
            out.pins.append(
                PinOut(
                    option=option,
                    what=option.replace("_", " "),
                    old=None if old in (None, "") else str(old),
                    new=str(new),
                    old_text=None if old in (None, "") else b.show_pin(option, old),
                    new_text=b.show_pin(option, new),
                )
            )
        return out

    def pin_provider(self, name: str, pins: PinsOut | None = None) -> PinsOut:
        """Store what the service presents as the provider's pinned options: `pins` as
        provider_pins gave them (what the user saw and accepted), else learned now. Every
        replica stays."""
        pins = pins or self.provider_pins(name)
        changed = {p.option: p.new for p in pins.pins if p.changed}
        if changed:
            self.set_provider(name, changed, check=False)
        return pins.model_copy(update={"stored": bool(changed)})

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
            registry.forget_provider(s, row.id or 0)
            # its poll interval and change-feed cursor go with it
            maintenance.set_state(s, maintenance.POLL + name, None)
            maintenance.set_state(s, CHANGES + name, None)
            self.event(s, "provider.remove", "/", name, {"replicas": n})
        if row.secret_ref:
            self.vault.delete(row.secret_ref)
        self._drop_backend(name)
        return n

    def authorize_provider(
        self, name: str, kind: str, options: dict[str, str], *, headless: bool = False
    ) -> dict[str, str]:
        """authorize_options (what to do to sign in goes to stderr, even when quiet)."""
        return authorize_options(name, kind, options, headless=headless)

    def reauthorize_provider(self, name: str, *, headless: bool = False) -> ProviderOut:
        """Sign in to an OAuth provider again (its sign-in expired or was revoked) and store
        the new token; every replica stays."""
        row = self.provider_row(name)
        secrets = self.vault.get(row.secret_ref) if row.secret_ref else {}
        given = {k: str(v) for k, v in row.options.items()} | secrets
        given.pop("token", None)
        signed = self.authorize_provider(name, row.kind, given, headless=headless)
        if "token" not in signed:
            raise UsageError(f"{name}: provider kind {row.kind} does not sign in with OAuth")
        return self.set_provider(name, {"token": signed["token"]})

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

    @staticmethod
    def _pin_and_check(cls: type[Backend], backend: Backend) -> Backend:
        """Learn what the provider pins (when not given), then reach it; the provider (closed)
        with what it pinned in its options."""
        pinned = backend.pin()
        if pinned:
            backend.close()
            backend = cls(backend.name, backend.root, {**backend.opts, **pinned}, backend.secrets)
        try:
            backend.check()
        finally:
            backend.close()
        return backend

    def _drop_backend(self, name: str) -> None:
        """Close the provider object open for `name`: the next use opens it anew."""
        with self._lock:
            b = self._backends.pop(name, None)
        if b:
            b.close()

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


def authorize_options(
    name: str,
    kind: str,
    options: dict[str, str],
    *,
    headless: bool = False,
    say: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """`options` (for add_provider) with the secret `token` got by signing in, when `kind`
    signs in with OAuth (its class declares `oauth`) and no token is given; else `options`
    as they are. `headless`: no browser here (a device code, or a pasted URL). No catalog
    is needed: a CLI talking to a remote service signs in here, where the user is, and
    sends the token with the options."""
    cls = load_provider_class(kind)
    endpoints = getattr(cls, "oauth", None)
    if endpoints is None or options.get("token"):
        return options
    from cdir.providers.oauth import authorize

    default = next((o.default for o in cls.options if o.name == "client_id"), None)
    client_id = options.get("client_id") or default
    if not client_id:
        raise UsageError(
            f"provider kind {kind} signs in with OAuth: give the app's --option client_id=… "
            "(and -S client_secret if the app has one)"
        )
    tell = say or (lambda line: print(line, file=sys.stderr))
    token = authorize(
        name, endpoints, client_id, options.get("client_secret"), headless=headless, say=tell
    )
    return {**options, "token": token.to_secret()}


def _merged(
    cls: Any, opts: dict[str, Any], secrets: dict[str, str], changes: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A provider's options and secrets with `changes` applied (an empty value removes
    one); each change goes where its kind keeps it (secrets to the vault)."""
    secret = {o.name for o in cls.options if o.secret}
    opts, secrets = dict(opts), dict(secrets)
    for k, v in changes.items():
        target: dict[str, Any] = secrets if k in secret else opts
        if v == "":
            target.pop(k, None)
        else:
            target[k] = v
    return opts, secrets


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys whose values differ (added and removed ones too)."""
    return sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
