"""The tracker's "the core loses nothing": four `cdir` processes for half a minute on one
tree and one catalog (SQLite, then PostgreSQL), each looping put → mv away → mv back →
rm -r → put. Then a last, quiet put of the tree, and the catalog and the provider folders
must agree: every file on a provider is known to the catalog, every replica marked current
holds exactly the source's bytes, and nothing crashed on the way.

Commands of different processes race on purpose, and some lose; the errors a loser may
print are listed in LEGIT with the race that causes each. Anything else — a traceback, an
exit code other than 0 or 1, an error line not in LEGIT, a temporary left behind — fails.
Any inconsistency between the catalog and the folders fails too. An rm or mv waits for the
commands working below its paths (leases, catalog/leases.py), so none deletes or moves a
file that another is writing; the races this used to lose have a reproduction each in
tests/test_faults.py (`test_a_command_on_the_tree_a_put_is_writing`,
`test_rm_of_the_tree_a_mv_is_moving`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.processes import (
    TMP_PREFIX,
    Cdir,
    Row,
    cdir_env,
    inconsistencies,
    make_files,
    no_traceback,
)

pytestmark = pytest.mark.slow

WORKERS = 4
LOOP_S = 30.0  # each worker starts no command after this
FILES = 1500  # each worker's put takes long enough for the others to run into it

# One worker: rounds of commands until the time is up; one JSON line per command.
WORKER = r"""
import itertools, json, subprocess, sys, time
python, src, seconds, me = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
ROUND = [
    ("put", src + "/", "/t", "-r", "--to", "laptop,archive"),
    ("mv", "/t", "/moved"),
    ("mv", "/moved", "/t"),
    ("rm", "-r", "/t"),
    ("put", src + "/", "/t", "-r", "--to", "laptop,archive"),
]
end = time.monotonic() + seconds
for args in itertools.cycle(ROUND):
    if time.monotonic() > end:
        break
    r = subprocess.run([python, "-m", "cdir", "-q", *args], capture_output=True, text=True)
    print(json.dumps({"worker": me, "args": args, "code": r.returncode, "err": r.stderr}),
          flush=True)
"""

# The errors a command may print because another process got there first.
LEGIT = {
    # mv or rm of a path that another process moved or removed a moment before
    "gone": re.compile(r"no such file or directory: /(t|moved)"),
    # mv /moved /t when /t exists again (it moves into it) and /t/moved too
    "taken": re.compile(r"destination exists: /\S+ \(remove it first\)"),
}
MORE = re.compile(r"cdir: … and \d+ more error\(s\)")


def source_of(files: dict[str, bytes]) -> Callable[[Row], bytes | None]:
    """The source bytes a catalog path stands for: moves may nest the tree (`mv /moved /t`
    into an existing /t gives /t/moved/…), and no source folder is named t or moved."""

    def source(r: Row) -> bytes | None:
        parts = r.path.strip("/").split("/")
        while parts and parts[0] in ("t", "moved"):
            parts.pop(0)
        return files.get("/".join(parts))

    return source


@pytest.mark.timeout(180)
def test_four_processes_lose_nothing(tmp_path: Path, catalog_url: str) -> None:
    c = Cdir(tmp_path / "home", catalog_url)
    for name in ("laptop", "archive"):
        c.add_local(name, tmp_path / name)
    src = tmp_path / "src"
    files = make_files(src, FILES, size=1024, dirs=4)

    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, sys.executable, str(src), str(LOOP_S), f"w{i}"],
            env=cdir_env(c.home, catalog_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for i in range(WORKERS)
    ]
    runs = []
    for w in workers:
        out, err = w.communicate(timeout=LOOP_S + 120)
        assert (w.returncode, err) == (0, "")
        runs += [json.loads(line) for line in out.splitlines()]

    codes: Counter[tuple[str, int]] = Counter()
    races: Counter[str] = Counter()
    unexpected = []
    for r in runs:
        codes[(r["args"][0], r["code"])] += 1
        no_traceback(r["err"])
        assert r["code"] in (0, 1), r
        for line in r["err"].splitlines():
            if MORE.fullmatch(line):
                continue
            msg = line.removeprefix("cdir: error: ")
            kind = next((k for k, rx in LEGIT.items() if rx.fullmatch(msg)), None)
            if kind is None or msg == line:
                unexpected.append(f"{' '.join(r['args'])}: {line}")
            else:
                races[kind] += 1
    print(f"commands (verb, exit code): {dict(codes)}; races lost: {dict(races)}")
    assert unexpected == []
    for verb in ("put", "mv", "rm"):  # every kind of command also got through
        assert codes[(verb, 0)] > 0, codes

    last = c.run("-q", "put", f"{src}/", "/t", "-r", "--to", "laptop,archive", code=None)
    assert (last.returncode, last.stderr) == (0, "")
    st = c.status("/t")
    for rel in files:  # the tree is whole where it was put
        e = st[f"/t/{rel}"]
        assert {n: r["state"] for n, r in e["replicas"].items()} == {
            "laptop": "current",
            "archive": "current",
        }
    found = inconsistencies(c, source_of(files))
    assert not [p for p in found if TMP_PREFIX in p], found
    assert found == [], f"{len(found)} inconsistencies: {found[:5]}"
