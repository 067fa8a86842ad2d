"""Temporaries (uploads in flight): their names, when one is orphaned, and `reap`'s contract
(the conformance suite's test_reap_temporaries runs it against each provider)."""

from __future__ import annotations

import os
import re

import pytest

from cdir.errors import NotFound
from cdir.providers.base import ORPHAN_AGE_S, TMP_PREFIX, host_tag, orphaned, reap, temp_name
from cdir.providers.testing.suite import dead_pid

OLD = ORPHAN_AGE_S + 1  # seconds: over a day
ELSEWHERE = f"{int(host_tag(), 16) ^ 1:08x}"


def test_a_temporary_names_its_process_and_host() -> None:
    assert re.fullmatch(r"[0-9a-f]{8}", host_tag())
    name = temp_name()
    assert re.fullmatch(rf"{re.escape(TMP_PREFIX)}{os.getpid()}-{host_tag()}-[0-9a-f]{{12}}", name)
    assert temp_name() != name
    assert temp_name(pid=7, host=ELSEWHERE).startswith(f"{TMP_PREFIX}7-{ELSEWHERE}-")


@pytest.mark.parametrize(
    ("writer", "age", "gone"),
    [
        ("dead here", 0, True),
        ("live here", 0, False),
        ("live here", OLD, False),  # writers set the file's mtime before the rename
        ("dead elsewhere", 0, False),  # its pid means nothing on this machine
        ("live elsewhere", OLD, True),
        ("old format, dead", 0, True),  # `<pid>-<random>`, before host tags: as before
        ("old format, live", 0, False),
        ("no pid", 0, False),  # sftp and webdav names before pids: by age only
        ("no pid", OLD, True),
        ("huge pid", 0, False),
    ],
)
def test_orphaned(writer: str, age: float, gone: bool) -> None:
    name = {
        "dead here": temp_name(pid=dead_pid()),
        "live here": temp_name(),
        "dead elsewhere": temp_name(pid=dead_pid(), host=ELSEWHERE),
        "live elsewhere": temp_name(host=ELSEWHERE),
        "old format, dead": f"{TMP_PREFIX}{dead_pid()}-0123456789ab",
        "old format, live": f"{TMP_PREFIX}{os.getpid()}-0123456789ab",
        "no pid": f"{TMP_PREFIX}0123456789abcdef",
        "huge pid": f"{TMP_PREFIX}{10**30}-{host_tag()}-0123456789ab",
    }[writer]
    assert orphaned(name, age) is gone


def test_reap_counts_what_went_and_lets_no_error_out() -> None:
    dead = [temp_name(pid=dead_pid()) for _ in range(3)]
    listed = {
        "a": [(dead[0], None), (temp_name(), None), ("not-ours", None)],
        "b": [(dead[1], None), (dead[2], None)],
    }
    removed: list[str] = []

    def temporaries(folder: str) -> list[tuple[str, float | None]]:
        if folder not in listed:
            raise NotFound(f"{folder}: gone")
        return listed[folder]

    def remove(folder: str, name: str) -> None:
        if name == dead[2]:
            raise PermissionError("not ours to delete")
        removed.append(f"{folder}/{name}")

    assert reap(["gone", "a", "b"], temporaries, remove) == 2
    assert removed == [f"a/{dead[0]}", f"b/{dead[1]}"]
