"""The `cdir` command line, run through its real entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_tree

TREE = {"a/a.txt": "A", "a/b/b.txt": "BB", "a/b/c/c.txt": "CCC"}


@pytest.fixture
def two(cli: Any, tmp_path: Path) -> Any:
    """A home with providers `laptop` and `archive` (local folders)."""
    assert (
        cli("provider", "add", "laptop", "--kind", "local", "--root", str(tmp_path / "laptop")).code
        == 0
    )
    assert (
        cli(
            "provider", "add", "archive", "--kind", "local", "--root", str(tmp_path / "archive")
        ).code
        == 0
    )
    return cli


def test_prior_project_scenario(two: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the prior projects' own tests tried, end to end."""
    cli = two
    make_tree(tmp_path, TREE)
    monkeypatch.chdir(tmp_path)
    # without --recursive only the top-level file lands
    r = cli("--storage=laptop", "put", "a", "/flat")
    assert r.code == 0, r.err
    assert cli("list", "/flat", "--recursive").out.split() == ["/flat/a.txt"]
    # with it, the whole tree
    r = cli("--storage=laptop", "put", "a", "/tree", "--recursive")
    assert r.code == 0 and "put: 3 file(s)" in r.out
    listed = json.loads(cli("list", "/tree", "--recursive", "--output=json").out)
    assert [e["path"] for e in listed if e["kind"] == "file"] == [
        "/tree/a.txt",
        "/tree/b/b.txt",
        "/tree/b/c/c.txt",
    ]
    # search finds it
    assert cli("search", "/", "a.txt", "--recursive").out.split() == ["/flat/a.txt", "/tree/a.txt"]
    # get of a file into a directory keeps its name
    out = tmp_path / "out"
    out.mkdir()
    assert cli("--parallel=4", "get", "/tree/b/c/c.txt", str(out)).code == 0
    assert (out / "c.txt").read_text() == "CCC"
    assert cli("--parallel=4", "get", "/tree", str(tmp_path / "back"), "--recursive").code == 0
    assert (tmp_path / "back/b/c/c.txt").read_text() == "CCC"
    # put over an existing file updates it: new generation on all replicas
    assert cli("replicate", "/tree/a.txt", "--to", "archive").code == 0
    (tmp_path / "a/a.txt").write_text("A, second version")
    assert cli("put", "a/a.txt", "/tree/a.txt").code == 0
    st = json.loads(cli("status", "/tree/a.txt", "-o", "json").out)[0]
    assert st["generation"] == 2
    assert {(r["provider"], r["state"], r["generation"]) for r in st["replicas"]} == {
        ("laptop", "current", 2),
        ("archive", "current", 2),
    }
    assert (tmp_path / "archive/tree/a.txt").read_text() == "A, second version"
    # copy and delete with the old verbs
    assert cli("copy", "/tree", "/tree2", "--recursive").code == 0
    assert cli("delete", "/tree2", "--recursive").code == 0
    assert cli("ls", "/").out.split() == ["flat/", "tree/"]


def test_put_to_two_providers_and_status(two: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "data", {"x.csv": "1,2", "sub/y.csv": "3,4"})
    r = two("put", f"{tmp_path}/data/", "/proj/data", "-r", "--to", "laptop,archive")
    assert r.code == 0, r.err
    table = two("status", "/proj", "-r").out
    assert table.count("current") == 4
    csv_out = two("status", "/proj/data/x.csv", "-o", "csv").out.splitlines()
    assert csv_out[0] == "path,kind,size,generation,replicas"


def test_vdir_verbs_mkdir_cd_ls_pwd(two: Any) -> None:
    assert two("mkdir", "/p").out == "created /p\n"
    assert two("create", "dir", "/q/r/s").code == 0
    assert two("cd", "/q/r").out == "/q/r\n"
    assert two("pwd").out == "/q/r\n"  # kept between invocations
    assert two("ls").out == "s/\n"
    assert two("mkdir", "t").out == "created /q/r/t\n"
    assert two("cd", "..").out == "/q\n"


