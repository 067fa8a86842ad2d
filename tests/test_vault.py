"""The encrypted credentials vault, on real files with real crypto."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import keyring
import pytest

from cdir import vault as vault_mod
from cdir.errors import VaultError
from cdir.vault import Vault, mask, passphrase_source

PASS = "correct horse battery staple"
SECRET = "AKIAsuper-secret-value-1234567890"
HEADER_SIZE = 46  # magic 8 + kdf 1 + log2(n) 1 + r 4 + p 4 + salt 16 + nonce 12
SALT = slice(18, 34)
NONCE = slice(34, 46)


DEFAULT_SCRYPT_N = vault_mod.SCRYPT_N


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real cost (n=2**15) takes ~0.1 s per derivation; the format is the same with n=2**4.
    monkeypatch.setattr(vault_mod, "SCRYPT_N", 2**4)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "conf" / "vault.bin"


def damaged(path: Path) -> str:
    return f"cannot open the vault {path}: not a cdir vault file (or it is damaged)"


def tampered(path: Path) -> str:
    return f"cannot open the vault {path}: wrong passphrase or the file was modified"


def flip(path: Path, offset: int, bit: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= bit
    path.write_bytes(bytes(data))


# -- round trip and format -----------------------------------------------------------------


def test_round_trip(path: Path) -> None:
    v = Vault(path, PASS)
    assert not v.exists()
    v.set("s3", {"access_key": "AKIA", "secret_key": SECRET})
    v.set("azure", {"connection_string": "Default…=ünïcode"})
    assert v.exists()

    fresh = Vault(path, PASS)  # no cache: really decrypts the file
    assert fresh.get("s3") == {"access_key": "AKIA", "secret_key": SECRET}
    assert fresh.get("azure") == {"connection_string": "Default…=ünïcode"}
    assert fresh.get("gcs") == {}
    assert fresh.refs() == ["azure", "s3"]


def test_set_replaces_and_empty_or_delete_removes(path: Path) -> None:
    v = Vault(path, PASS)
    v.set("s3", {"a": "1", "b": "2"})
    v.set("s3", {"c": "3"})
    v.set("gcs", {"key": "k"})
    assert Vault(path, PASS).get("s3") == {"c": "3"}
    v.set("s3", {})
    v.delete("gcs")
    v.delete("never-there")
    fresh = Vault(path, PASS)
    assert fresh.refs() == []
    assert fresh.get("s3") == {}


def test_get_returns_a_copy(path: Path) -> None:
    v = Vault(path, PASS)
    v.set("s3", {"k": "v"})
    v.get("s3")["k"] = "changed"
    assert v.get("s3") == {"k": "v"}


def test_header_layout_and_kdf_parameters_stored(path: Path) -> None:
    Vault(path, PASS).set("s3", {"k": "v"})
    blob = path.read_bytes()
    assert blob[:8] == b"CDIRVLT1"
    assert blob[8] == 1  # scrypt
    assert blob[9] == 4  # log2(n) of the cheap test cost
    assert int.from_bytes(blob[10:14], "big") == 8
    assert int.from_bytes(blob[14:18], "big") == 1


def test_default_cost_round_trip(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_mod, "SCRYPT_N", DEFAULT_SCRYPT_N)
    Vault(path, PASS).set("s3", {"k": "v"})
    assert path.read_bytes()[9] == 15  # n = 2**15
    assert Vault(path, PASS).get("s3") == {"k": "v"}


def test_old_kdf_parameters_still_open(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Vault(path, PASS).set("s3", {"k": "v"})
    monkeypatch.setattr(vault_mod, "SCRYPT_N", 2**5)  # defaults raised later
    v = Vault(path, PASS)
    assert v.get("s3") == {"k": "v"}
    v.set("s3", {"k": "w"})
    assert path.read_bytes()[9] == 5
    assert Vault(path, PASS).get("s3") == {"k": "w"}


def test_salt_and_nonce_differ_across_writes_of_same_content(path: Path) -> None:
    v = Vault(path, PASS)
    v.set("s3", {"k": "v"})
    first = path.read_bytes()
    v.set("s3", {"k": "v"})
    second = path.read_bytes()
    assert first[SALT] != second[SALT]
    assert first[NONCE] != second[NONCE]
    assert first[HEADER_SIZE:] != second[HEADER_SIZE:]


def test_plaintext_never_in_file(path: Path) -> None:
    Vault(path, PASS).set("s3-provider", {"secret_key": SECRET})
    blob = path.read_bytes()
    for text in (SECRET, "secret_key", "s3-provider", PASS):
        assert text.encode() not in blob


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_file_mode_0600_and_parent_0700(path: Path) -> None:
    old = os.umask(0o022)
    try:
        Vault(path, PASS).set("s3", {"k": "v"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_rewrite_resets_mode_to_0600(path: Path) -> None:
    v = Vault(path, PASS)
    v.set("s3", {"k": "v"})
    path.chmod(0o644)
    v.set("s3", {"k": "w"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- errors ----------------------------------------------------------------------------------


def test_wrong_passphrase(path: Path) -> None:
    Vault(path, PASS).set("s3", {"secret_key": SECRET})
    with pytest.raises(VaultError) as info:
        Vault(path, "not the passphrase").get("s3")
    assert str(info.value) == tampered(path)


def test_flipped_ciphertext_byte_is_detected(path: Path) -> None:
    Vault(path, PASS).set("s3", {"secret_key": SECRET})
    flip(path, HEADER_SIZE + 3)
    with pytest.raises(VaultError) as info:
        Vault(path, PASS).get("s3")
    assert str(info.value) == tampered(path)


@pytest.mark.parametrize(
    "offset",
    [9, 13, 17, SALT.start + 5, NONCE.start + 2],
    ids=["log2n", "r", "p", "salt", "nonce"],
)
def test_flipped_header_byte_is_detected(path: Path, offset: int) -> None:
    Vault(path, PASS).set("s3", {"secret_key": SECRET})
    flip(path, offset, 0x02)  # keeps the KDF parameters valid (p=1 -> 3, not 0)
    with pytest.raises(VaultError) as info:
        Vault(path, PASS).get("s3")
    assert str(info.value) == tampered(path)


@pytest.mark.parametrize("offset", [0, 7, 8], ids=["magic0", "magic7", "kdf-id"])
def test_bad_magic_or_kdf_id_is_not_a_vault(path: Path, offset: int) -> None:
    Vault(path, PASS).set("s3", {"k": "v"})
    flip(path, offset)
    with pytest.raises(VaultError) as info:
        Vault(path, PASS).get("s3")
    assert str(info.value) == damaged(path)


@pytest.mark.parametrize("keep", [0, 5, HEADER_SIZE, HEADER_SIZE + 15])
def test_truncated_to_less_than_header_and_tag(path: Path, keep: int) -> None:
    Vault(path, PASS).set("s3", {"k": "v"})
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(VaultError) as info:
        Vault(path, PASS).get("s3")
    assert str(info.value) == damaged(path)


def test_truncated_ciphertext_is_detected(path: Path) -> None:
    Vault(path, PASS).set("s3", {"k": "v"})
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(VaultError) as info:
        Vault(path, PASS).get("s3")
    assert str(info.value) == tampered(path)


def test_not_a_vault_file(path: Path) -> None:
    path.parent.mkdir()
    path.write_text("[s3]\naccess_key = AKIA\nsecret_key = hunter2hunter2hunter2\n")
    with pytest.raises(VaultError) as info:
        Vault(path, PASS).refs()
    assert str(info.value) == damaged(path)


def test_hostile_kdf_cost_is_refused_without_deriving(path: Path) -> None:
    Vault(path, PASS).set("s3", {"k": "v"})
    data = bytearray(path.read_bytes())
    data[9] = 40  # n = 2**40 would need terabytes
    path.write_bytes(bytes(data))
    with pytest.raises(VaultError) as info:
        Vault(path, PASS).get("s3")
    assert str(info.value) == damaged(path)


def test_unreadable_file(path: Path) -> None:
    path.mkdir(parents=True)  # reading a directory fails even as root, unlike chmod 000
    with pytest.raises(VaultError) as info:
        Vault(path, PASS).get("s3")
    message = str(info.value)
    assert message.startswith(f"cannot read the vault {path}: ")
    assert "\n" not in message


def test_empty_passphrase_refused(path: Path) -> None:
    with pytest.raises(VaultError, match="must not be empty"):
        Vault(path, "").set("s3", {"k": "v"})
    with pytest.raises(VaultError, match="must not be empty"):
        Vault(path, lambda: "").set("s3", {"k": "v"})
    assert not path.exists()


def test_errors_never_contain_secrets(path: Path) -> None:
    Vault(path, PASS).set("s3", {"secret_key": SECRET})
    with pytest.raises(VaultError) as info:
        Vault(path, "wrong").get("s3")
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


# -- atomic write ----------------------------------------------------------------------------


def test_failed_replace_keeps_old_file_and_leaves_no_temp(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = Vault(path, PASS)
    v.set("s3", {"k": "old"})
    before = path.read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(VaultError, match=r"cannot write the vault .*: No space left on device$"):
        v.set("s3", {"k": "new"})
    monkeypatch.undo()

    assert path.read_bytes() == before
    # the lock file stays on purpose (removing one in use would race)
    assert sorted(p.name for p in path.parent.iterdir() if p.suffix != ".lock") == [path.name]
    assert v.get("s3") == {"k": "old"}  # the cache was not updated either
    assert Vault(path, PASS).get("s3") == {"k": "old"}


def test_failed_write_leaves_no_temp(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(VaultError, match="cannot write the vault"):
        Vault(path, PASS).set("s3", {"k": "v"})
    assert [p for p in path.parent.iterdir() if p.suffix != ".lock"] == []


# -- caching and laziness --------------------------------------------------------------------


def test_passphrase_is_lazy(path: Path) -> None:
    calls: list[int] = []

    def ask() -> str:
        calls.append(1)
        return PASS

    v = Vault(path, ask)
    assert v.get("s3") == {}
    assert v.refs() == []
    v.delete("s3")  # nothing to remove in a missing file
    assert not v.exists()
    assert calls == []

    v.set("s3", {"k": "v"})
    assert len(calls) == 1


def test_passphrase_asked_once_and_contents_cached(path: Path) -> None:
    Vault(path, PASS).set("s3", {"k": "v"})
    calls: list[int] = []

    def ask() -> str:
        calls.append(1)
        return PASS

    v = Vault(path, ask)
    for _ in range(5):
        assert v.get("s3") == {"k": "v"}
    v.set("gcs", {"k": "g"})
    assert v.refs() == ["gcs", "s3"]
    assert calls == [1]


def test_change_by_another_writer_is_seen(path: Path) -> None:
    a, b = Vault(path, PASS), Vault(path, PASS)
    a.set("s3", {"k": "1"})
    assert b.get("s3") == {"k": "1"}
    a.set("gcs", {"k": "2"})
    b.set("azure", {"k": "3"})  # b must not drop a's newer "gcs"
    assert Vault(path, PASS).refs() == ["azure", "gcs", "s3"]


def test_wrong_prompted_passphrase_can_be_retried(path: Path) -> None:
    Vault(path, PASS).set("s3", {"k": "v"})
    answers = iter(["typo", PASS])
    v = Vault(path, lambda: next(answers))
    with pytest.raises(VaultError):
        v.get("s3")
    assert v.get("s3") == {"k": "v"}


def test_unicode_passphrase_normal_forms_match(path: Path) -> None:
    Vault(path, "caf\u00e9").set("s3", {"k": "v"})  # precomposed é
    assert Vault(path, "cafe\u0301").get("s3") == {"k": "v"}  # e + combining accent


# -- passphrase_source -----------------------------------------------------------------------


KeyringStore = dict[tuple[str, str], str]


@pytest.fixture
def keyring_store(monkeypatch: pytest.MonkeyPatch) -> KeyringStore:
    store: KeyringStore = {}
    monkeypatch.setattr(keyring, "get_password", lambda s, u: store.get((s, u)))
    monkeypatch.delenv("CDIR_VAULT_PASSPHRASE", raising=False)
    return store


class FakeGetpass:
    """Stands in for getpass.getpass: records the prompts, answers from a list."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.answers: list[str] = []

    def __call__(self, prompt: str = "Password: ", stream: object = None) -> str:
        self.shown.append(prompt)
        if not self.answers:
            raise AssertionError(f"unexpected prompt {prompt!r}")
        return self.answers.pop(0)


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> FakeGetpass:
    fake = FakeGetpass()
    monkeypatch.setattr("getpass.getpass", fake)
    return fake


