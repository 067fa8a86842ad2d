"""`cdir`: the command line, a thin shell over cdir.vdir."""

from __future__ import annotations

import copy
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from cdir import interrupts
from cdir.errors import CdirError, Interrupted, InvalidPath, UsageError

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
from cdir.cli.daemon import daemon_app  # noqa: E402  (it builds on _app, above)

app.add_typer(daemon_app, name="daemon")
from cdir.cli.service import service_app  # noqa: E402  (it builds on _app, above)

app.add_typer(service_app, name="service")


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
            target = None if self.catalog else _service_target(settings, self.url)
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


def _service_target(settings: Any, url: str | None) -> tuple[str, str, bool] | None:
    """(URL, token, whether it is this home's own service) of the service to talk to."""
    from cdir import service

    files = service.Files(settings.home)
    if url:
        tok = os.environ.get(service.ENV_TOKEN) or service.token(files) or ""
        return url.rstrip("/"), tok, False
    found = service.client_target(files)
    if found is None:
        return None
    own = not os.environ.get(service.ENV_URL)
    return found[0], found[1], own


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


# --- namespace --------------------------------------------------------------------------------
@app.command("mkdir")
def mkdir_cmd(
    paths: Annotated[list[str], typer.Argument(help="Virtual directories to create")],
    parents: Annotated[
        bool, typer.Option("--parents", "-p", help="Create parents; no error if it exists")
    ] = False,
) -> None:
    """Create virtual directories."""
    v = G.open()
    for p in paths:
        e = v.mkdir(p, parents=parents)
        if not G.quiet:
            typer.echo(f"created {e.path}")


@create_app.command("dir")
def create_dir_cmd(paths: Annotated[list[str], typer.Argument(help="Virtual directories")]) -> None:
    """Create virtual directories and their parents."""
    mkdir_cmd(paths, parents=True)


@app.command("cd")
def cd_cmd(path: Annotated[str, typer.Argument(help="Virtual directory")] = "/") -> None:
    """Change the current virtual directory (kept between invocations)."""
    typer.echo(G.open().cd(path))


@app.command("pwd")
def pwd_cmd() -> None:
    """Print the current virtual directory."""
    from cdir.vdir.state import current_dir

    typer.echo(current_dir(_settings(G.catalog)))


@app.command("ls")
def ls_cmd(
    path: Annotated[str, typer.Argument(help="Virtual path")] = ".",
    long: Annotated[
        bool, typer.Option("--long", "-l", help="Size, time, generation, replicas")
    ] = False,
    recursive: RecursiveOpt = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most N entries (a page)")
    ] = None,
    after: Annotated[
        str | None, typer.Option("--after", help="Start after this path (next page)")
    ] = None,
) -> None:
    """List a virtual directory."""
    fmt = G.output
    v = G.open()
    listing = v.ls(path, recursive=recursive, limit=limit, after=after, replicas=long)
    if fmt == "table" and not long:
        base = v.path(path)
        out = sys.stdout
        for e in listing.entries:
            name = e.path if recursive or e.path == base else e.path.rsplit("/", 1)[-1]
            out.write(name + ("/" if e.kind == "dir" else "") + "\n")
    elif fmt == "table":
        from cdir.cli.output import emit, replicas_cell

        dicts = [e.model_dump() for e in listing.entries]
        rows = [{**d, "replicas": replicas_cell(d["replicas"], ",")} for d in dicts]
        emit(rows, fmt, ["kind", "size", "mtime", "generation", "replicas", "path"])
    else:  # json/csv carry what the table shows (with -l, the replicas)
        from cdir.cli.output import emit

        columns = ["path", "kind", "size", "mtime", "generation", "hash"]
        emit(listing.entries, fmt, [*columns, "replicas"] if long else columns)
    if listing.next_cursor:
        typer.echo(f"more: --after '{listing.next_cursor}'", err=True)


# "last checked": when cdir last wrote, read or found a difference in the replica (a sync pass
# that finds it unchanged leaves the row alone: `cdir daemon status` says when each provider
# was last listed)
STATUS_HEADERS = [
    "path", "gen", "provider", "state", "holds gen", "size", "last checked", "last error"
]  # fmt: skip


