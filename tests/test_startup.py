"""Start-up is part of every command: heavy modules are imported only when used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = [
    "boto3",
    "botocore",
    "paramiko",
    "asyncssh",
    "azure.storage.blob",
    "google.cloud.storage",
    "httpx",
    "rich",
]
ORM = ["sqlalchemy", "sqlmodel"]


def _run(tmp_path: Path, args: list[str], watch: list[str]) -> tuple[str, list[str]]:
    """Run `cdir ARGS` in a fresh interpreter: its output and which of `watch` it imported."""
    code = (
        "import sys, json\n"
        f"sys.argv = ['cdir', *{args!r}]\n"
        "from cdir.cli.main import run\n"
        "try:\n    run()\nexcept SystemExit as exc:\n    assert exc.code in (None, 0), exc.code\n"
        f"print(json.dumps([m for m in {watch!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "CDIR_HOME": str(tmp_path), "CDIR_VAULT_PASSPHRASE": "x"}
    env.pop("CDIR_CATALOG_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    *printed, modules = out.stdout.splitlines()
    return "\n".join(printed), json.loads(modules)


def test_ls_imports_no_provider_sdk(tmp_path: Path) -> None:
    assert _run(tmp_path, ["ls", "/"], HEAVY)[1] == []


@pytest.mark.parametrize(
    ("args", "shows"),
    [
        (["--help"], "Usage: cdir [OPTIONS] COMMAND [ARGS]..."),
        (["--version"], "cdir 0."),
        (["ls", "--help"], "Usage: cdir ls [OPTIONS] [path]"),
        (["pwd"], "/"),
    ],
    ids=" ".join,
)
def test_light_commands_import_no_orm_and_no_sdk(
    tmp_path: Path, args: list[str], shows: str
) -> None:
    """--help, --version and pwd answer without the catalog's ORM, a provider SDK or rich."""
    printed, imported = _run(tmp_path, args, ORM + HEAVY)
    assert printed.startswith(shows)
    assert imported == []