def test_source_env_first(
    path: Path, monkeypatch: pytest.MonkeyPatch, keyring_store: KeyringStore, prompts: FakeGetpass
) -> None:
    keyring_store[("cdir", str(path))] = "from-keyring"
    prompts.answers.append("from-prompt")
    monkeypatch.setenv("CDIR_VAULT_PASSPHRASE", "from-env")
    assert passphrase_source(path, interactive=True)() == "from-env"
    assert prompts.shown == []


def test_source_keyring_second(
    path: Path, keyring_store: KeyringStore, prompts: FakeGetpass
) -> None:
    keyring_store[("cdir", str(path))] = "from-keyring"
    keyring_store[("cdir", "/some/other/vault")] = "other"
    prompts.answers.append("from-prompt")
    assert passphrase_source(path, interactive=True)() == "from-keyring"
    assert prompts.shown == []


def test_source_prompt_last_for_existing_vault(
    path: Path, keyring_store: KeyringStore, prompts: FakeGetpass
) -> None:
    Vault(path, PASS).set("s3", {"k": "v"})
    prompts.answers.append(PASS)
    v = Vault(path, passphrase_source(path, interactive=True))
    assert v.get("s3") == {"k": "v"}
    assert len(prompts.shown) == 1  # an existing vault is not confirmed


