"""Whether a process runs on this host — for claims, daemon registrations and upload
temporaries, which all name the process that made them so that a later one can tell whether
it is gone."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether `pid` runs on this host. A zombie (killed, not yet reaped: an orphan under an
    init that does not reap) does not; another user's process does."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return True  # cannot tell (a number no pid can be): taken as running, to be safe
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS, Windows): the kill said it runs
