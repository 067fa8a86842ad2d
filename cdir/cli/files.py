"""The namespace and transfer commands: mkdir, cd, pwd, ls, status, search, put, get, cp, mv,
rm, replicate, prefer, scan."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cdir.cli.app import (
    G,
    RecursiveOpt,
    ToOpt,
    _names,
    _parallel,
    _progress,
    _report,
    _settings,
    app,
    create_app,
)
from cdir.errors import UsageError


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


# aliases kept for the prior projects' verbs
for alias, fn in (("list", ls_cmd), ("delete", rm_cmd), ("copy", cp_cmd), ("move", mv_cmd)):
    app.command(alias, hidden=True, help=f"Same as `cdir {fn.__name__.removesuffix('_cmd')}`.")(fn)