def test_source_prompt_confirms_new_vault(
    path: Path, keyring_store: KeyringStore, prompts: FakeGetpass
) -> None:
    prompts.answers.extend([PASS, PASS])
    v = Vault(path, passphrase_source(path, interactive=True))
    v.set("s3", {"k": "v"})
    assert len(prompts.shown) == 2
    assert Vault(path, PASS).get("s3") == {"k": "v"}


def test_source_prompt_mismatch(
    path: Path, keyring_store: KeyringStore, prompts: FakeGetpass
) -> None:
    prompts.answers.extend([PASS, PASS + "x"])
    with pytest.raises(VaultError, match="do not match"):
        Vault(path, passphrase_source(path, interactive=True)).set("s3", {"k": "v"})
    assert not path.exists()


def test_source_prompt_empty_refused(
    path: Path, keyring_store: KeyringStore, prompts: FakeGetpass
) -> None:
    prompts.answers.append("")
    with pytest.raises(VaultError, match="must not be empty"):
        passphrase_source(path, interactive=True)()


def test_source_not_interactive_is_locked(
    path: Path, keyring_store: KeyringStore, prompts: FakeGetpass
) -> None:
    with pytest.raises(VaultError) as info:
        passphrase_source(path, interactive=False)()
    assert str(info.value) == (
        "the vault is locked: set CDIR_VAULT_PASSPHRASE or store the passphrase in the OS "
        "keyring (cdir config unlock)"
    )
    assert prompts.shown == []


