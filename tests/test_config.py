"""Settings and the private-file writer used for state.json (and the vault)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from cdir.config import Settings, write_private

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


@posix_only
def test_write_private_creates_0600_in_a_0700_parent(tmp_path: Path) -> None:
    target = tmp_path / "home" / "state.json"
    old = os.umask(0o022)
    try:
        write_private(target, '{"cwd": {}}')
    finally:
        os.umask(old)
    assert target.read_text() == '{"cwd": {}}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700


@posix_only
def test_write_private_replaces_a_readable_file_with_a_private_one(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, b"new bytes")
    assert target.read_bytes() == b"new bytes"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@posix_only
def test_write_private_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private(tmp_path / "s", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o600


def test_write_private_failure_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left on device"):
        write_private(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@posix_only
def test_write_private_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    """The temporary name is random and opened with O_EXCL: a symlink at the target is
    replaced, its destination untouched."""
    victim = tmp_path / "victim"
    victim.write_text("keep")
    target = tmp_path / "state.json"
    target.symlink_to(victim)
    write_private(target, "new")
    assert victim.read_text() == "keep"
    assert not target.is_symlink() and target.read_text() == "new"


def test_state_file_lives_in_home(tmp_path: Path) -> None:
    assert Settings(home=tmp_path).state_file == tmp_path / "state.json"
