"""The requests of one webdav provider, on *keys* (paths relative to the URL, root included),
and what they keep between calls: the HTTP client, the cache of known collections and the
result of the Destination probe. The provider maps its paths onto keys and calls this."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import httpx

from cdir.errors import (
    AlreadyExists,
    IsADirectory,
    NotADirectory,
    NotFound,
    ProviderError,
    Unsupported,
)
from cdir.providers.base import RemoteStat, temp_name
from cdir.providers.webdav.errors import DAVStatus
from cdir.providers.webdav.settings import Settings
from cdir.providers.webdav.wire import (
    XML,
    first_response,
    mtime_body,
    propfind_body,
    quote_path,
    refused_status,
    to_stat,
)

# Characters some servers lose from a MOVE/COPY Destination (wsgidav 4.4 decodes the header
# before splitting off query and params, so `a?b` becomes `a`); see `destination_ok`.
RISKY_IN_DESTINATION = frozenset("?;#")


class DAVSession:
    """`what(rel)` names a provider path in messages; `rel` arguments are provider paths
    (for messages), `key` arguments the paths on the server below the URL."""

    def __init__(self, settings: Settings, what: Callable[[str], str]) -> None:
        self.settings = settings
        self.what = what
        self.body = propfind_body(settings.checksums)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        # Collections known to exist (keys), so each parent gets at most one MKCOL per
        # process; "" is the URL's collection, which must exist.
        self._known_dirs: set[str] = {""}
        self._dir_locks: dict[str, threading.Lock] = {}
        self.mangles_destination: bool | None = None  # probed on the first risky name

    # --- the client and URLs ---------------------------------------------------------------
    def http(self) -> httpx.Client:
        """The client, made on first use (one per provider, shared by its threads)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._new_client()
                client = self._client
        return client

    def _new_client(self) -> httpx.Client:
        s = self.settings
        auth = httpx.BasicAuth(s.username, s.password) if s.username or s.password else None
        return httpx.Client(
            auth=auth,
            verify=s.verify_tls,
            http1=True,
            http2=False,
            # waiting for a free connection is fine
            timeout=httpx.Timeout(s.timeout, connect=min(s.timeout, 15.0), pool=None),
            limits=httpx.Limits(
                max_connections=s.max_connections, max_keepalive_connections=s.max_connections
            ),
            headers={"User-Agent": "cdir"},
        )

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def key(self, rel: str) -> str:
        """The key of a provider path (root + rel), as the collection cache knows it."""
        return "/".join([*self.settings.root_segs, *([rel] if rel else [])])

    def what_key(self, key: str) -> str:
        """`what` of a key, shown relative to the root."""
        root = self.key("")
        rel = key[len(root) :].lstrip("/") if root and key.startswith(root) else key
        return self.what(rel)

    def url(self, key: str, collection: bool = False) -> str:
        segs = [*self.settings.base_segs, *([key] if key else [])]
        path = "/" + quote_path("/".join(segs)) if segs else ""
        return f"{self.settings.origin}{path}{'/' if collection or not segs else ''}"

    def abs(self, key: str) -> str:
        """Decoded absolute path of `key` on the server, as href_path gives it."""
        return ("/" + "/".join([*self.settings.base_segs, *([key] if key else [])])).rstrip("/")

    # --- requests --------------------------------------------------------------------------
    def send(
        self,
        method: str,
        key: str,
        *,
        collection: bool = False,
        headers: Mapping[str, str] | None = None,
        content: Any = None,
        ok: tuple[int, ...] = (),
        follow: bool = False,
    ) -> httpx.Response:
        """One request; statuses >= 400 not in `ok` raise DAVStatus."""
        resp = self.http().request(
            method,
            self.url(key, collection),
            headers=headers,
            content=content,
            follow_redirects=follow,
        )
        if resp.status_code >= 400 and resp.status_code not in ok:
            raise DAVStatus(method, resp.status_code)
        return resp

    def destination(self, key: str, overwrite: bool) -> dict[str, str]:
        return {"Destination": self.url(key), "Overwrite": "T" if overwrite else "F"}

    def stat_key(self, rel: str, key: str) -> RemoteStat:
        resp = self.send(
            "PROPFIND", key, headers={"Depth": "0", **XML}, content=self.body, follow=True
        )
        if resp.status_code != 207:
            raise ProviderError(
                f"{self.what(rel)}: PROPFIND answered {resp.status_code}, not a WebDAV multistatus"
            )
        found = first_response(resp.content)
        if found is None:
            raise NotFound(f"{self.what(rel)}: not found")
        return to_stat(rel, found)

    def file_in_the_way(self, key: str) -> None:
        """After a 409 or 404: NotADirectory if `key`, a would-be parent, or one of its
        ancestors is a file (walking up over missing levels; this is only on error paths)."""
        root = self.key("")
        while key and key != root:
            try:
                kind = self.stat_key(key, key).kind
            except (NotFound, DAVStatus):
                key = key.rpartition("/")[0]
                continue
            if kind == "file":
                raise NotADirectory(f"{self.what_key(key)}: not a directory")
            return

    # --- collections -----------------------------------------------------------------------
    def forget_dirs(self, key: str) -> None:
        """Drop `key` and everything below it from the collection cache."""
        with self._lock:
            self._known_dirs -= {k for k in self._known_dirs if k == key or k.startswith(key + "/")}
            self._known_dirs.add("")

    def ensure_dirs(self, key: str, *, exact: bool = False, retry: bool = True) -> None:
        """MKCOL `key` and its missing parents, one level at a time, skipping known ones.
        With `exact`, a non-collection in the way of the last level is AlreadyExists."""
        segs = key.split("/") if key else []
        have = len(segs)
        while have > 0 and "/".join(segs[:have]) not in self._known_dirs:
            have -= 1
        if exact and have == len(segs):
            have -= 1  # mkdir asks: make sure, the cache may be stale
            if have < 0:
                return
        last, restart = 0, False
        for level in range(have + 1, len(segs) + 1):
            sub = "/".join(segs[:level])
            check = exact and level == len(segs)
            with self._dir_lock(sub):  # one MKCOL per collection, even from many threads
                if sub in self._known_dirs and not check:
                    last = 201
                    continue
                status = self._mkcol(sub)
                if status in (404, 409) and last == 405:  # the level above may be a file
                    self.file_in_the_way(sub.rpartition("/")[0])
                if status in (404, 409):  # a parent we believed in is gone
                    status = 409
                    if retry and have > 0:
                        self.forget_dirs("/".join(segs[:have]))
                        restart = True
                        break
                    raise DAVStatus("MKCOL", 409)
                # 405: something exists there; mkdir needs it to be a collection
                if status == 405 and check and self.stat_key(sub, sub).kind != "dir":
                    raise AlreadyExists(f"{self.what_key(sub)}: a file is in the way")
                last = status
                with self._lock:
                    self._known_dirs.add(sub)
        if restart:  # once more from the top, without trusting the cache
            self.ensure_dirs(key, exact=exact, retry=False)

    def _mkcol(self, key: str) -> int:
        """MKCOL one collection: 201 made, 405 something is there, 409 (404) no parent."""
        status = self.send("MKCOL", key, collection=True, ok=(404, 405, 409, 500)).status_code
        if status == 500:  # wsgidav, when another client made it a moment ago
            with suppress(NotFound):
                if self.stat_key(key, key).kind == "dir":
                    return 405
            raise DAVStatus("MKCOL", 500)
        return status

    def _dir_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._dir_locks.setdefault(key, threading.Lock())

    # --- moving into place -----------------------------------------------------------------
    @staticmethod
    def tmp_key(parent: str) -> str:
        """A temporary's key in `parent`, named for this process (`temp_name`), so a command
        after a killed one can tell it is orphaned."""
        name = temp_name()
        return f"{parent}/{name}" if parent else name

    @contextmanager
    def deleted_on_failure(self, tmp: str) -> Iterator[None]:
        """Delete the temporary `tmp` (best effort) when the block fails."""
        try:
            yield
        except BaseException:
            with suppress(Exception):
                self.send("DELETE", tmp, ok=(404,))
            raise

    def move_into_place(self, src: str, dst: str, method: str = "MOVE") -> None:
        """MOVE (or COPY) `src` onto `dst`, replacing a file there but never a collection."""
        resp = self.send(method, src, headers=self.destination(dst, overwrite=False), ok=(412,))
        if resp.status_code != 412:
            return
        # Something is at dst. Overwrite: T would delete a whole tree if it is a collection.
        if self.stat_key(dst, dst).kind == "dir":
            raise IsADirectory(f"{self.what_key(dst)}: is a directory")
        self.send(method, src, headers=self.destination(dst, overwrite=True))

    def destination_ok(self, key: str) -> bool:
        """Whether a MOVE/COPY can target `key`. Names with `?`, `;` or `#` are probed once per
        process: a MOVE inside a temporary collection to such a name, then a look for it."""
        if self.mangles_destination is None and not RISKY_IN_DESTINATION.isdisjoint(key):
            with self._lock:
                probed = self.mangles_destination
            if probed is None:
                probed = self._probe_destination()
                with self._lock:
                    self.mangles_destination = probed
        return not (self.mangles_destination and not RISKY_IN_DESTINATION.isdisjoint(key))

    def _probe_destination(self) -> bool:
        """True if the server mangles Destination headers with `?;#` in them. Runs in a
        temporary collection (hidden from listings), deleted afterwards with any leftovers."""
        base = self.key("")
        self.ensure_dirs(base)
        coll = self.tmp_key(base)
        self.send("MKCOL", coll, collection=True)
        try:
            self.send("PUT", f"{coll}/a", content=b"")
            self.send(
                "MOVE", f"{coll}/a", headers=self.destination(f"{coll}/b #?;c", overwrite=False)
            )
            found = self.send(
                "PROPFIND",
                f"{coll}/b #?;c",
                headers={"Depth": "0", **XML},
                content=self.body,
                ok=(404,),
            )
            return found.status_code == 404
        finally:
            self.send("DELETE", coll, ok=(404,))

    # --- modification times ----------------------------------------------------------------
    def patch_mtime(self, rel: str, key: str, mtime_ns: int) -> None:
        """PROPPATCH the mtime of `key`. The answer has a status per property: all must be
        2xx, else the server refused (Unsupported, naming the other mtime methods)."""
        body = mtime_body(self.settings.mtime_method, mtime_ns)
        resp = self.send("PROPPATCH", key, headers=XML, content=body)
        if resp.status_code != 207 or not resp.content:
            return
        status = refused_status(resp.content)
        if status is not None:
            raise Unsupported(
                f"{self.what(rel)}: the server refused to set the modification time "
                f"({status}); set mtime_method to x-oc-mtime or none"
            )
