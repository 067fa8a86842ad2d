"""Writes through the virtual directory: put, cp and replicate plan in memory from one
catalog read, run the transfers on the engine's thread pool, and record the outcome in
batched transactions: a replica is marked current only after its provider confirmed the
write and the size was checked."""

from __future__ import annotations

import contextlib
import posixpath
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from cdir.catalog import Provider, queries, writes
from cdir.errors import (
    CdirError,
    InvalidPath,
    NotADirectory,
    NotFound,
    UsageError,
)
from cdir.providers import Provider as Backend
from cdir.providers import RemoteStat
from cdir.providers.common import chunk_reader
from cdir.schema import TransferReport
from cdir.schema.models import ProviderTally
from cdir.schema.paths import is_within, split
from cdir.vdir import engine, verify
from cdir.vdir.base import BATCH, Core, actor_name, interruptible
from cdir.vdir.localtree import WalkNotes, put_source
from cdir.vdir.plan import (
    FileJob,
    Holder,
    LocalSource,
    StreamSource,
    plan_writes,
    remote_of,
)
from cdir.vdir.verify import Findings


class TransferOps(Core):
    def put(
        self,
        sources: Sequence[str],
        dest: str,
        *,
        to: Sequence[str] | None = None,
        recursive: bool = False,
        parallel: int = 4,
        progress: bool = True,
        follow_links: bool = False,
    ) -> TransferReport:
        """Upload local files or trees, rsync-like: identical files are skipped. Entries of
        a tree that cannot be put (unreadable, a name that is not UTF-8) are errors of their
        own; specials and links (unless followed) are skipped and counted."""
        if not sources:
            raise UsageError("nothing to put: give at least one local file or directory")
        dest_path = self.path(dest)
        providers = self.resolve_providers(to)
        de = self.entry_or_none(dest_path)
        if de is not None and de.kind == "file" and (len(sources) > 1 or Path(sources[0]).is_dir()):
            raise NotADirectory(f"not a directory: {dest_path}")
        into = (de is not None and de.kind == "dir") or dest.endswith("/") or len(sources) > 1
        files: list[FileJob] = []
        dirs: set[str] = set()
        notes = WalkNotes()
        for src in sources:
            self._gather(src, dest_path, into, recursive, follow_links, files, dirs, notes)
        report = self.write_jobs(files, dirs, providers, parallel=parallel, progress=progress)
        report.errors[:0] = notes.errors
        report.failed += len(notes.errors)
        report.skipped += len(notes.skipped)
        report.warnings += notes.skipped
        return report

    def _gather(
        self,
        src: str,
        dest: str,
        into: bool,
        recursive: bool,
        follow_links: bool,
        files: list[FileJob],
        dirs: set[str],
        notes: WalkNotes,
    ) -> None:
        """The jobs and directories one local source brings."""
        for lp, vp, st in put_source(src, dest, into, recursive, follow_links, notes):
            if st is None:
                dirs.add(vp)
            else:
                files.append(FileJob(vp, st.st_size, st.st_mtime_ns, LocalSource(lp)))

    # --- the shared write path ------------------------------------------------------------
    def write_jobs(
        self,
        files: list[FileJob],
        dirs: set[str],
        providers: list[Provider],
        *,
        parallel: int,
        progress: bool,
        action: str = "put",
    ) -> TransferReport:
        """Plan, transfer and record `files`; `dirs` are created once something landed.
        The subtree they fall in is claimed meanwhile: an rm or mv of it waits."""
        where = posixpath.commonpath([f.vpath for f in files] + sorted(dirs) or ["/"])
        with self.claim([where], exclusive=False, command=f"{action} {where}"):
            return self._write_claimed(files, dirs, providers, parallel, progress, action)

    def _write_claimed(
        self,
        files: list[FileJob],
        dirs: set[str],
        providers: list[Provider],
        parallel: int,
        progress: bool,
        action: str,
    ) -> TransferReport:
        t0 = time.perf_counter()
        report = TransferReport()
        with self.db.transaction() as s:
            existing = queries.entries_at(s, [f.vpath for f in files])
            reps = queries.replica_map(s, [e.id for e in existing.values()])
            report.skipped = plan_writes(
                files, existing, reps, providers, queries.providers_by_id(s)
            )
            clashes = self.drop_case_clashes(s, files)
            writes.check_dirs(s, {split(f.vpath)[0] for f in files} | dirs)
        report.errors += clashes
        report.failed += len(clashes)
        todo = [f for f in files if f.targets]
        with interruptible(report, action):
            try:
                self._transfer(todo, parallel, progress, action, report)
            finally:
                self.reap(_folders(todo))
                report.seconds = round(time.perf_counter() - t0, 3)
        if dirs and (report.files or not todo):
            self.db.write(lambda s: writes.ensure_dirs(s, dirs))
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def _transfer(
        self,
        todo: list[FileJob],
        parallel: int,
        progress: bool,
        action: str,
        report: TransferReport,
    ) -> None:
        findings = Findings()
        tasks = [
            engine.Task((f, p), f.size, self._bind(f, p, findings), f"{p.name}:{f.vpath}", p.name)
            for f in todo
            for p in f.targets
        ]
        pending = {id(f): len(f.targets) for f in todo}
        finished: list[FileJob] = []
        recorded: set[int] = set()
        total = sum(f.size * len(f.targets) for f in todo)
        run = engine.run(tasks, parallel, None, self.widths(tasks))
        try:
            with engine.Progress(action, len(todo), total, progress) as bar:
                for out in run:
                    f = self._settle(out, report, bar)
                    pending[id(f)] -= 1
                    if pending[id(f)] == 0:
                        bar.advance(1, 0)
                        finished.append(f)
                        if len(finished) >= BATCH:
                            self._record(finished, action, report)
                            recorded.update(id(f) for f in finished)
                            finished = []
        finally:
            # also on Ctrl-C or an error: what providers confirmed is recorded, so a re-run
            # skips it and no replica is unknown to the catalog
            partial = [f for f in todo if f.done and pending[id(f)] and id(f) not in recorded]
            self._record(finished + partial, action, report)
            findings.record(self.db)
            untried = Counter(p.name for f in todo for p in f.targets if p.id in f.untried)
            report.errors += engine.down_summary(run.down, untried)

    def _settle(
        self,
        out: engine.Outcome[tuple[FileJob, Provider]],
        report: TransferReport,
        bar: engine.Progress,
    ) -> FileJob:
        f, p = out.task.key
        assert p.id is not None
        tally = report.providers.setdefault(p.name, ProviderTally())
        if out.error is not None:
            f.failed[p.id] = str(out.error)
            if isinstance(out.error, engine.Untried):
                f.untried.add(p.id)  # summed up in one line per provider
        elif out.result.size != f.size:
            f.failed[p.id] = f"{p.name}: size mismatch after write ({out.result.size} != {f.size})"
        else:
            f.done[p.id] = out.result
            report.bytes += f.size
            tally.files += 1
            tally.bytes += f.size
            bar.advance(0, f.size)
        tally.failed += p.id in f.failed
        return f

    def _record(self, jobs: list[FileJob], action: str, report: TransferReport) -> None:
        """One transaction for a batch of finished files. A file that an interrupt stopped
        before all its targets were tried is recorded (what landed is current) but counted
        neither put nor failed: the summary's count is what a re-run skips."""
        versions = [f.version() for f in jobs if f.done]
        errs = (
            self.db.write(lambda s: writes.record_versions(s, versions, action, actor_name()))
            if versions
            else []
        )
        for f in jobs:
            report.errors.extend(e for pid, e in f.failed.items() if pid not in f.untried)
            if len(f.done) + len(f.failed) < len(f.targets):
                continue
            report.failed += bool(f.failed) or not f.done
            report.files += bool(f.done)
        report.errors.extend(errs)
        report.failed += len(errs)

    def _bind(self, job: FileJob, prov: Provider, findings: Findings) -> Callable[[], RemoteStat]:
        return lambda: self.upload(job, prov, findings)

    def upload(self, job: FileJob, prov: Provider, findings: Findings | None = None) -> RemoteStat:
        """Send one job's bytes to one provider; then drop the provider's old copy if it
        sat elsewhere (see FileJob.moved_from)."""
        st = self._send(job, prov, findings)
        old = job.moved_from.get(prov.id or 0)
        if old:
            with contextlib.suppress(NotFound):
                self.backend(prov.name).delete(old)
        return st

    def _send(self, job: FileJob, prov: Provider, findings: Findings | None) -> RemoteStat:
        dst, remote = self.backend(prov.name), remote_of(job.vpath)
        src = job.source
        if isinstance(src, LocalSource):
            return dst.put_file(Path(src.path), remote, mtime_ns=job.mtime_ns)
        if isinstance(src, StreamSource):
            return dst.put_stream(src.stream, remote, size=src.size, mtime_ns=job.mtime_ns)
        for h in src.holders:  # same provider and server-side copy: no bytes through us
            if h.provider.id == prov.id and dst.capabilities.server_side_copy:
                if h.replica.remote_path == remote:
                    return dst.stat(remote)
                return dst.copy(h.replica.remote_path, remote)
        return self.stream_copy(
            src.holders, prov, remote, job.size, job.mtime_ns, job.hash, findings or Findings()
        )

    def stream_copy(
        self,
        holders: Sequence[Holder],
        prov: Provider,
        remote: str,
        size: int,
        mtime_ns: int | None,
        expect: str | None,
        findings: Findings,
    ) -> RemoteStat:
        """Provider → provider without a temporary copy; the next holder on failure. The
        bytes are hashed on the way where the catalog knows the version's hash (`expect`,
        "md5:…"): a source that changed outside cdir is not copied from, and is noted in
        `findings` (as one found missing is)."""
        dst = self.backend(prov.name)
        last: CdirError | None = None
        for h in holders:
            try:
                st = self._copy_from(h, dst, remote, size, mtime_ns, expect)
            except (NotFound, verify.Changed) as exc:
                if isinstance(exc, verify.Changed) or getattr(exc, "source", False):
                    findings.note(h, exc)
                last = exc
                continue
            except CdirError as exc:
                last = exc
                continue
            if mtime_ns is not None and dst.capabilities.set_mtime and st.mtime_ns is None:
                st = dst.set_mtime(remote, mtime_ns)
            return st
        assert last is not None
        raise last

    def _copy_from(
        self,
        h: Holder,
        dst: Backend,
        remote: str,
        size: int,
        mtime_ns: int | None,
        expect: str | None,
    ) -> RemoteStat:
        src = self.backend(h.provider.name)
        # the known end lets a provider fetch a big file in parallel ranges
        chunks = src.read_chunks(h.replica.remote_path, 0, size or None)
        try:
            first = next(chunks, b"")
        except NotFound as exc:
            exc.source = True  # type: ignore[attr-defined]  # the source is gone, not dst
            raise
        kind, _, want = (expect or "").partition(":")
        hasher = verify.HASHERS[kind](usedforsecurity=False) if kind in verify.HASHERS else None
        stream = (
            verify.hashed(verify.prepend(first, chunks), hasher)
            if hasher
            else verify.prepend(first, chunks)
        )
        st = dst.put_stream(chunk_reader(stream), remote, size=size, mtime_ns=mtime_ns)
        got = hasher.hexdigest() if hasher else st.hashes.get(kind, want)
        if want and got != want:
            dst.delete(remote)
            raise verify.Changed(
                f"{h.provider.name}:/{h.replica.remote_path}: the replica changed outside cdir "
                f"({kind} {got[:12]}… where the catalog has {want[:12]}…); not copied from"
            )
        return st


def _folders(jobs: Sequence[FileJob]) -> dict[str, set[str]]:
    """provider name → the remote folders the jobs wrote into."""
    out: dict[str, set[str]] = {}
    for f in jobs:
        for p in f.targets:
            out.setdefault(p.name, set()).add(remote_of(split(f.vpath)[0]))
    return out


def check_within(path: str, ancestor: str) -> None:
    if is_within(path, ancestor) and path != ancestor:
        raise InvalidPath(f"cannot copy or move {ancestor} into itself ({path})")
