"""What every part of the command line shares: the Typer app and its sub-apps, the global
options (before or after a command), `G` (the open virtual directory: the catalog itself or
a running service's client), and the output helpers. The commands live in the modules
`main` imports."""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from cdir.errors import UsageError

# The root's options that every command also accepts, so they go before or after it:
# `cdir -o json ls /` is `cdir ls / -o json`. Defined once, on the root callback `main`.
GLOBAL_OPTIONS = ("catalog", "storage", "parallel", "output", "quiet")
OUTPUT_FORMATS = ("table", "json", "csv")


class InheritGlobals:
    """Mixin for every command and group below the root: the root's GLOBAL_OPTIONS are added
    to its parameters (so click parses, completes and documents them like its own), and a
    value given here overrides one given before the command. `cdir ls --help` lists them
    under "Global options"."""

    _inherited: list[Any] | None = None

    def _globals(self, ctx: Any) -> list[Any]:
        if ctx.parent is None:  # the root defines them
            return []
        if self._inherited is None:
            self._inherited = [
                _inherited_option(p)
                for p in ctx.find_root().command.params
                if p.name in GLOBAL_OPTIONS
            ]
        return self._inherited

    def get_params(self, ctx: Any) -> list[Any]:
        return [*super().get_params(ctx), *self._globals(ctx)]  # type: ignore[misc]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        inherited = self._globals(ctx)
        args, opts, globs = [], [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param in inherited:
                globs.append(record)
            elif param.param_type_name == "argument":
                args.append(record)
            else:
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts), ("Global options", globs)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        if isinstance(self, TyperGroup):
            self.format_commands(ctx, formatter)


def _inherited_option(root_param: Any) -> Any:
    """A copy of a root option for a subcommand: it stores what it is given in G."""
    param = copy.copy(root_param)
    param.expose_value = False
    param.envvar = None  # the root reads CDIR_CATALOG_URL; here only the command line counts
    param.callback = _store_global
    return param


def _store_global(ctx: Any, param: Any, value: Any) -> Any:
    if not ctx.resilient_parsing and value is not None and value is not False:
        G.set(param.name, value)
    return value


class CdirCommand(InheritGlobals, TyperCommand):
    """A command: takes the global options too."""


class PrefixGroup(InheritGlobals, TyperGroup):
    """Commands may be abbreviated to any unique prefix (`cdir prov ls`)."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        names = [n for n in self.list_commands(ctx) if n.startswith(cmd_name)]
        targets = {id(super(PrefixGroup, self).get_command(ctx, n)) for n in names}
        if len(targets) == 1:
            return super().get_command(ctx, names[0])
        if len(names) > 1:
            ctx.fail(f"'{cmd_name}' is ambiguous: {', '.join(sorted(names))}")
        return None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        _, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else None), cmd, rest

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:  # Interrupted too: it is a KeyboardInterrupt
            raise _Stopped(exc) from None


class _Stopped(Exception):
    """A Ctrl-C or SIGTERM carried past Typer, which turns a KeyboardInterrupt into a
    silent exit 130 — the summary of what was done and the advice to run the command again
    would be lost. `run()` reports it."""

    def __init__(self, cause: KeyboardInterrupt) -> None:
        super().__init__(str(cause))
        self.cause = cause


class CdirTyper(typer.Typer):
    """A Typer whose commands are CdirCommands (they accept the global options)."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", CdirCommand)
        return super().command(*args, **kwargs)