def test_unique_prefixes(two: Any) -> None:
    assert "laptop" in two("prov", "ls").out
    assert two("st", "/").code == 0  # status
    r = two("p", "/")
    assert r.code == 2 and "ambiguous" in r.err


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (
            ["ls", "/a\x01b"],
            "cdir: error: invalid path '/a\\x01b': control character '\\x01' not allowed\n",
            2,
        ),
        (["cd", "../.."], "cdir: error: invalid path '../..': goes above the root\n", 2),
        (["ls", "/missing"], "cdir: error: no such file or directory: /missing\n", 1),
        (
            ["put", "/no/such/file", "/x"],
            "cdir: error: no such local file or directory: /no/such/file\n",
            1,
        ),
        (
            ["put", "/etc/hostname", "/x", "--to", "nope"],
            "cdir: error: unknown provider 'nope' (see `cdir provider list`)\n",
            1,
        ),
        (
            ["--storage=nope", "put", "/etc/hostname", "/x"],
            "cdir: error: unknown provider 'nope' (see `cdir provider list`)\n",
            1,
        ),
        (
            ["provider", "show", "nope"],
            "cdir: error: unknown provider 'nope' (see `cdir provider list`)\n",
            1,
        ),
        (["get", "/missing", "/tmp"], "cdir: error: no such file or directory: /missing\n", 1),
        (["rm", "/missing"], "cdir: error: no such file or directory: /missing\n", 1),
        (
            ["provider", "add", "laptop", "--kind", "local", "--root", "/tmp/x"],
            "cdir: error: provider 'laptop' already exists\n",
            1,
        ),
        (
            ["provider", "add", "z", "--kind", "ftp", "--root", "/"],
            "cdir: error: unknown provider kind 'ftp' (known: azure, gcs, local, memory, s3, sftp, webdav)\n",
            2,
        ),
        (
            ["ls", "-o", "xml"],
            "cdir: error: unknown output format 'xml': use table, json or csv\n",
            2,
        ),
        (["put", "one-arg"], "cdir: error: put needs SRC... DST\n", 2),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(
    two: Any, args: list[str], message: str, code: int
) -> None:
    r = two(*args)
    assert (r.code, r.err) == (code, message)
    assert "Traceback" not in r.out + r.err


def test_duplicate_directory(two: Any) -> None:
    two("mkdir", "/d")
    r = two("mkdir", "/d")
    assert (r.code, r.err) == (1, "cdir: error: directory exists: /d\n")


def test_vault_keeps_secrets_out_of_the_catalog_and_config_list(
    cli: Any, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-password-value"
    r = cli(
        "provider",
        "add",
        "box",
        "--kind",
        "webdav",
        "--root",
        "/",
        "--no-check",
        "-O",
        "url=http://127.0.0.1:9/dav",
        "-O",
        "username=u",
        "-O",
        f"password={secret}",
    )
    assert r.code == 0, r.err
    assert secret.encode() not in (home / "catalog.db").read_bytes()
    assert secret.encode() not in (home / "vault.bin").read_bytes()
    for args in (
        ["config", "list"],
        ["config", "list", "--output=json"],
        ["provider", "list", "-o", "csv"],
        ["provider", "show", "box"],
    ):
        out = cli(*args)
        assert out.code == 0 and secret not in out.out and "****" in out.out
    # the wrong passphrase: one clear line
    monkeypatch.setenv("CDIR_VAULT_PASSPHRASE", "wrong")
    r = cli("provider", "test", "box")
    assert r.code == 1
    assert (
        r.err
        == f"cdir: error: cannot open the vault {home / 'vault.bin'}: wrong passphrase or the file was modified\n"
    )
    # a tampered vault: the same clear line
    monkeypatch.setenv("CDIR_VAULT_PASSPHRASE", "test passphrase")
    data = bytearray((home / "vault.bin").read_bytes())
    data[-1] ^= 1
    (home / "vault.bin").write_bytes(bytes(data))
    r = cli("provider", "test", "box")
    assert (
        r.err
        == f"cdir: error: cannot open the vault {home / 'vault.bin'}: wrong passphrase or the file was modified\n"
    )


def test_json_output_has_the_schema_shapes(two: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "d", {"f.txt": "x"})
    two("put", str(tmp_path / "d/f.txt"), "/f.txt")
    [entry] = json.loads(two("ls", "/f.txt", "-o", "json").out)
    assert set(entry) == {
        "id",
        "path",
        "kind",
        "size",
        "mtime",
        "hash",
        "generation",
        "preferred_provider",
        "replicas",
    }
    provs = json.loads(two("provider", "list", "-o", "json").out)
    assert {p["name"] for p in provs} == {"laptop", "archive"}


def test_mv_prefer_scan_and_provider_remove(two: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "d", {"f.txt": "x"})
    two("put", str(tmp_path / "d/f.txt"), "/f.txt")
    assert two("mv", "/f.txt", "/g.txt").code == 0
    assert (tmp_path / "laptop/g.txt").exists() and not (tmp_path / "laptop/f.txt").exists()
    assert two("prefer", "/g.txt", "archive").out == "/g.txt: preferred provider archive\n"
    make_tree(tmp_path / "laptop", {"outside/new.txt": "made elsewhere"})
    r = two("scan", "laptop")
    assert r.code == 0 and "scan: 1 file(s)" in r.out
    assert two("ls", "/outside").out == "new.txt\n"
    r = two("provider", "remove", "archive")
    assert r.code == 2 and "use --force" in r.err
    assert two("provider", "remove", "archive", "--force").code == 0


def test_version_and_help(cli: Any) -> None:
    assert cli("--version").out.startswith("cdir ")
    assert "put" in cli("--help").out


def test_a_password_inside_a_url_goes_to_the_vault(cli: Any, home: Path) -> None:
    r = cli("provider", "add", "dav", "--kind", "webdav", "--root", "/", "--no-check",
            "-O", "url=http://bob:hunter2-secret@127.0.0.1:9/dav")
    assert r.code == 0, r.err
    assert b"hunter2-secret" not in (home / "catalog.db").read_bytes()
    for args in (["config", "list"], ["provider", "list", "-o", "json"]):
        assert "hunter2-secret" not in cli(*args).out
