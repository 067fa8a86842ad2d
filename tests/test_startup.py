"""Start-up is part of every command: heavy modules are imported only when used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ["boto3", "botocore", "paramiko", "asyncssh", "azure.storage.blob", "google.cloud.storage", "httpx", "rich"]


def test_ls_imports_no_provider_sdk(tmp_path: Path) -> None:
    code = (
        "import sys, json\n"
        "sys.argv = ['cdir', 'ls', '/']\n"
        "from cdir.cli.main import run\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "CDIR_HOME": str(tmp_path), "CDIR_VAULT_PASSPHRASE": "x"}
    env.pop("CDIR_CATALOG_URL", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []
