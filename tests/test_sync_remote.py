"""`cdir sync` over a local folder and the five real servers (OpenSSH, SeaweedFS, Azurite,
fake-gcs-server, wsgidav) at once — the sync issue's "done means": a change made on any one
provider behind cdir's back reaches all the others, byte for byte; changes on two keep the
older as a conflict copy everywhere; a file deleted on one is restored; a file dropped into
one is imported and replicated; `cdir rm` removes it from all of them. The bytes are read
back through provider objects of the test's own, not through cdir."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_tree
from tests.remotes import add, raw

pytestmark = pytest.mark.slow
T0 = 1_700_000_000


@pytest.fixture
def six(cli: Any, remotes: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A tree put on laptop (a local folder) and the five servers: name → provider object."""
    assert (
        cli("provider", "add", "laptop", "--kind", "local", "--root", str(tmp_path / "lap")).code
        == 0
    )
    for name, (cfg, _env, _path) in remotes.items():
        assert add(cli, name, cfg).code == 0, name
    src = make_tree(
        tmp_path / "src", {"a.txt": "alpha", "d/b.csv": "x,y\n1,2\n", "c.bin": b"\0" * 300}
    )
    for f in src.rglob("*"):
        os.utime(f, (T0, T0))
    names = ["laptop", *remotes]
    r = cli("put", f"{src}/", "/p", "-r", "--to", ",".join(names))
    assert r.code == 0, r.err
    objs = {"laptop": raw(cli, "laptop", {"kind": "local", "secrets": {}})}
    objs |= {n: raw(cli, n, cfg) for n, (cfg, _e, _p) in remotes.items()}
    yield objs
    for b in objs.values():
        b.close()


def sync(cli: Any) -> dict[str, Any]:
    r = cli("sync", "-o", "json")
    assert r.code == 0, r.err
    return json.loads(r.out)  # type: ignore[no-any-return]


def everywhere(objs: dict[str, Any], rel: str) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for name, b in objs.items():
        try:
            out[name] = b.read_bytes(rel)
        except FileNotFoundError:
            out[name] = None
    return out


def write(b: Any, rel: str, data: bytes) -> None:
    b.put_stream(io.BytesIO(data), rel, size=len(data))


def test_sync_across_a_folder_and_five_servers(
    cli: Any, six: dict[str, Any], tmp_path: Path
) -> None:
    names = list(six)
    assert sync(cli)["changed"] == 0

    # a change on each kind of server in turn reaches all the others
    for name in names:
        data = f"edited on {name}\n".encode()
        write(six[name], "p/a.txt", data)
        got = sync(cli)
        assert (got["changed"], got["copied"], got["failed"]) == (1, 1, 0), (name, got)
        assert everywhere(six, "p/a.txt") == dict.fromkeys(names, data), name

    # changed on two: the newer wins everywhere, the older is kept as a copy everywhere
    lap = tmp_path / "lap/p/d/b.csv"
    lap.write_text("laptop's\n")
    os.utime(lap, (T0 + 60, T0 + 60))  # older than gcs's, written now
    write(six["gcs"], "p/d/b.csv", b"gcs's, newer\n")
    got = sync(cli)
    assert (got["changed"], got["conflicts"], got["failed"]) == (1, 1, 0)
    assert everywhere(six, "p/d/b.csv") == dict.fromkeys(names, b"gcs's, newer\n")
    copy = "p/d/b.conflict-20231114T221420Z-laptop.csv"
    assert everywhere(six, copy) == dict.fromkeys(names, b"laptop's\n")

    # deleted on one outside cdir: restored
    six["azure"].delete("p/c.bin")
    got = sync(cli)
    assert (got["restored"], got["failed"]) == (1, 0)
    assert everywhere(six, "p/c.bin") == dict.fromkeys(names, b"\0" * 300)

    # dropped into one: imported and replicated
    write(six["dav"], "p/new/data.txt", b"from the WebDAV side\n")
    got = sync(cli)
    assert (got["imported"], got["failed"]) == (1, 0)
    assert everywhere(six, "p/new/data.txt") == dict.fromkeys(names, b"from the WebDAV side\n")

    # rm: gone from every provider; and nothing left to do
    assert cli("rm", "/p/new/data.txt").code == 0
    assert everywhere(six, "p/new/data.txt") == dict.fromkeys(names)
    got = sync(cli)
    assert (got["changed"], got["imported"], got["restored"], got["copied"]) == (0, 0, 0, 0)
    status = json.loads(cli("status", "/p", "-r", "-o", "json").out)
    for entry in status:
        assert {x["state"] for x in entry["replicas"]} == {"current"}, entry
        assert {x["provider"] for x in entry["replicas"]} == set(names), entry
