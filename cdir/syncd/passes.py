"""One sync pass at a time (`VDir.sync`), each summed up in one log line, its errors on lines
of their own; which providers failed, for the schedule's backoff."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Sequence
from typing import Any

from cdir.errors import CdirError
from cdir.schema import SyncReport

log = logging.getLogger("cdir.syncd")
MAX_ERROR_LINES = 20  # a pass where 10,000 files failed says so in 21 lines, not 10,000


class Passes:
    """Runs passes one after the other (several triggers may fire at once: a poll, a
    watched folder, the periodic full pass); none starts once the daemon is stopping."""

    def __init__(self, vdir: Any) -> None:
        self.vdir = vdir
        self.parallel = vdir.settings.parallel
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self, only: Sequence[str] | None, why: str, known: Collection[str]) -> set[str]:
        """A pass over `only` (None: every provider), after the one in progress. Returns
        the providers that failed: those an error names (of `known`), or `only` when the
        pass itself failed."""
        with self.lock:
            if self.stopping.is_set():
                return set()
            what = ",".join(only) if only else "all"
            t0 = time.perf_counter()
            try:
                rep = self._pass(only, why)
            except CdirError as exc:
                log.error("pass %s (%s): failed after %.2f s: %s", what, why, _since(t0), exc)
                return set(only or ())
            except Exception:  # a bug must not end the daemon: said in full, then go on
                log.exception("pass %s (%s): failed unexpectedly", what, why)
                return set(only or ())
            if rep is None:
                log.debug("pass %s (%s): nothing in its change feed", what, why)
                return set()
            log.info("pass %s (%s): %s", what, why, summary(rep))
            for err in rep.errors[:MAX_ERROR_LINES]:
                log.error("pass %s: error: %s", what, err)
            if len(rep.errors) > MAX_ERROR_LINES:
                log.error(
                    "pass %s: … and %d more error(s)", what, len(rep.errors) - MAX_ERROR_LINES
                )
            return {n for n in known for e in rep.errors if e.startswith(f"{n}: ")}

    def _pass(self, only: Sequence[str] | None, why: str) -> SyncReport | None:
        """A poll of one provider asks its change feed first (VDir.poll); None: no pass."""
        if why == "poll" and only and len(only) == 1:
            return self.vdir.poll(only[0], parallel=self.parallel)
        return self.vdir.sync(
            "/", only=list(only) if only else None, parallel=self.parallel, progress=False
        )

    def run_jobs(self) -> None:
        """Run the one-way syncs queued with `cdir sync SOURCE DESTINATION --async`, between
        passes, one log line each."""
        run_queued = getattr(self.vdir, "run_queued", None)
        if run_queued is None:
            return
        with self.lock:
            if self.stopping.is_set():
                return
            try:
                done = run_queued(parallel=self.parallel)
            except CdirError as exc:
                log.error("queued sync jobs: failed: %s", exc)
                return
            except Exception:
                log.exception("queued sync jobs: failed unexpectedly")
                return
        for j in done:
            name = j.name or j.id
            where = f"{j.source} → {j.destination}"
            log.info(
                "job %s (%s): %s, copied %d, failed %d",
                name,
                where,
                j.state,
                j.files_done,
                j.files_failed,
            )
            for err in j.errors[:MAX_ERROR_LINES]:
                log.error("job %s: error: %s", name, err)


def summary(rep: SyncReport) -> str:
    return (
        f"checked {rep.checked}, changed {rep.changed}, new {rep.imported}, "
        f"conflicts {rep.conflicts}, restored {rep.restored}, deleted {rep.deleted}, "
        f"copied {rep.copied}, failed {rep.failed} in {rep.seconds:.2f} s"
    )


def _since(t0: float) -> float:
    return time.perf_counter() - t0