@app.command("status")
def status_cmd(
    path: Annotated[str, typer.Argument(help="Virtual path")] = ".",
    recursive: RecursiveOpt = False,
) -> None:
    """Every replica of every file and its state."""
    from cdir.cli.output import emit

    fmt = G.output
    entries = G.open().status(path, recursive=recursive)
    if fmt == "table":
        rows = [
            {
                "path": e.path + (" (removed)" if e.deleted else ""),
                "generation": e.generation,
                "provider": r.provider,
                "state": r.state,
                "held": r.generation,
                "size": r.size,
                "checked": r.last_checked,
                "error": r.last_error,
            }
            for e in entries
            for r in (e.replicas or [])
        ] + [
            {"path": e.path, "generation": e.generation, "provider": "-", "state": "no replica"}
            for e in entries
            if not e.replicas
        ]
        emit(
            rows,
            fmt,
            ["path", "generation", "provider", "state", "held", "size", "checked", "error"],
            headers=STATUS_HEADERS,
        )
    else:
        emit(entries, fmt, ["path", "kind", "size", "generation", "replicas"])


@app.command("search")
def search_cmd(
    args: Annotated[list[str], typer.Argument(help="[DIR] PATTERN (glob: *, ?, [abc])")],
    recursive: RecursiveOpt = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
) -> None:
    """Find entries by name in the catalog (providers are never listed)."""
    if len(args) > 2:
        raise UsageError("search takes [DIR] PATTERN")
    under, pattern = (args[0], args[1]) if len(args) == 2 else (".", args[0])
    fmt = G.output
    found = G.open().search(pattern, under, recursive=recursive, limit=limit)
    if fmt == "table":
        for e in found:
            sys.stdout.write(e.path + ("/" if e.kind == "dir" else "") + "\n")
    else:
        from cdir.cli.output import emit

        emit(found, fmt, ["path", "kind", "size", "mtime", "generation"])


@app.command("put")
def put_cmd(
    args: Annotated[
        list[str], typer.Argument(help="SRC... DST: local files/dirs, then a virtual path")
    ],
    recursive: RecursiveOpt = False,
    to: ToOpt = None,
    follow_links: Annotated[
        bool,
        typer.Option("--follow-links", "-L", help="Follow symbolic links (loops are detected)"),
    ] = False,
) -> None:
    """Upload local files or trees (rsync-like: identical files are skipped). A trailing
    '/' on a source directory puts its contents. Entries that cannot be put (unreadable, a
    name that is not UTF-8) are reported one by one; links (unless followed), FIFOs and
    devices are skipped and counted."""
    if len(args) < 2:
        raise UsageError("put needs SRC... DST")
    rep = G.open().put(
        args[:-1],
        args[-1],
        to=_names(to),
        recursive=recursive,
        parallel=_parallel(),
        progress=_progress(),
        follow_links=follow_links,
    )
    _report("put", rep)


@app.command("get")
def get_cmd(
    args: Annotated[
        list[str], typer.Argument(help="SRC... DEST: virtual paths, then a local path")
    ],
    recursive: RecursiveOpt = False,
    from_: Annotated[
        str | None, typer.Option("--from", help="Read from this provider only")
    ] = None,
) -> None:
    """Download files or trees from the best current replica."""
    if len(args) < 2:
        raise UsageError("get needs SRC... DEST")
    prov = from_ or (G.storage[0] if G.storage else None)
    rep = G.open().get(
        args[:-1],
        args[-1],
        recursive=recursive,
        parallel=_parallel(),
        provider=prov,
        progress=_progress(),
    )
    _report("get", rep)


@app.command("cp")
def cp_cmd(
    src: Annotated[str, typer.Argument(help="Virtual source")],
    dst: Annotated[str, typer.Argument(help="Virtual destination")],
    recursive: RecursiveOpt = False,
    to: ToOpt = None,
) -> None:
    """Copy within the virtual directory (server-side where the provider can)."""
    rep = G.open().cp(
        src,
        dst,
        recursive=recursive,
        to=_names(to),
        parallel=_parallel(),
        progress=_progress(),
    )
    _report("cp", rep)


