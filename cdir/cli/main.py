"""`cdir`: the command line, a thin shell over cdir.vdir (or over a running service's REST
API, see `client`). The commands are registered by importing their modules, in the order
`cdir --help` lists them."""

from __future__ import annotations

import sys

import typer

from cdir import interrupts
from cdir.cli import files, providers, sync, upkeep  # noqa: F401 - they register the commands
from cdir.cli.app import G, _Stopped, _summary, app
from cdir.cli.daemon import daemon_app
from cdir.cli.service import service_app
from cdir.errors import CdirError, Interrupted, InvalidPath, UsageError

app.add_typer(daemon_app, name="daemon")
app.add_typer(service_app, name="service")
upkeep.gc_after_write_commands()

__all__ = ["G", "app", "run"]


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
