from cdir.cli.main import run

run()
