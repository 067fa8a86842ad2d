"""`cdir provider set` (options and secrets) and `cdir provider pin` (a replaced SSH host key,
against a real OpenSSH server), on SQLite and PostgreSQL: every replica is kept."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdir.errors import AuthError, NotFound, UsageError
from tests.conftest import make_tree
from tests.servers.sftp import SFTPServer, provider_config, rekey

Run = Callable[..., Any]


@pytest.fixture
def run(cli: Any, catalog_url: str) -> Run:
    """`cdir ARGS --catalog URL`, on SQLite and on PostgreSQL."""
    return lambda *args: cli(*args, "--catalog", catalog_url)


def ok(r: Any) -> Any:
    assert r.code == 0, r.err
    return r


def replica_states(run: Run, path: str = "/") -> list[tuple[str, str, str]]:
    status = json.loads(ok(run("status", path, "-r", "-o", "json")).out)
    return sorted((e["path"], r["provider"], r["state"]) for e in status for r in e["replicas"])


# --- provider set --------------------------------------------------------------------------------
def test_set_changes_options_and_keeps_every_replica(run: Run, tmp_path: Path) -> None:
    for name in ("laptop", "archive"):
        ok(run("provider", "add", name, "--kind", "local", "--root", str(tmp_path / name)))
    src = make_tree(tmp_path / "src", {"d/a.txt": "A", "d/b.txt": "B"})
    ok(run("put", "-r", f"{src}/d", "/"))
    before = replica_states(run)
    assert len(before) == 4
    r = ok(run("provider", "set", "laptop", "-O", "max_parallel=3", "--priority", "5"))
    assert r.out == f"updated provider laptop (local: {tmp_path / 'laptop'})\n  max_parallel = 3\n"
    shown = json.loads(ok(run("provider", "show", "laptop", "-o", "json")).out)[0]
    assert (shown["options"], shown["priority"]) == ({"max_parallel": "3"}, 5)
    assert replica_states(run) == before
    # typed options refuse a bad value with one line, and nothing is stored
    r = run("provider", "set", "laptop", "-O", "max_parallel=lots")
    assert (r.code, r.err) == (
        2,
        "cdir: error: laptop: option max_parallel must be an integer, not 'lots'\n",
    )
    r = run("provider", "set", "laptop", "-O", "max_parallel=0")
    assert (r.code, r.err) == (2, "cdir: error: laptop: option max_parallel must be at least 1\n")
    r = run("provider", "set", "laptop", "-O", "colour=blue")
    assert (r.code, r.err) == (
        2,
        "cdir: error: unknown option(s) for local: colour (known: max_parallel)\n",
    )
    assert json.loads(ok(run("provider", "show", "laptop", "-o", "json")).out)[0]["options"] == {
        "max_parallel": "3"
    }
    # NAME= removes an option
    r = ok(run("provider", "set", "laptop", "-O", "max_parallel="))
    assert r.out == f"updated provider laptop (local: {tmp_path / 'laptop'})\n"
    assert json.loads(ok(run("provider", "show", "laptop", "-o", "json")).out)[0]["options"] == {}
    assert replica_states(run) == before
    ok(run("get", "/d/a.txt", str(tmp_path / "a.txt"), "--from", "laptop"))
    assert (tmp_path / "a.txt").read_text() == "A"


def test_set_refuses_what_it_cannot_do(run: Run, tmp_path: Path) -> None:
    ok(run("provider", "add", "laptop", "--kind", "local", "--root", str(tmp_path / "laptop")))
    r = run("provider", "set", "laptop", "-O", f"root={tmp_path}")
    assert (r.code, r.err) == (
        2,
        "cdir: error: laptop: the root cannot be changed (every replica is a path below it); "
        "add a provider with the new root, replicate, then remove this one\n",
    )
    r = run("provider", "set", "laptop")
    assert (r.code, r.err) == (
        2,
        "cdir: error: provider set needs -O NAME=VALUE, -S NAME, --priority or --location\n",
    )
    r = run("provider", "set", "nope", "-O", "max_parallel=2")
    assert (r.code, r.err) == (
        1,
        "cdir: error: unknown provider 'nope' (see `cdir provider list`)\n",
    )
    # by default the provider is reached with its new options (--no-check skips that)
    (tmp_path / "laptop").rmdir()
    r = run("provider", "set", "laptop", "-O", "max_parallel=2")
    assert (r.code, r.err) == (
        1,
        f"cdir: error: laptop: root {tmp_path / 'laptop'} is not a directory\n",
    )
    ok(run("provider", "set", "laptop", "-O", "max_parallel=2", "--no-check"))


def test_set_secrets_go_to_the_vault(run: Run, tmp_path: Path, home: Path) -> None:
    ok(
        run(
            "provider",
            "add",
            "ssh",
            "--kind",
            "sftp",
            "--root",
            "/data",
            "--no-check",
            "-O",
            "host=127.0.0.1",
            "-O",
            "username=me",
            "-O",
            "password=first-password-1",
        )
    )
    (tmp_path / "pw").write_text("second-password-2\n")
    r = ok(
        run(
            "provider",
            "set",
            "ssh",
            "-S",
            f"password=@{tmp_path / 'pw'}",
            "-O",
            "port=2222",
            "--no-check",
        )
    )
    assert r.out.splitlines() == [
        "updated provider ssh (sftp: /data)",
        "  host = 127.0.0.1",
        "  username = me",
        "  port = 2222",
        "  password = ****-2",
    ]
    assert "second-password" not in ok(run("provider", "show", "ssh", "-o", "json")).out
    from cdir.config import Settings
    from cdir.vault import Vault

    vault = Vault(Settings().vault, "test passphrase")
    assert vault.get("ssh") == {"password": "second-password-2"}
    # a secret given with -O goes to the vault too; NAME= removes it
    ok(run("provider", "set", "ssh", "-O", "password=", "-O", "private_key=KEY", "--no-check"))
    assert Vault(Settings().vault, "test passphrase").get("ssh") == {"private_key": "KEY"}
    shown = json.loads(ok(run("provider", "show", "ssh", "-o", "json")).out)[0]
    assert (shown["options"]["port"], shown["secrets"]) == ("2222", {"private_key": "****"})
    ok(run("provider", "set", "ssh", "-O", "private_key=", "--no-check"))
    assert Vault(Settings().vault, "test passphrase").get("ssh") == {}
    assert json.loads(ok(run("provider", "show", "ssh", "-o", "json")).out)[0]["secrets"] == {}
    # a required option cannot be removed
    r = run("provider", "set", "ssh", "-O", "host=", "--no-check")
    assert (r.code, r.err) == (2, "cdir: error: provider kind sftp needs --option host=…\n")


def test_set_drops_the_open_provider_object(vdir: Any, tmp_path: Path) -> None:
    first = vdir.backend("laptop")
    assert first.capabilities.max_parallel == 1
    out = vdir.set_provider("laptop", {"max_parallel": "4"})
    assert out.options == {"max_parallel": "4"}
    second = vdir.backend("laptop")
    assert second is not first and second.capabilities.max_parallel == 4
    with pytest.raises(UsageError, match="option max_parallel must be an integer"):
        vdir.set_provider("laptop", {"max_parallel": "x"})
    assert vdir.backend("laptop") is second  # a refused change drops nothing


def test_pin_says_when_a_kind_pins_nothing(run: Run, tmp_path: Path) -> None:
    ok(run("provider", "add", "laptop", "--kind", "local", "--root", str(tmp_path / "laptop")))
    r = ok(run("provider", "pin", "laptop"))
    assert r.out == "laptop: nothing to pin for kind local\n"
    r = run("provider", "pin", "nope")
    assert (r.code, r.err) == (
        1,
        "cdir: error: unknown provider 'nope' (see `cdir provider list`)\n",
    )


# --- provider pin: a replaced SSH host key -------------------------------------------------------
def shown(fp: str) -> str:
    """`ssh-ed25519 SHA256:x` as messages show it: `ED25519 SHA256:x`."""
    kind, digest = fp.split()
    assert kind == "ssh-ed25519"
    return f"ED25519 {digest}"


def add_ssh(run: Run, server: SFTPServer) -> None:
    cfg = provider_config(server)
    args = ["provider", "add", "ssh", "--kind", "sftp", "--root", cfg["root"]]
    for k, v in cfg["options"].items():
        args += ["-O", f"{k}={v}"]
    key = server.key_file
    ok(run(*args, "-S", f"private_key=@{key}"))


def test_pin_a_replaced_host_key(
    run: Run, own_sftp_server: SFTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = own_sftp_server
    add_ssh(run, server)
    src = make_tree(tmp_path / "src", {"d/a.txt": "A", "d/b.txt": "BB", "d/c.txt": "CCC"})
    ok(run("put", "-r", f"{src}/d", "/", "--to", "ssh"))
    before = replica_states(run)
    assert before == [(f"/d/{n}.txt", "ssh", "current") for n in "abc"]
    old = server.host_key
    server = rekey(server)
    new = server.host_key
    assert new != old
    where = f"{server.host}:{server.port}"
    # reads now fail, saying why and what to do
    r = run("get", "/d/a.txt", str(tmp_path / "a.txt"))
    assert r.code == 1
    assert (
        f"ssh: host key for {where} changed: expected {old} got {new} "
        "(if the server's key was replaced on purpose: cdir provider pin ssh)"
    ) in r.err
    # without a terminal to ask and without --yes: refused, nothing stored
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    r = run("provider", "pin", "ssh")
    assert (r.code, r.out, r.err) == (
        2,
        f"host key of ssh changed: old {shown(old)}, new {shown(new)}\n",
        "cdir: error: ssh: not pinned: confirm with --yes (no terminal to ask)\n",
    )
    assert (
        json.loads(ok(run("provider", "show", "ssh", "-o", "json")).out)[0]["options"]["host_key"]
        == old
    )
    r = ok(run("provider", "pin", "ssh", "--yes"))
    assert r.out == (
        f"host key of ssh changed: old {shown(old)}, new {shown(new)}\n"
        f"pinned host key of ssh: {shown(new)}\n"
    )
    assert (
        json.loads(ok(run("provider", "show", "ssh", "-o", "json")).out)[0]["options"]["host_key"]
        == new
    )
    # reads work again; no replica was forgotten
    ok(run("get", "-r", "/d", str(tmp_path / "out")))
    assert (tmp_path / "out/c.txt").read_text() == "CCC"
    assert replica_states(run) == before
    assert ok(run("provider", "pin", "ssh")).out == f"host key of ssh unchanged: {shown(new)}\n"
    assert ok(run("provider", "test", "ssh")).out.startswith("ssh: ok (")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_pin_asks_at_a_terminal(
    cli: Any, own_sftp_server: SFTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_ssh(cli, own_sftp_server)
    old, server = own_sftp_server.host_key, rekey(own_sftp_server)
    monkeypatch.setattr("sys.stdin", Tty("n\n"))
    r = cli("provider", "pin", "ssh")
    assert r.code == 1
    assert r.out == (
        f"host key of ssh changed: old {shown(old)}, new {shown(server.host_key)}\n"
        "trust the new host key of ssh? [y/N]: "
    )
    assert r.err == "cdir: error: ssh: not pinned\n"
    monkeypatch.setattr("sys.stdin", Tty("y\n"))
    r = ok(cli("provider", "pin", "ssh", "-o", "json"))
    out = json.loads(r.out[r.out.index("{") :])
    assert (out["stored"], out["pins"][0]["old"], out["pins"][0]["new"]) == (
        True,
        old,
        server.host_key,
    )
    assert out["pins"][0]["changed"] is True
    assert f"host key of ssh changed: old {shown(old)}, new {shown(server.host_key)}\n" in r.err


def test_pin_in_process_reopens_the_provider(
    vdir: Any, own_sftp_server: SFTPServer, tmp_path: Path
) -> None:
    cfg = provider_config(own_sftp_server)
    vdir.add_provider("ssh", "sftp", cfg["root"], {**cfg["options"], **cfg["secrets"]})
    (tmp_path / "f.txt").write_text("hello")
    vdir.put([str(tmp_path / "f.txt")], "/f.txt", to=["ssh"], progress=False)
    assert b"".join(vdir.read("/f.txt", provider="ssh")) == b"hello"  # the pool is open now
    server = rekey(own_sftp_server)
    vdir.backend("ssh").close()  # its pooled connections were made with the old key
    with pytest.raises(AuthError, match=r"host key for .* changed"):
        b"".join(vdir.read("/f.txt", provider="ssh"))
    pins = vdir.provider_pins("ssh")
    assert [(p.option, p.what, p.new, p.changed) for p in pins.pins] == [
        ("host_key", "host key", server.host_key, True)
    ]
    assert vdir.pin_provider("ssh", pins).stored
    assert b"".join(vdir.read("/f.txt", provider="ssh")) == b"hello"
    assert not vdir.pin_provider("ssh").stored  # unchanged: nothing to store
    with pytest.raises(NotFound):
        vdir.provider_pins("nope")


def test_pin_a_provider_added_without_a_host_key(cli: Any, sftp_server: SFTPServer) -> None:
    cfg = provider_config(sftp_server)
    r = cli(
        "provider",
        "add",
        "ssh",
        "--kind",
        "sftp",
        "--root",
        cfg["root"],
        "--no-check",
        "-O",
        f"host={sftp_server.host}",
        "-O",
        f"port={sftp_server.port}",
        "-O",
        f"username={sftp_server.username}",
        "-S",
        f"private_key=@{sftp_server.key_file}",
    )
    assert r.code == 0, r.err
    r = cli("provider", "test", "ssh")
    assert r.code == 1 and "unknown host key" in r.err
    r = cli("provider", "pin", "ssh", "--yes")
    assert (r.code, r.out) == (
        0,
        f"host key of ssh not pinned yet: new {shown(sftp_server.host_key)}\n"
        f"pinned host key of ssh: {shown(sftp_server.host_key)}\n",
    )
    assert cli("provider", "test", "ssh").code == 0
