"""Regenerate docs/cli.md: run every documented command in a fresh home and keep its real output.

.venv/bin/python scripts/gen_cli_doc.py
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CDIR = str(ROOT / ".venv/bin/cdir")

SECTIONS: list[tuple[str, str, list[str]]] = [
    (
        "Providers",
        "Register storage; secrets go to the encrypted vault (`--secret NAME` prompts).",
        [
            "cdir provider add laptop --kind local --root $W/laptop",
            "cdir provider add archive --kind local --root $W/archive --priority 10",
            "cdir provider list",
            "cdir prov ls -o json",
            "cdir provider test laptop",
            "cdir provider show archive",
        ],
    ),
    (
        "put",
        "Upload files or trees, rsync-like. A trailing `/` on a source directory puts its contents.",
        [
            "cdir put $W/data/ /proj/data -r --to laptop,archive --parallel 4",
            "cdir put $W/data/ /proj/data -r --to laptop,archive",
            "cdir --storage=laptop put $W/data/raw /flat",
            "cdir put $W/data/raw /flat2 --storage=laptop -q",
            "cdir ls /flat",
        ],
    ),
    (
        "ls, status, search",
        "Reads answered by the catalog alone.",
        [
            "cdir ls /proj/data",
            "cdir ls /proj/data -l",
            "cdir list /proj --recursive --output=json",
            "cdir ls /proj -r -o csv",
            "cdir ls /proj/data/raw -l -o csv",
            "cdir status /proj -r",
            "cdir status /proj -r -o csv",
            "cdir search / '*.csv' --recursive",
            "cdir search /proj train.csv -r",
        ],
    ),
    (
        "mkdir, cd, pwd",
        "The current directory is kept between invocations.",
        [
            "cdir mkdir /scratch",
            "cdir create dir /results/2026/nov",
            "cdir cd /results/2026",
            "cdir pwd",
            "cdir ls",
            "cdir cd /",
        ],
    ),
    (
        "get",
        "Download from the best current replica (preferred provider first, then priority).",
        [
            "cdir get /proj/data/raw/train.csv $W/out/",
            "cdir --parallel=4 get /proj/data $W/out/tree --recursive",
            "cdir get /proj/data/raw/train.csv $W/out/ --from archive",
        ],
    ),
    (
        "cp, mv, replicate, prefer",
        "Copies are server-side within a provider and streamed across providers.",
        [
            "cdir copy /proj/data/raw /proj/raw-copy --recursive",
            "cdir mv /proj/raw-copy /scratch/raw",
            "cdir put $W/data/README.txt /notes.txt --to laptop",
            "cdir replicate /notes.txt --to archive",
            "cdir prefer /proj archive",
            "cdir status /notes.txt",
        ],
    ),
    (
        "rm, scan",
        "rm marks the catalog first, then deletes every replica; scan imports what a provider holds.",
        [
            "cdir rm /notes.txt",
            "cdir delete /scratch --recursive",
            "cdir scan laptop",
        ],
    ),
    (
        "Changing a provider",
        "`provider set` changes options (`-O NAME=` removes one) and secrets (`-S`, to the vault); the provider is checked with them before anything is stored, and every replica is kept. `provider pin` trusts an SSH server's new host key after showing the old and the new fingerprint (`--yes` to skip the question); see docs/providers.md.",
        [
            "cdir provider set laptop -O max_parallel=2 --priority 5",
            "cdir provider set laptop -O max_parallel=many",
            "cdir provider set laptop -O max_parallel=",
            "cdir provider set laptop -O root=/elsewhere",
            "cdir status /proj/data/raw",
            "cdir provider pin laptop",
        ],
    ),
    (
        "sync",
        "One pass: changes made inside a provider's folder behind cdir's back reach every other provider; a version changed on two is kept as a conflict copy (see docs/sync.md). `cdir sync SOURCE DEST` is a named one-way sync; the daemon runs passes on a schedule (docs/daemon.md).",
        [
            "echo 'id,value' > $W/laptop/proj/data/raw/train.csv",
            "cdir sync --dry-run",
            "cdir sync",
            "cdir policy /proj --deletes propagate",
            "cdir policy /proj --clear",
            "cdir sync $W/data /mirror --name nightly",
            "cdir sync /mirror local:$W/back --name restore-test",
            "cdir sync status",
            "cdir sync /proj --max-delete 150",
        ],
    ),
    (
        "gc",
        "Purges tombstones deleted more than `--older-than` days ago (default `CDIR_TOMBSTONE_DAYS`, 90) whose replicas are all deleted, and journal events older than `--events-older-than` days (`CDIR_EVENT_DAYS`, 90). Tombstones whose delete failed somewhere are kept (and counted), with their parents. Write commands (put, cp, mv, rm, replicate, scan) run a gc pass on their own, at most once a day.",
        [
            "cdir gc --dry-run",
            "cdir gc --older-than 0 --dry-run",
            "cdir gc --older-than 0",
            "cdir gc -o json",
        ],
    ),
    (
        "service",
        "The REST service in the background (docs/api.md); while it runs, commands of this home are its clients, with the same output. `--no-daemon` here because the sync section above has its own.",
        [
            "cdir service start --port 18931 --no-daemon",
            "cdir service status",
            "cdir ls /proj/data/raw",
            'curl -s -H "Authorization: Bearer $(cdir service token)" http://127.0.0.1:18931/api/v1/files/proj/data/raw/test.csv',
            "curl -s http://127.0.0.1:18931/api/v1/entries/proj",
            "cdir service stop",
        ],
    ),
    (
        "Forgetting a provider",
        "The files stay where they are; a provider that holds replicas needs --force.",
        [
            "cdir provider remove archive",
            "cdir provider remove archive --force",
            "cdir provider list",
        ],
    ),
    (
        "config",
        "Settings and every provider's options; secrets masked.",
        [
            "cdir config list",
        ],
    ),
    (
        "Secrets from files",
        "`--secret NAME=@FILE` reads a key file; one trailing line break (`echo`'s) is dropped.",
        [
            "echo 'app-password-1234' > $W/dav.pw",
            "cdir provider add dav --kind webdav --root / --no-check -O url=https://dav.example.com/dav -O username=me -S password=@$W/dav.pw",
            "cdir provider list -o csv",
            "cdir provider remove dav",
        ],
    ),
    (
        "Errors",
        "One line on stderr and a non-zero exit code; never a traceback.",
        [
            "cdir ls /missing",
            "cdir cd ../..",
            "cdir put $W/nope /x",
            "cdir put $W/data/README.txt /x --to nowhere",
            "cdir mkdir /scratch2 && cdir mkdir /scratch2",
            "cdir provider add laptop --kind local --root /tmp/x",
            "cdir rm /proj",
            "cdir p /",
            "cdir ls /data/$(printf 'n%.0s' {1..300})",
        ],
    ),
    (
        "Help",
        "Every command lists its own options and the global ones.",
        [
            "cdir ls --help",
        ],
    ),
]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        w = Path(tmp)
        env = {
            **os.environ,
            "CDIR_HOME": str(w / "home"),
            "CDIR_VAULT_PASSPHRASE": "doc",
            "COLUMNS": "120",
        }
        env.pop("CDIR_CATALOG_URL", None)
        for rel, text in {
            "data/raw/train.csv": "id,v\n1,2\n",
            "data/raw/test.csv": "id,v\n3,4\n",
            "data/README.txt": "notes\n",
        }.items():
            (w / rel).parent.mkdir(parents=True, exist_ok=True)
            (w / rel).write_text(text)
        (w / "out").mkdir()
        lines = [
            "# The `cdir` command line",
            "",
            "Generated by `scripts/gen_cli_doc.py`: every block is a real run, in order, in a fresh",
            "home (`$W` is a scratch folder). Global options, before or after the command",
            "(`cdir -o json ls /` is `cdir ls / -o json`): `--storage/--provider P1,P2`,",
            "`--parallel/-P N`, `--output/-o table|json|csv`, `--catalog URL`, `--quiet/-q`; given",
            "twice, the later one wins. Commands accept any unique prefix (`cdir prov ls`); the prior",
            "projects' verbs `list`, `delete`, `copy`, `move` and `create dir` work too. Shell",
            "completion: `cdir --install-completion` (bash, zsh, fish, PowerShell), or",
            "`cdir --show-completion` to see the script.",
            "",
        ]
        for title, intro, cmds in SECTIONS:
            lines += [f"## {title}", "", intro, ""]
            for cmd in cmds:
                shown = cmd
                real = cmd.replace("$W", str(w))
                proc = subprocess.run(
                    ["bash", "-c", real.replace("cdir ", f"{shlex.quote(CDIR)} ")],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=w,
                )
                out = (proc.stdout + proc.stderr).replace(str(w), "$W").rstrip()
                lines += ["```console", f"$ {shown}"] + ([out] if out else [])
                if proc.returncode:
                    lines.append(f"# exit code {proc.returncode}")
                lines += ["```", ""]
        (ROOT / "docs/cli.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
