"""`WebDAVProvider`: the provider interface on a WebDAV share (the package docstring says how
the tree maps onto the server). Paths become keys here; `DAVSession` sends the requests."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import BinaryIO, cast

from cdir.errors import (
    Conflict,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    NotFound,
    ProviderError,
    Unsupported,
    UsageError,
    translated,
)
from cdir.providers.base import CHUNK, TMP_PREFIX, Capabilities, Provider, RemoteStat, reap
from cdir.providers.common import (
    ChunkReader,
    PrependedStream,
    check_size,
    range_header,
    read_upto,
    walk_folders,
)
from cdir.providers.webdav.errors import ERRORS, DAVStatus
from cdir.providers.webdav.session import DAVSession
from cdir.providers.webdav.settings import OPTIONS, resolve
from cdir.providers.webdav.wire import NS, XML, is_collection, responses, to_stat

SMALL_BODY = 1024 * 1024  # bodies up to this size are sent in one piece


class WebDAVProvider(Provider):
    """A WebDAV share. `root` is a path below `url` ("" = the URL's collection itself)."""

    kind = "webdav"
    # set_mtime is replaced per instance from the configured mtime_method (False with "none").
    capabilities = Capabilities(
        empty_dirs=True,
        set_mtime=True,
        mtime_precision_ns=NS,  # getlastmodified is an HTTP date: whole seconds
        hash_kinds=frozenset(),  # only Nextcloud/ownCloud report checksums, and not always
        case_sensitive=True,
        range_reads=True,
        server_side_copy=True,
        # MOVE: one request, done by the server (on a server that mangles `?;#` in the
        # Destination, a file moved to such a name goes through cdir: copy, then delete)
        server_side_move=True,
        temporaries=True,  # uploads go to a hidden name, then are moved into place
    )
    options = OPTIONS

    def configure(self) -> None:
        settings = resolve(self.name, self.root, self.conf)
        self.mtime_method = settings.mtime_method
        # Capabilities is a ClassVar in the interface; this server's abilities depend on its
        # configuration, so the instance shadows it.
        self.capabilities = dataclasses.replace(
            type(self).capabilities, set_mtime=self.mtime_method != "none"
        )
        self.url = settings.url  # shown in messages: no credentials
        # options may be stored in the clear: a password in the URL goes to the secrets
        if "url" in self.opts:
            self.opts["url"] = self.url
        if settings.password and "password" not in self.secrets:
            self.secrets["password"] = settings.password
        self._dav = DAVSession(settings, self._what)

    @staticmethod
    def _rel(path: str) -> str:
        rel = path.strip("/")
        if any(seg in ("", ".", "..") for seg in rel.split("/")) and rel:
            raise InvalidPath(f"invalid provider path {path!r}")
        return rel

    # --- reading ---------------------------------------------------------------------------
    def list(
        self, path: str = "", recursive: bool = False, *, mtimes: bool = True
    ) -> Iterator[RemoteStat]:
        return walk_folders(self._rel(path), self._children, recursive)

    def _children(self, rel: str, temporaries: bool = False) -> Iterator[RemoteStat]:
        """The entries of one collection, parsed from PROPFIND Depth 1 as it streams in; with
        `temporaries`, the uploads in flight (TMP_PREFIX names) are not left out."""
        key = self._dav.key(rel)
        me = self._dav.abs(key)
        what = self._what(rel)
        with (
            translated(ERRORS, what),
            self._dav.http().stream(
                "PROPFIND",
                self._dav.url(key, collection=True),
                headers={"Depth": "1", **XML},
                content=self._dav.body,
                follow_redirects=True,
            ) as resp,
        ):
            if resp.status_code >= 400:
                raise DAVStatus("PROPFIND", resp.status_code)
            if resp.status_code != 207:
                raise ProviderError(
                    f"{what}: PROPFIND answered {resp.status_code}, not a WebDAV multistatus"
                )
            first = True
            for href, found in responses(resp.iter_bytes()):
                # The collection itself is in its own answer; servers put it first.
                is_self = href == me or (first and not href.startswith(me + "/"))
                first = False
                if is_self:
                    if not is_collection(found):
                        raise NotADirectory(f"{what}: not a directory")
                    continue
                name = href.rsplit("/", 1)[-1]
                if not name or (name.startswith(TMP_PREFIX) and not temporaries) or not found:
                    continue  # an upload in flight, or an entry without readable props
                yield to_stat(f"{rel}/{name}" if rel else name, found)

    def stat(self, path: str) -> RemoteStat:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            return self._dav.stat_key(rel, self._dav.key(rel))

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        rel = self._rel(path)
        key = self._dav.key(rel)
        what = self._what(rel)
        if end is not None and end <= start:
            self.stat(rel)  # nothing to read, but a missing file is still NotFound
            return
        headers = range_header(start, end)
        with (
            translated(ERRORS, what),
            self._dav.http().stream(
                "GET", self._dav.url(key), headers=headers, follow_redirects=True
            ) as resp,
        ):
            if resp.status_code == 416:
                return  # start is at or past the end
            if resp.status_code >= 400:
                if resp.status_code in (403, 405) and self._dav.stat_key(rel, key).kind == "dir":
                    raise IsADirectory(f"{what}: is a directory")
                raise DAVStatus("GET", resp.status_code)
            # 200 to a range request: the server sent the whole file, so cut it here
            skip = start if headers and resp.status_code == 200 else 0
            left = None if end is None else end - start
            for chunk in resp.iter_bytes(CHUNK):
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk, skip = chunk[skip:], 0
                if left is not None:
                    chunk = chunk[:left]
                    left -= len(chunk)
                if chunk:
                    yield chunk
                if left == 0:
                    break

    # --- writing ---------------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            self._dav.ensure_dirs(self._dav.key(rel), exact=True)

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        rel = self._rel(path)
        what = self._what(rel)
        if not rel:
            raise IsADirectory(f"{what}: is a directory")
        key = self._dav.key(rel)
        parent = key.rpartition("/")[0]
        headers: dict[str, str] = {}
        if mtime_ns is not None and self.mtime_method == "x-oc-mtime":
            headers["X-OC-Mtime"] = str(mtime_ns // NS)
        with translated(ERRORS, what):
            self._dav.ensure_dirs(parent)
            if not self._dav.destination_ok(key):
                # This server cannot MOVE onto this name: write in place (not atomic).
                status, md5 = self._upload(stream, key, parent, size, headers, what)
                if status == 405:
                    raise IsADirectory(f"{what}: is a directory")
                if mtime_ns is not None and self.mtime_method == "proppatch":
                    self._dav.patch_mtime(rel, key, mtime_ns)
                return _with_md5(self._dav.stat_key(rel, key), md5)
            tmp = self._dav.tmp_key(parent)
            with self._dav.deleted_on_failure(tmp):
                _, md5 = self._upload(stream, tmp, parent, size, headers, what)
                if mtime_ns is not None and self.mtime_method == "proppatch":
                    # before the MOVE, so readers never see the file with the upload time
                    self._dav.patch_mtime(rel, tmp, mtime_ns)
                self._dav.move_into_place(tmp, key)
            # The ETag of the PUT answer predates the mtime change and the server's own time
            # is unknown, so read back what readers will see.
            return _with_md5(self._dav.stat_key(rel, key), md5)

    def _upload(
        self,
        stream: BinaryIO,
        key: str,
        parent: str,
        size: int | None,
        headers: dict[str, str],
        what: str,
    ) -> tuple[int, str]:
        """PUT the stream to `key` (`_body` says how). A 409 (a parent removed behind our
        back, so the collection cache lied) is retried once when the body can be sent again.
        Returns the status (405: a collection is there) and the MD5 of the body sent."""
        md5 = hashlib.md5(usedforsecurity=False)
        body, size, pos = _body(stream, size, what, md5)
        if size is not None:
            headers = {**headers, "Content-Length": str(size)}
        resp = self._dav.send("PUT", key, headers=headers, content=body, ok=(404, 405, 409))
        if resp.status_code == 404:  # rclone's answer when the parent is a file
            self._dav.file_in_the_way(parent)
            raise DAVStatus("PUT", 404)
        if resp.status_code != 409:
            return resp.status_code, md5.hexdigest()
        self._dav.forget_dirs(parent)
        self._dav.file_in_the_way(parent)
        if not isinstance(body, bytes):
            if pos is None:
                raise Conflict(
                    f"{self._dav.what_key(key)}: a parent directory vanished during the upload",
                    retryable=True,
                )  # a retry MKCOLs it again
            stream.seek(pos)
            md5 = hashlib.md5(usedforsecurity=False)  # the body is read again from the start
            body = _hashed(PrependedStream(b"", stream, size, what).blocks(CHUNK), md5)
        self._dav.ensure_dirs(parent)
        resp = self._dav.send("PUT", key, headers=headers, content=body, ok=(405,))
        return resp.status_code, md5.hexdigest()

    def delete(self, path: str) -> None:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            key = self._dav.key(rel)
            # DELETE of a collection removes the whole tree: only files go this way
            if not rel or self._dav.stat_key(rel, key).kind == "dir":
                raise IsADirectory(f"{self._what(rel)}: is a directory")
            self._dav.send("DELETE", key)

    def delete_tree(self, path: str) -> None:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            key = self._dav.key(rel)
            if key:
                self._dav.send("DELETE", key, ok=(404,))
            else:  # never delete the account's own collection (the URL): empty it instead
                for item in list(self._children("")):
                    self._dav.send("DELETE", self._dav.key(item.path), ok=(404,))
            self._dav.forget_dirs(key)

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        rel = self._rel(path)
        if self.mtime_method == "none":
            raise Unsupported(f"{self.name}: cannot set modification times (mtime_method none)")
        with translated(ERRORS, self._what(rel)):
            key = self._dav.key(rel)
            self._dav.patch_mtime(rel, key, mtime_ns)
            return self._dav.stat_key(rel, key)

    def copy(self, src: str, dst: str) -> RemoteStat:
        s, d = self._rel(src), self._rel(dst)
        with translated(ERRORS, self._what(s)):
            skey, dkey = self._dav.key(s), self._dav.key(d)
            before = self._dav.stat_key(s, skey)
            if before.kind == "dir":
                raise IsADirectory(f"{self._what(s)}: is a directory")
            if not d:
                raise IsADirectory(f"{self._what(d)}: is a directory")
            parent = dkey.rpartition("/")[0]
            self._dav.ensure_dirs(parent)
            if not self._dav.destination_ok(dkey):  # the server cannot COPY there: go through us
                source = cast(BinaryIO, ChunkReader(self.read_chunks(s)))
                return self.put_stream(source, d, before.size, before.mtime_ns)
            # COPY onto a temporary name and MOVE it into place: readers never see a partial
            # copy, and an existing directory at dst is refused rather than replaced.
            tmp = self._dav.tmp_key(parent)
            self._dav.send(
                "COPY", skey, headers={**self._dav.destination(tmp, overwrite=False), "Depth": "0"}
            )
            with self._dav.deleted_on_failure(tmp):
                if (
                    self.capabilities.set_mtime
                    and before.mtime_ns is not None
                    and self._dav.stat_key(d, tmp).mtime_ns != before.mtime_ns
                ):
                    self._dav.patch_mtime(d, tmp, before.mtime_ns)  # server did not keep it
                self._dav.move_into_place(tmp, dkey)
            return self._dav.stat_key(d, dkey)

    def move(self, src: str, dst: str) -> RemoteStat:
        s, d = self._rel(src), self._rel(dst)
        with translated(ERRORS, self._what(s)):
            skey, dkey = self._dav.key(s), self._dav.key(d)
            if not s or not d:
                raise UsageError(f"{self._what(s)}: cannot move the root or onto it")
            self._dav.ensure_dirs(dkey.rpartition("/")[0])
            if not self._dav.destination_ok(dkey):
                # the server cannot MOVE there: copy through us, then delete (files only)
                if self._dav.stat_key(s, skey).kind == "dir":
                    raise Unsupported(
                        f"{self._what(d)}: this server cannot move a directory "
                        "to a name with ?, ; or #"
                    )
                moved = self.copy(s, d)
                self._dav.send("DELETE", skey)
                return moved
            try:
                self._dav.move_into_place(skey, dkey)
            except DAVStatus as exc:
                # some servers (rclone) answer 403 for a missing source: say NotFound then
                if exc.status in (403, 409):
                    self._dav.stat_key(s, skey)
                raise
            self._dav.forget_dirs(skey)
            return self._dav.stat_key(d, dkey)

    def reap_temporaries(self, folders: Iterable[str]) -> int:
        workers = self._dav.settings.max_connections
        return reap(folders, self._temporaries, self._remove_temporary, workers)

    def _temporaries(self, folder: str) -> Iterator[tuple[str, float | None]]:
        for st in self._children(self._rel(folder), temporaries=True):
            if st.name.startswith(TMP_PREFIX):
                yield st.name, None if st.mtime_ns is None else st.mtime_ns / NS

    def _remove_temporary(self, folder: str, name: str) -> None:
        rel = self._rel(folder)
        # a collection there is a Destination probe's (`DAVSession._probe_destination`)
        self._dav.send("DELETE", self._dav.key(f"{rel}/{name}" if rel else name), ok=(404,))

    def check(self) -> None:
        with translated(ERRORS, self._what("")):
            resp = self._dav.send(
                "PROPFIND",
                "",
                collection=True,
                headers={"Depth": "0", **XML},
                content=self._dav.body,
                ok=(404,),
                follow=True,
            )
            if resp.status_code == 404:
                raise NotFound(
                    f"{self.name}: {self.url} not found (check url, preset, host and username)"
                )
            if resp.status_code != 207:
                raise ProviderError(
                    f"{self.name}: {self.url} is not a WebDAV collection "
                    f"(PROPFIND answered {resp.status_code})"
                )

    def close(self) -> None:
        self._dav.close()


def _body(
    stream: BinaryIO, size: int | None, what: str, md5: hashlib._Hash
) -> tuple[bytes | Iterator[bytes], int | None, int | None]:
    """What a PUT sends, hashed into `md5` (as it is sent, when streamed): up to SMALL_BODY in
    one piece (also when the size is not given but the stream is that short), else streamed
    (chunked when the size is unknown). With the size to announce, and where a seekable
    stream of known size started (so it can be sent again), else None."""
    head = b""
    if size is not None and size <= SMALL_BODY:
        body = read_upto(stream, size + 1)  # one more: a stream that runs long is refused
        check_size(what, size, len(body), more=len(body) > size)
        md5.update(body)
        return body, size, None
    if size is None and len(head := read_upto(stream, SMALL_BODY + 1)) <= SMALL_BODY:
        md5.update(head)
        return head, len(head), None
    pos = None
    with suppress(AttributeError, OSError, ValueError):
        pos = stream.tell() if stream.seekable() and size is not None else None
    # a stream of the wrong size raises while it is sent, failing the PUT
    return _hashed(PrependedStream(head, stream, size, what).blocks(CHUNK), md5), size, pos


def _hashed(blocks: Iterator[bytes], md5: hashlib._Hash) -> Iterator[bytes]:
    """The blocks as they are sent, each hashed on the way (no second pass)."""
    for block in blocks:
        md5.update(block)
        yield block


def _with_md5(st: RemoteStat, md5: str) -> RemoteStat:
    """`st` with the MD5 hashed while the bytes were sent; a hash the server reports itself
    (Nextcloud's oc:checksums) describes what it stored, and wins."""
    return dataclasses.replace(st, hashes={"md5": md5, **st.hashes})
