"""The `cdir` command line, run through its real entry point."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_tree

TREE = {"a/a.txt": "A", "a/b/b.txt": "BB", "a/b/c/c.txt": "CCC"}


@pytest.fixture(params=["direct", "service"])
def cli(request: pytest.FixtureRequest, cli: Any, home: Path) -> Iterator[Any]:
    """Every test twice: on the catalog itself, and as the client of a running service of
    the same home (same output and exit codes expected)."""
    if request.param == "direct":
        yield cli
        return
    from tests.service import running_service

    home.mkdir(parents=True, exist_ok=True)
    with running_service(home):
        yield cli


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
            "cdir: error: unknown provider kind 'ftp' (known: azure, box, dropbox, gcs, gdrive, libcloud, local, memory, onedrive, s3, sftp, webdav)\n",
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
    cli: Any,
    tmp_path: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    secret = "s3cr3t-password-value"
    r = _add_box(cli, "-O", f"password={secret}")
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
    if "[service]" in request.node.name:
        return  # the vault is the service's, opened with its own passphrase: not the client's
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
        "deleted",  # true while a removed file's delete is unfinished (status shows it)
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
    r = cli(
        "provider",
        "add",
        "dav",
        "--kind",
        "webdav",
        "--root",
        "/",
        "--no-check",
        "-O",
        "url=http://bob:hunter2-secret@127.0.0.1:9/dav",
    )
    assert r.code == 0, r.err
    assert b"hunter2-secret" not in (home / "catalog.db").read_bytes()
    for args in (["config", "list"], ["provider", "list", "-o", "json"]):
        assert "hunter2-secret" not in cli(*args).out


# --- global options before or after the command ------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (["-o", "json", "ls", "/"], ["ls", "/", "-o", "json"]),
        (["--output=csv", "status", "/", "-r"], ["status", "/", "-r", "--output=csv"]),
        (["-o", "json", "provider", "list"], ["provider", "list", "-o", "json"]),
        (["-o", "json", "provider", "list"], ["provider", "-o", "json", "list"]),
        (["-o", "csv", "config", "list"], ["config", "list", "-ocsv"]),
        (["-o", "json", "ls", "/", "-l"], ["ls", "/", "-lo", "json"]),  # grouped short flags
    ],
)
def test_global_options_work_after_the_command(
    two: Any, tmp_path: Path, before: list[str], after: list[str]
) -> None:
    make_tree(tmp_path / "d", {"f.txt": "x"})
    assert two("put", str(tmp_path / "d/f.txt"), "/f.txt").code == 0
    first, second = two(*before), two(*after)
    assert first.code == second.code == 0, first.err + second.err
    assert first.out == second.out
    assert first.out.startswith("[") or "," in first.out.splitlines()[0]  # json or csv, no table


def test_quiet_storage_and_parallel_after_put(two: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "d", {"f.txt": "x", "g.txt": "y"})
    r = two("put", str(tmp_path / "d/f.txt"), "/f.txt", "-q", "--storage", "laptop", "-P", "2")
    assert (r.code, r.out, r.err) == (0, "", "")
    r = two("put", str(tmp_path / "d/g.txt"), "/g.txt", "--provider=archive", "--parallel=3")
    assert r.code == 0 and r.out.startswith("put: 1 file(s)")
    st = {
        e["path"]: [x["provider"] for x in e["replicas"]]
        for e in json.loads(two("status", "/", "-o", "json").out)
    }
    assert st == {"/f.txt": ["laptop"], "/g.txt": ["archive"]}
    r = two("put", str(tmp_path / "d/f.txt"), "/h.txt", "-P", "0")
    assert r.code == 2 and "Invalid value for '--parallel' / '-P'" in r.err


def test_catalog_after_the_command(two: Any, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert json.loads(two("provider", "list", "--catalog", other, "-o", "json").out) == []
    assert len(json.loads(two("provider", "list", "-o", "json").out)) == 2


def test_an_option_after_the_command_wins_over_one_before(two: Any) -> None:
    r = two("-o", "json", "provider", "list", "-o", "csv")
    assert r.out.splitlines()[0] == "name,kind,root,priority,enabled,options,secrets"
    r = two("--output=json", "ls", "/", "-o", "XML")
    assert (r.code, r.err) == (
        2,
        "cdir: error: unknown output format 'xml': use table, json or csv\n",
    )


def _command_paths() -> list[list[str]]:
    from typer.main import get_command

    from cdir.cli.main import app

    root = get_command(app)
    paths: list[list[str]] = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        paths += [[name, sub] for sub in subs] if subs else [[name]]
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=" ".join)
def test_every_command_lists_the_global_options(cli: Any, path: list[str]) -> None:
    r = cli(*path, "--help")
    assert r.code == 0, r.err
    glob = r.out.split("\nGlobal options:\n", 1)[1]
    for opt in (
        "--catalog",
        "--storage, --provider",
        "-P, --parallel",
        "-o, --output",
        "-q, --quiet",
    ):
        assert opt in glob


# --- shell completion --------------------------------------------------------------------------


def test_completion_options_are_offered(cli: Any) -> None:
    out = cli("--help").out
    assert "--install-completion" in out and "--show-completion" in out


def test_show_completion_prints_the_script(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")  # take a shell name
    r = cli("--show-completion", "bash")
    assert r.code == 0
    assert "_CDIR_COMPLETE=complete_bash" in r.out
    assert "complete -o default -F _cdir_completion cdir" in r.out


def test_install_completion_writes_the_shell_rc(
    cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    (tmp_path / "user").mkdir()
    r = cli("--install-completion", "bash")
    assert r.code == 0, r.err
    script = tmp_path / "user" / ".bash_completions" / "cdir.sh"
    assert r.out == (
        f"bash completion installed in {script}\n"
        "Completion will take effect once you restart the terminal\n"
    )
    assert "_CDIR_COMPLETE=complete_bash" in script.read_text()
    assert str(script) in (tmp_path / "user" / ".bashrc").read_text()


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("cdir prov", ["provider"]),
        ("cdir provider l", ["list"]),
        ("cdir ls / --outp", ["--output"]),  # a global option, after the command
        ("cdir ls / -o ", ["table", "json", "csv"]),
    ],
)
def test_completion_answers(
    cli: Any, monkeypatch: pytest.MonkeyPatch, words: str, expected: list[str]
) -> None:
    monkeypatch.setenv("_CDIR_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split(" ")) - 1))
    r = cli()
    assert r.out.split() == expected


# --- secrets from files, config unlock ---------------------------------------------------------


def _add_box(cli: Any, *secret: str) -> Any:
    return cli(
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
        *secret,
    )


@pytest.mark.parametrize(
    ("content", "stored"),
    [
        (b"pw-123\n", "pw-123"),  # echo pw-123 > file
        (b"pw-123\r\n", "pw-123"),  # an editor on Windows
        (b"pw-123", "pw-123"),
        (b"pw-123\n\n", "pw-123\n"),  # exactly one line break goes
        (b"line1\r\nline2\r\n", "line1\r\nline2"),  # inner line breaks are kept as they are
        (b" pw-123 \n", " pw-123 "),
    ],
)
def test_secret_file_loses_exactly_one_trailing_newline(
    cli: Any, home: Path, tmp_path: Path, content: bytes, stored: str
) -> None:
    from cdir.vault import Vault

    (tmp_path / "pw").write_bytes(content)
    r = _add_box(cli, "-S", f"password=@{tmp_path / 'pw'}")
    assert r.code == 0, r.err
    assert Vault(home / "vault.bin", "test passphrase").get("box") == {"password": stored}


def test_prompted_secret_is_kept_as_typed(
    cli: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from cdir.vault import Vault

    monkeypatch.setattr(typer, "prompt", lambda text, hide_input: " typed\n")
    assert _add_box(cli, "-S", "password").code == 0
    assert Vault(home / "vault.bin", "test passphrase").get("box") == {"password": " typed\n"}


def test_secret_file_that_is_not_text(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(b"\xff\xfe")
    r = _add_box(cli, "-S", f"password=@{tmp_path / 'key'}")
    assert (r.code, r.err) == (
        2,
        f"cdir: error: cannot read secret file {tmp_path / 'key'}: not UTF-8 text\n",
    )


@pytest.fixture
def keyring_memory(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], str]:
    """A working OS keyring, in memory."""
    import keyring
    from keyring.backend import KeyringBackend

    store: dict[tuple[str, str], str] = {}

    class Memory(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def get_password(self, service: str, username: str) -> str | None:
            return store.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            store[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            store.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    yield store
    keyring.set_keyring(previous)


def test_unlock_uses_the_environment_passphrase(
    cli: Any,
    home: Path,
    keyring_memory: dict[tuple[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_prompt(prompt: str = "") -> str:
        raise AssertionError("prompted")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    assert _add_box(cli, "-O", "password=secret-1234567").code == 0  # the vault now exists
    vault = home / "vault.bin"
    r = cli("config", "unlock")
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "passphrase from CDIR_VAULT_PASSPHRASE stored in the OS keyring (test cli Memory): "
        f"service 'cdir', user '{vault}'\n"
    )
    assert keyring_memory == {("cdir", str(vault)): "test passphrase"}
    # a passphrase that does not open the vault is refused, and nothing is stored
    keyring_memory.clear()
    monkeypatch.setenv("CDIR_VAULT_PASSPHRASE", "wrong")
    r = cli("config", "unlock")
    assert (r.code, r.out) == (1, "")
    assert (
        r.err
        == f"cdir: error: cannot open the vault {vault}: wrong passphrase or the file was modified\n"
    )
    assert keyring_memory == {}


def test_unlock_prompts_without_the_environment(
    cli: Any,
    home: Path,
    keyring_memory: dict[tuple[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CDIR_VAULT_PASSPHRASE")
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "typed phrase")
    vault = home / "vault.bin"
    r = cli("config", "unlock")
    assert r.code == 0, r.err
    assert r.out == (
        "passphrase stored in the OS keyring (test cli Memory): "
        f"service 'cdir', user '{vault}' (no vault yet: {vault} will be created with it)\n"
    )
    assert keyring_memory == {("cdir", str(vault)): "typed phrase"}
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "")
    r = cli("config", "unlock")
    assert (r.code, r.err) == (1, "cdir: error: the vault passphrase must not be empty\n")


# --- ls -l in json and csv, flat csv cells -----------------------------------------------------


def test_ls_long_json_and_csv_carry_the_replicas(two: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "d", {"f.txt": "x"})
    assert two("put", str(tmp_path / "d/f.txt"), "/f.txt", "--to", "laptop,archive").code == 0
    two("mkdir", "/sub")
    table = two("ls", "/", "-l").out
    assert "archive:current,laptop:current  /f.txt" in table
    entries = json.loads(two("ls", "/", "-l", "-o", "json").out)
    assert [
        (e["path"], [(r["provider"], r["state"]) for r in e["replicas"] or []]) for e in entries
    ] == [
        ("/f.txt", [("archive", "current"), ("laptop", "current")]),
        ("/sub", []),
    ]
    assert {e["path"]: e["replicas"] for e in json.loads(two("ls", "/", "-o", "json").out)} == {
        "/f.txt": None,  # without -l, as before: no replica lookup
        "/sub": None,
    }
    lines = two("ls", "/", "-l", "-o", "csv").out.splitlines()
    assert lines[0] == "path,kind,size,mtime,generation,hash,replicas"
    assert lines[1].startswith("/f.txt,file,1,") and lines[1].endswith(
        ",archive:current;laptop:current"
    )
    assert lines[2].startswith("/sub,dir,,")
    assert two("ls", "/", "-o", "csv").out.splitlines()[0] == "path,kind,size,mtime,generation,hash"
    assert two("status", "/f.txt", "-o", "csv").out == (
        "path,kind,size,generation,replicas\n/f.txt,file,1,1,archive:current;laptop:current\n"
    )


def test_csv_cells_are_never_json(cli: Any) -> None:
    assert _add_box(cli, "-O", "password=secret-1234567").code == 0
    out = cli("provider", "list", "-o", "csv").out
    assert out == (
        "name,kind,root,priority,enabled,options,secrets\n"
        "box,webdav,/,0,True,url=http://127.0.0.1:9/dav;username=u,password=****67\n"
    )
    assert "{" not in out and "[" not in out


# --- messages ----------------------------------------------------------------------------------


def test_an_overlong_name_is_shown_shortened(two: Any) -> None:
    r = two("ls", "/data/" + "n" * 300)
    assert (r.code, r.out) == (2, "")
    assert r.err == (
        "cdir: error: invalid path '/data/"
        + "n" * 34
        + "…' (306 bytes): a name is longer than 255 bytes\n"
    )