@app.command("mv")
def mv_cmd(
    src: Annotated[str, typer.Argument(help="Virtual source")],
    dst: Annotated[str, typer.Argument(help="Virtual destination")],
) -> None:
    """Move or rename a file or directory, on every provider that holds it."""
    _report("mv", G.open().mv(src, dst, parallel=_parallel(), progress=_progress()))


@app.command("rm")
def rm_cmd(
    paths: Annotated[list[str], typer.Argument(help="Virtual paths")],
    recursive: RecursiveOpt = False,
) -> None:
    """Delete files (and with -r directories) from the catalog and every provider."""
    _report(
        "rm",
        G.open().rm(paths, recursive=recursive, parallel=_parallel(), progress=_progress()),
    )


@app.command("replicate")
def replicate_cmd(
    path: Annotated[str, typer.Argument(help="Virtual path")],
    to: ToOpt = None,
    recursive: RecursiveOpt = False,
) -> None:
    """Put a current copy of PATH on more providers."""
    names = _names(to)
    if not names:
        raise UsageError("replicate needs --to PROVIDER[,PROVIDER…]")
    _report(
        "replicate",
        G.open().replicate(
            path, names, recursive=recursive, parallel=_parallel(), progress=_progress()
        ),
    )


@app.command("prefer")
def prefer_cmd(
    path: Annotated[str, typer.Argument(help="Virtual path (directories pass it down)")],
    provider: Annotated[
        str | None, typer.Argument(help="Provider to read from first; omit to clear")
    ] = None,
) -> None:
    """Set the provider that reads of PATH should use first."""
    e = G.open().prefer(path, provider)
    typer.echo(f"{e.path}: preferred provider {e.preferred_provider or 'none'}")


@app.command("scan")
def scan_cmd(
    provider: Annotated[str, typer.Argument(help="Provider to import from")],
    path: Annotated[str, typer.Argument(help="Virtual path to scan")] = "/",
) -> None:
    """Import into the catalog what a provider already holds."""
    _report("scan", G.open().scan(provider, path))


@app.command("sync")
def sync_cmd(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="[PATH]: one pass over PATH (default /); SOURCE DESTINATION: a one-way sync "
            "of a local folder or virtual path into another; `status`: the named syncs",
            show_default=False,
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name of a one-way sync")] = None,
    queue: Annotated[
        bool, typer.Option("--async", help="Leave a one-way sync to the daemon; return at once")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Print what would be done; change nothing")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Go on past the safety rails (--max-delete, empty listings)"),
    ] = False,
    max_delete: Annotated[
        float,
        typer.Option(
            "--max-delete",
            min=0,
            max=100,
            help="Stop if a pass would overwrite or delete more than this % of a provider's files",
        ),
    ] = 50,
) -> None:
    """Sync: changes made on any provider reach every other (one pass now), or a named
    one-way sync between a local folder and a virtual path, or `sync status`."""
    args = args or []
    if args == ["status"]:
        return _sync_status(name)
    if len(args) == 2:
        return _sync_job(args[0], args[1], name, queue)
    if len(args) > 2:
        raise UsageError("sync takes [PATH], SOURCE DESTINATION, or status")
    if name or queue:
        raise UsageError("--name and --async are for a one-way sync: cdir sync SOURCE DESTINATION")
    rep = G.open().sync(
        args[0] if args else "/",
        only=G.storage,  # --storage/--provider: list only these (the others as recorded)
        dry_run=dry_run,
        force=force,
        max_delete=max_delete / 100,
        parallel=_parallel(),
        progress=_progress(),
    )
    _sync_summary(rep)
    if rep.failed:
        raise typer.Exit(1)


JOB_COLUMNS = ["id", "name", "source", "destination", "state", "files_done", "files_failed"]


