"""`cdir provider add|auth|list|show|test|remove|set|pin`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cdir.cli.app import (
    G,
    provider_app,
)
from cdir.errors import CdirError, UsageError


def _parse_options(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"option {item!r} must look like NAME=VALUE")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v
    return out


def _read_secret(path: str) -> str:
    """The contents of a secret file, less one trailing line break (`\\n` or `\\r\\n`): what
    `echo KEY > file` or an editor adds is not part of the secret. Anything else is kept."""
    try:
        with Path(path).expanduser().open(encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read secret file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read secret file {path}: not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text


def _add_secrets(opts: dict[str, str], secret: list[str] | None) -> None:
    """-S NAME prompts (one line, hidden); -S NAME=@FILE reads it from a file."""
    for s in secret or []:
        name_, _, src = s.partition("=@")
        opts[name_.replace("-", "_")] = (
            _read_secret(src) if src else typer.prompt(name_, hide_input=True)
        )


SecretOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        "-S",
        help="NAME (prompted) or NAME=@FILE (read from a file); kept in the vault",
    ),
]
PollOpt = Annotated[
    str | None,
    typer.Option("--poll", help="How often the sync daemon lists it: 90, 90s, 5m, 1h (60s)"),
]


HeadlessOpt = Annotated[
    bool,
    typer.Option(
        "--headless", help="Sign in without a browser here: a device code or a pasted URL"
    ),
]


@provider_app.command("add")
def provider_add(
    name: Annotated[str, typer.Argument(help="A name you choose, e.g. laptop, s3-eu")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="local, sftp, s3, azure, gcs, webdav")],
    root: Annotated[
        str, typer.Option("--root", help="Folder, bucket[/prefix], container, remote dir…")
    ],
    option: Annotated[
        list[str] | None, typer.Option("--option", "-O", help="NAME=VALUE (repeatable)")
    ] = None,
    secret: SecretOpt = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher is read first")] = 0,
    location: Annotated[
        str | None, typer.Option("--location", help="Region or place, informative")
    ] = None,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Do not contact the provider now")
    ] = False,
    poll: PollOpt = None,
    headless: HeadlessOpt = False,
) -> None:
    """Register a provider; secrets go to the encrypted vault, never the catalog. A drive
    (gdrive, onedrive, dropbox, box) asks you to sign in first."""
    from cdir.cli import daemon

    daemon.check_poll(poll)
    opts = _parse_options(option)
    _add_secrets(opts, secret)
    from cdir.vdir.providers import authorize_options  # signs in here, where the user is

    opts = authorize_options(name, kind, opts, headless=headless)
    p = G.open().add_provider(
        name, kind, root, opts, priority=priority, location=location, check=not no_check
    )
    if G.output == "json":
        typer.echo(p.model_dump_json(indent=2))
    elif not G.quiet:
        typer.echo(f"added provider {p.name} ({p.kind}: {p.root})")
        for k, v in p.options.items():  # including what was pinned, e.g. an SSH host key
            typer.echo(f"  {k} = {v}")
    daemon.set_poll(G.open(), name, poll)


@provider_app.command("auth")
def provider_auth(name: str, headless: HeadlessOpt = False) -> None:
    """Sign in to a drive again (when its sign-in expired or was revoked)."""
    p = G.open().reauthorize_provider(name, headless=headless)
    typer.echo(f"signed in to {p.name} ({p.kind}: {p.root})")


@provider_app.command("list")
def provider_list() -> None:
    """List registered providers (secrets masked)."""
    from cdir.cli.daemon import provider_rows
    from cdir.cli.output import emit

    v = G.open()
    rows, poll = provider_rows(v, v.providers())
    columns = ["name", "kind", "root", "priority", "enabled", *poll]
    emit(rows, G.output, [*columns, "options", "secrets"])


provider_app.command("ls", hidden=True)(provider_list)


@provider_app.command("show")
def provider_show(name: str) -> None:
    """Show one provider (secrets masked)."""
    from cdir.cli.daemon import provider_rows
    from cdir.cli.output import emit

    v = G.open()
    rows, poll = provider_rows(v, [v.provider(name)])
    columns = ["name", "kind", "root", "priority", "location", "enabled", *poll]
    emit(rows, G.output, [*columns, "options", "secrets"])


@provider_app.command("test")
def provider_test(name: str) -> None:
    """Check that a provider can be reached and used."""
    seconds = G.open().test_provider(name)
    typer.echo(f"{name}: ok ({seconds * 1000:.0f} ms)")


@provider_app.command("remove")
def provider_remove(
    name: str,
    force: Annotated[
        bool, typer.Option("--force", help="Also forget its replicas (files stay)")
    ] = False,
) -> None:
    """Forget a provider (its files are left where they are)."""
    n = G.open().remove_provider(name, force=force)
    typer.echo(f"removed provider {name}" + (f" and forgot {n} replica(s)" if n else ""))


provider_app.command("rm", hidden=True)(provider_remove)


# --- changing providers, catalog upkeep: provider set/pin, gc (and gc after write commands) ---
@provider_app.command("set")
def provider_set(
    name: Annotated[str, typer.Argument(help="Provider to change")],
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-O", help="NAME=VALUE (repeatable); NAME= removes it"),
    ] = None,
    secret: SecretOpt = None,
    priority: Annotated[int | None, typer.Option("--priority", help="Higher is read first")] = None,
    location: Annotated[
        str | None, typer.Option("--location", help="Region or place ('' clears it)")
    ] = None,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Do not contact the provider now")
    ] = False,
    poll: PollOpt = None,
) -> None:
    """Change a provider's options and secrets (every replica is kept). The new options are
    checked before anything is stored; secrets go to the vault."""
    from cdir.cli import daemon

    daemon.check_poll(poll)
    opts = _parse_options(option)
    _add_secrets(opts, secret)
    if not opts and priority is None and location is None and poll is None:
        raise UsageError("provider set needs -O NAME=VALUE, -S NAME, --priority or --location")
    v = G.open()
    changed = opts or priority is not None or location is not None  # else only the poll
    p = (
        v.set_provider(name, opts, priority=priority, location=location, check=not no_check)
        if changed
        else v.provider(name)
    )
    if G.output == "json":
        typer.echo(p.model_dump_json(indent=2))
    elif not G.quiet:
        typer.echo(f"updated provider {p.name} ({p.kind}: {p.root})")
        for k, val in {**p.options, **p.secrets}.items():
            typer.echo(f"  {k} = {val}")
    daemon.set_poll(v, name, poll)


@provider_app.command("pin")
def provider_pin(
    name: Annotated[str, typer.Argument(help="Provider whose server changed its key")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask: trust it")] = False,
) -> None:
    """Trust the key a provider's server presents now (an SSH host key replaced on purpose):
    shows the old and the new fingerprint, asks, stores it; every replica is kept."""
    v = G.open()
    pins = v.provider_pins(name)
    if not pins.pins:
        typer.echo(f"{name}: nothing to pin for kind {pins.kind}")
        return
    say = G.output == "json"  # then these lines go to stderr, the json to stdout
    for p in pins.pins:
        if not p.changed:
            typer.echo(f"{p.what} of {name} unchanged: {p.new_text}", err=say)
        elif p.old is None:
            typer.echo(f"{p.what} of {name} not pinned yet: new {p.new_text}", err=say)
        else:
            typer.echo(f"{p.what} of {name} changed: old {p.old_text}, new {p.new_text}", err=say)
    new = [p for p in pins.pins if p.changed]
    if new and not yes:
        what = " and ".join(p.what for p in new)
        if not sys.stdin.isatty():
            raise UsageError(f"{name}: not pinned: confirm with --yes (no terminal to ask)")
        if not typer.confirm(f"trust the new {what} of {name}?", default=False):
            raise CdirError(f"{name}: not pinned")
    out = v.pin_provider(name, pins) if new else pins
    if say:
        typer.echo(out.model_dump_json(indent=2))
    elif not G.quiet:
        for p in new:
            typer.echo(f"pinned {p.what} of {name}: {p.new_text}")
