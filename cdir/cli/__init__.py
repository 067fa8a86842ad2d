"""The `cdir` command line (Typer + rich), a shell over cdir.vdir."""