def _sync_job(source: str, destination: str, name: str | None, queue: bool) -> None:
    from cdir.cli.output import emit

    job = G.open().sync_to(
        source, destination, name=name, queue=queue, parallel=_parallel(), progress=_progress()
    )
    if G.output != "table":
        emit([job], G.output, [*JOB_COLUMNS, "bytes_done", "started_at", "finished_at"])
    elif not G.quiet:
        label = f"sync job {job.name or job.id}: {job.source} → {job.destination}"
        if job.state == "queued":
            typer.echo(f"{label}: queued for the daemon (see `cdir sync status`)")
        else:
            typer.echo(
                f"{label}: {job.state}, {job.files_done} file(s) copied, {job.files_failed} failed"
            )
    for err in job.errors[:20]:
        typer.echo(f"cdir: error: {err}", err=True)
    if job.state == "failed":
        raise typer.Exit(1)


def _sync_status(name: str | None) -> None:
    from cdir.cli.output import emit

    emit(
        G.open().jobs(name),
        G.output,
        [*JOB_COLUMNS, "bytes_done", "started_at", "finished_at"],
        headers=[
            "id",
            "name",
            "source",
            "destination",
            "state",
            "files",
            "failed",
            "bytes",
            "started",
            "finished",
        ],
        sizes=("bytes_done",),
    )


def _sync_summary(rep: Any) -> None:
    from cdir.cli.output import human_size

    if G.output == "json":
        typer.echo(rep.model_dump_json(indent=2))
    elif not G.quiet:
        for line in rep.plan:
            typer.echo(line)
        what = "sync --dry-run (nothing done)" if rep.dry_run else "sync"
        typer.echo(
            f"{what}: checked {rep.checked} file(s) on {', '.join(rep.providers) or 'no provider'}"
            f": {rep.changed} changed, {rep.imported} new, {rep.conflicts} conflict(s), "
            f"{rep.restored} restored, {rep.deleted} deleted; copied {rep.copied} file(s), "
            f"{human_size(rep.bytes)} in {rep.seconds:.2f} s (failed {rep.failed})"
        )
    for err in rep.errors[:20]:
        typer.echo(f"cdir: error: {err}", err=True)
    if len(rep.errors) > 20:
        typer.echo(f"cdir: … and {len(rep.errors) - 20} more error(s)", err=True)


@app.command("policy")
def policy_cmd(
    path: Annotated[str, typer.Argument(help="Virtual directory (its subdirectories inherit)")],
    deletes: Annotated[
        str | None,
        typer.Option(
            "--deletes",
            help="restore: a file deleted outside cdir comes back; propagate: it is deleted "
            "everywhere",
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove this directory's own policy")
    ] = False,
) -> None:
    """Show or set how sync treats files deleted outside cdir below PATH."""
    v = G.open()
    got = v.policy(path, deletes, clear=clear)
    typer.echo(f"{v.path(path)}: deletes {got}")


# aliases kept for the prior projects' verbs
for alias, fn in (("list", ls_cmd), ("delete", rm_cmd), ("copy", cp_cmd), ("move", mv_cmd)):
    app.command(alias, hidden=True, help=f"Same as `cdir {fn.__name__.removesuffix('_cmd')}`.")(fn)


# --- providers --------------------------------------------------------------------------------
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


for _info in app.registered_commands:
    if _info.name in GC_AFTER:
        _info.callback = _then_gc(_info.callback)


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
    import os

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


# --- entry point --------------------------------------------------------------------------------
def run() -> None:
    """Console entry point: one-line errors and exit codes, never a traceback for user errors.
    Typer reports its own usage errors (exit 2); cdir errors are reported here."""
    interrupts.install()
    try:
        try:
            app(prog_name="cdir")  # also under `python -m cdir`: completion keys on the name
        except _Stopped as stop:
            raise stop.cause from None
    except Interrupted as exc:
        if exc.report is not None:  # what was done (and recorded) before the stop
            _summary(str(exc).split(" ", 1)[0], exc.report)
        typer.echo(
            "cdir: interrupted (what the providers confirmed is recorded; run the "
            "same command again to finish)",
            err=True,
        )
        sys.exit(130)
    except (UsageError, InvalidPath) as exc:
        typer.echo(f"cdir: error: {exc}", err=True)
        sys.exit(2)
    except CdirError as exc:
        typer.echo(f"cdir: error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("cdir: interrupted", err=True)
        sys.exit(130)
    finally:
        _close()


def _close() -> None:
    if G.vdir is not None:
        G.vdir.close()
        G.vdir = None


if __name__ == "__main__":
    run()