def _app(help_text: str, *, completion: bool = False) -> CdirTyper:
    return CdirTyper(
        cls=PrefixGroup,
        help=help_text,
        no_args_is_help=True,
        add_completion=completion,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


app = _app(
    "cdir: one directory tree over all your storage (local, SSH, S3, Azure, GCS, WebDAV…)."
    "\n\nGlobal options go before or after the command: `cdir ls / -o json`.",
    completion=True,
)
provider_app = _app("Register and manage storage providers.")
config_app = _app("Show and manage cdir's settings and credentials vault.")
create_app = _app("Create things (`cdir create dir DIR`).")
app.add_typer(provider_app, name="provider")
app.add_typer(config_app, name="config")
app.add_typer(create_app, name="create")


@dataclass
class Globals:
    catalog: str | None = None
    storage: list[str] | None = None
    parallel: int | None = None
    output: str = "table"
    quiet: bool = False
    url: str | None = None
    vdir: Any = None

    def set(self, name: str, value: Any) -> None:
        """Set a global option; given both before and after the command, the later wins."""
        if name == "storage":
            value = [n.strip() for n in value.split(",") if n.strip()] or None
        elif name == "output":
            value = _fmt(value)
        setattr(self, name, value)

    def open(self) -> Any:
        """The virtual directory: a running service's client when there is one (CDIR_URL,
        --url, or the service this home started), else the catalog itself."""
        if self.vdir is None:
            settings = _settings(self.catalog)
            target = None if self.catalog else _client_target(settings, self.url)
            if target is None:
                return self.open_direct()
            from cdir.cli.client import ServiceClient

            url, token, local = target
            self.vdir = ServiceClient(url, token, settings, local=local)
            self.vdir.notice = _notice
        return self.vdir

    def open_direct(self) -> Any:
        """The catalog itself, even with a service running (the daemon, the service)."""
        if self.vdir is None or type(self.vdir).__name__ != "VDir":
            from cdir.vdir import VDir

            self.vdir = VDir(_settings(self.catalog), interactive=sys.stdin.isatty())
            self.vdir.notice = _notice
        return self.vdir


def _client_target(settings: Any, url: str | None) -> tuple[str, str, bool] | None:
    from cdir import service

    return service.client_target(service.Files(settings.home), url)


G = Globals()


def _settings(catalog: str | None) -> Any:
    """cdir's settings; a bad CDIR_* value is one line naming it, not a traceback."""
    from pydantic import ValidationError

    from cdir.config import Settings

    try:
        return Settings(catalog_url=catalog) if catalog else Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "CDIR_" + str(err["loc"][0]).upper() if err.get("loc") else "a CDIR_ variable"
        raise UsageError(f"bad setting {name}: {err['msg']}") from None


RecursiveOpt = Annotated[
    bool, typer.Option("--recursive", "-r", "-R", help="Include everything below")
]
ToOpt = Annotated[
    str | None,
    typer.Option("--to", help="Providers to write to: P1,P2 (default: --storage, else all)"),
]


def _fmt(output: str) -> str:
    fmt = output.lower()
    if fmt not in OUTPUT_FORMATS:
        raise UsageError(f"unknown output format {fmt!r}: use table, json or csv")
    return fmt


def _parallel() -> int:
    return G.parallel or G.open().settings.parallel


def _names(text: str | None) -> list[str] | None:
    if text:
        return [n.strip() for n in text.split(",") if n.strip()]
    return G.storage


def _progress() -> bool:
    return not G.quiet


def _notice(message: str) -> None:
    """What a command tells the user while it runs (waiting for another); not with -q."""
    if not G.quiet:
        typer.echo(f"cdir: {message}", err=True)


def _report(action: str, rep: Any) -> None:
    _summary(action, rep)
    if rep.failed:
        raise typer.Exit(1)


def _summary(action: str, rep: Any) -> None:
    """The one-line summary (or JSON) of a report, then its warnings and errors."""
    from cdir.cli.output import human_size

    fmt = G.output
    if fmt == "json":
        typer.echo(rep.model_dump_json(indent=2))
    elif not G.quiet:
        rate = (
            f", {human_size(int(rep.bytes / rep.seconds))}/s" if rep.seconds and rep.bytes else ""
        )
        typer.echo(
            f"{action}: {rep.files} file(s), {human_size(rep.bytes)} in {rep.seconds:.2f} s{rate}"
            f" (skipped {rep.skipped}, failed {rep.failed})"
        )
        if rep.failed and len(rep.providers) > 1:  # who did what, when some failed
            typer.echo(
                "  "
                + ", ".join(
                    f"{name}: {t.files} file(s)" + (f", {t.failed} failed" if t.failed else "")
                    for name, t in sorted(rep.providers.items())
                )
            )
    if not G.quiet:
        for note in rep.warnings[:20]:
            typer.echo(f"cdir: skipped: {note}", err=True)
        if len(rep.warnings) > 20:
            typer.echo(f"cdir: … and {len(rep.warnings) - 20} more skipped", err=True)
    for err in rep.errors[:20]:
        typer.echo(f"cdir: error: {err}", err=True)
    if len(rep.errors) > 20:
        typer.echo(f"cdir: … and {len(rep.errors) - 20} more error(s)", err=True)


def _version(value: bool) -> None:
    if value:
        from cdir import __version__

        typer.echo(f"cdir {__version__}")
        raise typer.Exit()


def _complete_output() -> list[str]:
    return list(OUTPUT_FORMATS)


@app.callback()
def main(
    catalog: Annotated[
        str | None,
        typer.Option(
            "--catalog",
            envvar="CDIR_CATALOG_URL",
            help="Catalog URL (sqlite:///… or postgresql://…)",
        ),
    ] = None,
    storage: Annotated[
        str | None, typer.Option("--storage", "--provider", help="Provider(s) to use: P1,P2")
    ] = None,
    parallel: Annotated[
        int | None, typer.Option("--parallel", "-P", min=1, max=256, help="Transfers at once")
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="table, json or csv", autocompletion=_complete_output),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or summaries")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="CDIR_URL", help="Talk to the cdir service at this URL"),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit"
        ),
    ] = False,
) -> None:
    G.catalog, G.parallel, G.quiet, G.url = catalog, parallel, quiet, url
    G.set("storage", storage or "")
    G.set("output", output or "table")
