"""Run one command, write its wall time and rusage as JSON: `python -I -S _launch.py OUT -- CMD`.

Why a separate, small process: Linux keeps a process's peak RSS across execve, so a command
spawned straight from the runner (which may hold a big catalog generator in memory) would
report the runner's peak, not its own. Spawned from here, the floor is this tiny interpreter.
Only the standard library, no site packages: it starts fast and stays small.
"""

import json
import os
import sys
import time


def main() -> int:
    out, sep, *cmd = sys.argv[1:]
    if sep != "--" or not cmd:
        print("usage: _launch.py OUT -- CMD...", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    pid = os.posix_spawnp(cmd[0], cmd, os.environ)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - t0
    with open(out, "w") as f:
        json.dump(
            {
                "seconds": seconds,
                "returncode": os.waitstatus_to_exitcode(status),
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "max_rss_kib": usage.ru_maxrss,
            },
            f,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
