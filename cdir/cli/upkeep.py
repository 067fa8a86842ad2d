"""Catalog upkeep and settings: `cdir gc` (and the gc pass after write commands), `cdir config
list|unlock`."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from cdir.cli.app import (
    G,
    app,
    config_app,
)
from cdir.errors import CdirError


@app.command("gc")
def gc_cmd(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Only count what would go")
    ] = False,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            min=0,
            metavar="DAYS",
            help="Tombstones deleted more than DAYS ago (default CDIR_TOMBSTONE_DAYS, 90)",
        ),
    ] = None,
    events_older_than: Annotated[
        float | None,
        typer.Option(
            "--events-older-than",
            min=0,
            metavar="DAYS",
            help="Journal events older than DAYS (default CDIR_EVENT_DAYS, 90)",
        ),
    ] = None,
) -> None:
    """Purge old tombstones whose replicas are all deleted, and old journal events. Write
    commands also run it, at most once a day."""
    rep = G.open().gc(dry_run=dry_run, older_than=older_than, events_older_than=events_older_than)
    if G.output == "json":
        typer.echo(rep.model_dump_json(indent=2))
    elif not G.quiet:
        typer.echo(_gc_line(rep))


def _gc_line(rep: Any) -> str:
    t, e, k = rep.tombstones_purged, rep.events_deleted, rep.tombstones_kept
    would = "would " if rep.dry_run else ""
    line = f"gc{' (dry run)' if rep.dry_run else ''}: {would}purge{'' if would else 'd'} "
    line += f"{t:,} tombstone(s) and {e:,} event(s)"
    if k:
        line += f"; {'would keep' if would else 'kept'} {k:,} tombstone(s) whose replicas"
        line += " are not all deleted"
    return line


# write commands: a gc pass follows their work when one is due (once a day; else one read)
GC_AFTER = {"put", "cp", "copy", "mv", "move", "rm", "delete", "replicate", "scan"}


def _then_gc(command: Any) -> Any:
    @functools.wraps(command)
    def run_then_gc(*args: Any, **kwargs: Any) -> None:
        command(*args, **kwargs)
        if G.vdir is not None:
            try:
                G.vdir.gc_if_due()
            except CdirError as exc:  # the command did its work; gc waits for the next one
                typer.echo(f"cdir: warning: gc skipped: {exc}", err=True)

    return run_then_gc


def gc_after_write_commands() -> None:
    """Wrap the write commands (once they are all registered) so gc follows them."""
    for info in app.registered_commands:
        if info.name in GC_AFTER:
            info.callback = _then_gc(info.callback)


# --- config -----------------------------------------------------------------------------------
@config_app.command("list")
def config_list() -> None:
    """Settings and every provider's options; secrets are masked."""
    from cdir.cli.output import emit
    from cdir.config import redact

    v = G.open()
    s = v.settings
    rows: list[dict[str, Any]] = [
        {"key": "home", "value": str(s.home)},
        {"key": "catalog", "value": redact(s.catalog)},
        {"key": "vault", "value": str(s.vault)},
        {"key": "parallel", "value": str(s.parallel)},
        {"key": "tombstone_days", "value": f"{s.tombstone_days:g}"},
        {"key": "event_days", "value": f"{s.event_days:g}"},
        {"key": "cwd", "value": v.cwd},
    ]
    for p in v.providers():
        rows.append({"key": f"provider.{p.name}.kind", "value": p.kind})
        rows.append({"key": f"provider.{p.name}.root", "value": p.root})
        rows += [
            {"key": f"provider.{p.name}.{k}", "value": str(val)} for k, val in p.options.items()
        ]
        rows += [{"key": f"provider.{p.name}.{k}", "value": val} for k, val in p.secrets.items()]
    emit(rows, G.output, ["key", "value"])


@config_app.command("unlock")
def config_unlock() -> None:
    """Store the vault passphrase in the OS keyring, so commands stop asking. Uses
    CDIR_VAULT_PASSPHRASE when it is set, else asks; either way checks it opens the vault."""

    from cdir.errors import VaultError
    from cdir.vault import ENV_PASSPHRASE, KEYRING_SERVICE

    v = G.open()
    phrase = os.environ.get(ENV_PASSPHRASE)
    source = f" from {ENV_PASSPHRASE}" if phrase else ""
    if not phrase:
        import getpass

        phrase = getpass.getpass("vault passphrase: ")
    if not phrase:
        raise VaultError("the vault passphrase must not be empty")
    vault = v.settings.vault
    existed = Path(vault).exists()
    v.remember_passphrase(phrase)  # a wrong one fails here, nothing stored
    typer.echo(
        f"passphrase{source} stored in the OS keyring ({_keyring_name()}): "
        f"service {KEYRING_SERVICE!r}, user {str(vault)!r}"
        + ("" if existed else f" (no vault yet: {vault} will be created with it)")
    )


def _keyring_name() -> str:
    try:
        import keyring

        return str(keyring.get_keyring().name)
    except Exception:
        return "unknown backend"
