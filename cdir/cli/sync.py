"""`cdir sync` (a pass, a named one-way sync, its status) and `cdir policy`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cdir.cli.app import (
    G,
    _parallel,
    _progress,
    app,
)
from cdir.errors import UsageError


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