def test_source_broken_keyring_is_no_keyring(
    path: Path, monkeypatch: pytest.MonkeyPatch, prompts: FakeGetpass
) -> None:
    monkeypatch.delenv("CDIR_VAULT_PASSPHRASE", raising=False)

    def broken(service: str, user: str) -> str:
        raise keyring.errors.NoKeyringError("no recommended backend")

    monkeypatch.setattr(keyring, "get_password", broken)
    with pytest.raises(VaultError, match="the vault is locked"):
        passphrase_source(path, interactive=False)()
    prompts.answers.extend(["typed", "typed"])  # new vault: asked twice
    assert passphrase_source(path, interactive=True)() == "typed"


def test_source_null_and_fail_backends_are_no_keyring(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyring.backends import fail, null

    monkeypatch.delenv("CDIR_VAULT_PASSPHRASE", raising=False)
    previous = keyring.get_keyring()
    try:
        for backend in (fail.Keyring(), null.Keyring()):
            keyring.set_keyring(backend)
            with pytest.raises(VaultError, match="the vault is locked"):
                passphrase_source(path, interactive=False)()
    finally:
        keyring.set_keyring(previous)


def test_source_is_lazy(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDIR_VAULT_PASSPHRASE", raising=False)
    source = passphrase_source(path, interactive=False)  # must not raise yet
    monkeypatch.setenv("CDIR_VAULT_PASSPHRASE", "later")
    assert source() == "later"


# -- mask ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "a", "ab", "hunter2", "x" * 11, "abcdefghijk"])
def test_mask_hides_short_values_entirely(value: str) -> None:
    assert mask(value) == "****"


@pytest.mark.parametrize("value", ["abcdefghijkl", SECRET, "****ab", "ab" * 40])
def test_mask_never_returns_the_value(value: str) -> None:
    masked = mask(value)
    assert masked != value
    assert len(masked) <= 6
    if len(value) >= 12:
        assert masked == "****" + value[-2:]
