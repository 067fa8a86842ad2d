"""WebDAV servers (Nextcloud, ownCloud, pCloud, Apache/nginx mod_dav, wsgidav, rclone serve…)
through httpx.

Only this module imports httpx, and only when a webdav provider is opened.

How the tree maps onto the server:
- `url` is the base collection of the account (a preset can build it from `host` and
  `username`); `root` is a path below it, so a file `a/b.txt` is `<url>/<root>/a/b.txt`.
  Every path segment is percent-encoded as UTF-8 (`quote_path`) and hrefs read back are decoded
  (`href_path`), so names with spaces, `#`, `%`, `?`, `:` or any Unicode round-trip.
- Listing walks collections one PROPFIND Depth 1 at a time (many servers refuse Depth
  infinity); each answer is parsed while it streams in.
- Writes are atomic for readers: PUT to a temporary name (`TMP_PREFIX…`) in the same collection,
  then MOVE onto the final name. A MOVE never replaces a directory (it would delete the tree).
  Parents are made with one MKCOL per collection per process (a cache of known collections,
  corrected when the server says a parent is gone). Some servers lose `?`, `;` or `#` from a
  MOVE/COPY Destination (wsgidav 4.4); this is probed once, and names with them are then
  written in place on such a server (not atomic there).
- One put is PUT + MOVE (+ PROPPATCH for the mtime) + one PROPFIND: the ETag of a PUT answer may
  predate the mtime change, so the returned stat is read back rather than guessed.
- Modification times (whole seconds) are kept by the configured `mtime_method`: PROPPATCH of
  `{DAV:}getlastmodified` (wsgidav and other RFC servers that allow it), the `X-OC-Mtime`
  header on PUT (Nextcloud, ownCloud, `rclone serve webdav`), or not at all.
- The fingerprint is the server's ETag (size:mtime when it sends none).
"""

from __future__ import annotations

import calendar
import dataclasses
import email.utils
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, BinaryIO, cast
from urllib.parse import quote, unquote, urlsplit

import httpx

from cdir.errors import (
    AlreadyExists,
    AuthError,
    Conflict,
    ErrorRule,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    NotFound,
    ProviderError,
    Unavailable,
    Unsupported,
    UsageError,
    translated,
)
from cdir.providers.base import CHUNK, TMP_PREFIX, Capabilities, OptionSpec, Provider, RemoteStat
from cdir.providers.common import ChunkReader, PrependedStream, bare_etag, check_size, read_upto

DAV = "{DAV:}"
OC = "{http://owncloud.org/ns}"
NS = 1_000_000_000
SMALL_BODY = 1024 * 1024  # bodies up to this size are sent in one piece

MTIME_METHODS = ("proppatch", "x-oc-mtime", "none")
# Characters some servers lose from a MOVE/COPY Destination (wsgidav 4.4 decodes the header
# before splitting off query and params, so `a?b` becomes `a`); see `_destination_ok`.
RISKY_IN_DESTINATION = frozenset("?;#")

# Vendors: URL template (placeholders filled from the options of the same name, `host` may
# carry a path such as `example.com/nextcloud`), default host, how mtimes are set, and whether
# to ask for ownCloud's checksum property.
PRESETS: dict[str, dict[str, Any]] = {
    "nextcloud": {  # docs.nextcloud.com: user manual, "Accessing Nextcloud files using WebDAV"
        "url": "https://{host}/remote.php/dav/files/{username}",
        "mtime_method": "x-oc-mtime",
        "checksums": True,
    },
    "owncloud": {  # ownCloud 10 serves both remote.php/webdav and remote.php/dav/files/USER
        "url": "https://{host}/remote.php/dav/files/{username}",
        "mtime_method": "x-oc-mtime",
        "checksums": True,
    },
    "pcloud": {  # webdav.pcloud.com (US data region) or ewebdav.pcloud.com (EU)
        "url": "https://{host}",
        "host": "webdav.pcloud.com",
        "mtime_method": "none",
        "checksums": False,
    },
    "generic": {"url": None, "mtime_method": "proppatch", "checksums": False},
}


class DAVStatus(Exception):
    """A WebDAV server answered a request with an error status."""

    def __init__(self, method: str, status: int) -> None:
        self.method = method
        self.status = status
        reason = httpx.codes.get_reason_phrase(status)
        hint = " (check username and password)" if status == 401 else ""
        super().__init__(f"{method} answered {status} {reason}{hint}".strip())


def _status(*codes: int) -> Callable[[BaseException], bool]:
    return lambda e: isinstance(e, DAVStatus) and e.status in codes


def _server_trouble(e: BaseException) -> bool:
    # 501/505 will not get better by retrying; 507 (storage full) needs a human
    return isinstance(e, DAVStatus) and e.status >= 500 and e.status not in (501, 505, 507)


ERRORS: list[ErrorRule] = [
    (_status(401, 403), AuthError, False),
    (_status(404, 410), NotFound, None),
    (_status(423), Conflict, True),  # locked by another client: try again later
    (_status(409, 412), Conflict, False),
    (_status(429), Unavailable, True),
    (_server_trouble, Unavailable, True),
    (
        lambda e: isinstance(e, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(e),
        ProviderError,
        False,
    ),
    (
        lambda e: isinstance(
            e, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
        ),
        Unavailable,
        True,
    ),
    (lambda e: isinstance(e, httpx.InvalidURL | httpx.UnsupportedProtocol), UsageError, False),
    (lambda e: isinstance(e, ET.ParseError), ProviderError, False),
]


def quote_path(path: str) -> str:
    """`a b/c#d` → `a%20b/c%23d`: each segment percent-encoded as UTF-8, `/` kept."""
    return "/".join(quote(seg, safe="") for seg in path.split("/"))


def href_path(href: str) -> str:
    """A multistatus href (absolute URL or path) → decoded path, `//` folded, no trailing `/`."""
    path = unquote(urlsplit(href).path)
    while "//" in path:
        path = path.replace("//", "/")
    return path.rstrip("/")


def _parse_time(text: str | None) -> int | None:
    """getlastmodified (RFC 1123; some servers send ISO 8601) → ns since the epoch."""
    if not text:
        return None
    with suppress(TypeError, ValueError, IndexError):
        return calendar.timegm(email.utils.parsedate_to_datetime(text).utctimetuple()) * NS
    with suppress(ValueError):
        return calendar.timegm(datetime.fromisoformat(text).utctimetuple()) * NS
    return None


def _checksums(el: ET.Element | None) -> dict[str, str]:
    """ownCloud/Nextcloud `oc:checksums`: "SHA1:ab… MD5:cd… ADLER32:ef…"."""
    if el is None:
        return {}
    out = {}
    for text in el.itertext():
        for item in text.split():
            kind, _, value = item.partition(":")
            if value:
                out[kind.lower()] = value.lower()
    return out


def _status_ok(text: str | None) -> bool:
    """`HTTP/1.1 200 OK` → True."""
    parts = (text or "").split()
    return len(parts) >= 2 and parts[1].startswith("2")


def _props(response: ET.Element) -> dict[str, ET.Element]:
    """The properties a multistatus `response` element reports with a 2xx status."""
    props: dict[str, ET.Element] = {}
    for propstat in response.iter(DAV + "propstat"):
        if not _status_ok(propstat.findtext(DAV + "status")):
            continue
        prop = propstat.find(DAV + "prop")
        if prop is not None:
            for child in prop:
                props[child.tag] = child
    return props


def _propfind_body(checksums: bool) -> bytes:
    oc_ns = ' xmlns:oc="http://owncloud.org/ns"' if checksums else ""
    oc_prop = "<oc:checksums/>" if checksums else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"{oc_ns}><d:prop>'
        "<d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/>"
        f"{oc_prop}</d:prop></d:propfind>"
    ).encode()


def _proppatch_body(name: str, value: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><d:propertyupdate xmlns:d="DAV:"><d:set>'
        f"<d:prop><d:{name}>{value}</d:{name}></d:prop></d:set></d:propertyupdate>"
    ).encode()


XML = {"Content-Type": "application/xml; charset=utf-8"}


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
        server_side_move=True,
    )
    options = (
        OptionSpec(
            "root", "path below the URL that holds the files ('' = the URL itself)", default=""
        ),
        OptionSpec(
            "url",
            "base URL, e.g. https://cloud.example.com/remote.php/dav/files/USER "
            "(built from host/username by a preset)",
        ),
        OptionSpec("preset", "nextcloud, owncloud, pcloud or generic", default="generic"),
        OptionSpec("host", "server host (and path) for a preset, e.g. cloud.example.com"),
        OptionSpec("username", "login name"),
        OptionSpec("password", "password or app token", secret=True),
        OptionSpec(
            "mtime_method",
            "how mtimes are set: proppatch, x-oc-mtime or none (default from the preset)",
        ),
        OptionSpec("verify_tls", "check the server's TLS certificate", default=True),
        OptionSpec("max_connections", "HTTP connections kept open (>= --parallel)", default=16),
        OptionSpec("timeout", "seconds to wait for the server on each request", default=60),
        OptionSpec(
            "page_size",
            "accepted for uniformity: WebDAV lists a collection in one "
            "PROPFIND answer (parsed as it streams in)",
        ),
    )

    def configure(self) -> None:
        name, root = self.name, self.root
        preset_name = str(self.opts.get("preset") or "generic").lower()
        if preset_name not in PRESETS:
            raise UsageError(
                f"{name}: unknown preset {preset_name!r} (known: {', '.join(PRESETS)})"
            )
        preset = PRESETS[preset_name]
        self.mtime_method = str(self.opts.get("mtime_method") or preset["mtime_method"]).lower()
        if self.mtime_method not in MTIME_METHODS:
            raise UsageError(f"{name}: mtime_method must be one of {', '.join(MTIME_METHODS)}")
        # Capabilities is a ClassVar in the interface; this server's abilities depend on its
        # configuration, so the instance shadows it.
        self.capabilities = dataclasses.replace(
            type(self).capabilities, set_mtime=self.mtime_method != "none"
        )
        self._checksums = bool(preset["checksums"])
        self._username = str(self.opts.get("username") or "")
        url = str(self.opts.get("url") or "")
        if not url:
            template = preset["url"]
            host = self.opts.get("host") or preset.get("host")
            if not template:
                raise UsageError(f"{name}: give url (or a preset with host and username)")
            for needed, have in (("host", host), ("username", self._username)):
                if "{" + needed + "}" in template and not have:
                    raise UsageError(f"{name}: preset {preset_name} needs option {needed}")
            url = template.format(
                host=str(host).strip("/"), username=quote(self._username, safe="")
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"{name}: url must be http(s)://host/path, got {parts.scheme}://…")
        if parts.username and not self._username:  # credentials in the URL: move them out
            self._username = unquote(parts.username)
        if parts.password and "password" not in self.secrets:
            self.secrets["password"] = unquote(parts.password)
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        self._origin = f"{parts.scheme}://{netloc}"
        self.url = self._origin + parts.path.rstrip("/")  # shown in messages: no credentials
        if "url" in self.opts:  # options may be stored in the clear: keep secrets out of them
            self.opts["url"] = self.url
        base = [unquote(s) for s in parts.path.split("/") if s]
        self._root_segs = [s for s in (root or "").split("/") if s]
        self._base_segs = base
        self._verify = self.bool_option("verify_tls", True)
        self._max_conn = max(1, self.int_option("max_connections", 16))
        self._timeout = self.float_option("timeout", 60)
        self._body = _propfind_body(self._checksums)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        # Collections known to exist (keys relative to the URL), so each parent gets at most one
        # MKCOL per process; "" is the URL's collection, which must exist.
        self._known_dirs: set[str] = {""}
        self._dir_locks: dict[str, threading.Lock] = {}
        self._mangles_destination: bool | None = None  # probed on the first risky name

    # --- plumbing --------------------------------------------------------------------------
    def _http(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    auth = None
                    if self._username or self.secrets.get("password"):
                        auth = httpx.BasicAuth(self._username, self.secrets.get("password", ""))
                    self._client = httpx.Client(
                        auth=auth,
                        verify=self._verify,
                        http1=True,
                        http2=False,
                        timeout=httpx.Timeout(
                            self._timeout, connect=min(self._timeout, 15.0), pool=None
                        ),  # waiting for a free connection is fine
                        limits=httpx.Limits(
                            max_connections=self._max_conn, max_keepalive_connections=self._max_conn
                        ),
                        headers={"User-Agent": "cdir"},
                    )
                client = self._client
        return client

    def _what_key(self, key: str) -> str:
        """`_what` of a key (a path relative to the URL), shown relative to the root."""
        root = self._key("")
        rel = key[len(root) :].lstrip("/") if root and key.startswith(root) else key
        return self._what(rel)

    @staticmethod
    def _rel(path: str) -> str:
        rel = path.strip("/")
        if any(seg in ("", ".", "..") for seg in rel.split("/")) and rel:
            raise InvalidPath(f"invalid provider path {path!r}")
        return rel

    def _key(self, rel: str) -> str:
        """Path relative to the URL (root + rel), the key of the collection cache."""
        return "/".join([*self._root_segs, *([rel] if rel else [])])

    def _url(self, key: str, collection: bool = False) -> str:
        segs = [*self._base_segs, *([key] if key else [])]
        path = "/" + quote_path("/".join(segs)) if segs else ""
        return f"{self._origin}{path}{'/' if collection or not segs else ''}"

    def _abs(self, key: str) -> str:
        """Decoded absolute path of `key` on the server, as href_path gives it."""
        return ("/" + "/".join([*self._base_segs, *([key] if key else [])])).rstrip("/")

    def _send(
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
        resp = self._http().request(
            method,
            self._url(key, collection),
            headers=headers,
            content=content,
            follow_redirects=follow,
        )
        if resp.status_code >= 400 and resp.status_code not in ok:
            raise DAVStatus(method, resp.status_code)
        return resp

    def _destination(self, key: str, overwrite: bool) -> dict[str, str]:
        return {"Destination": self._url(key), "Overwrite": "T" if overwrite else "F"}

    def _stat_key(self, rel: str, key: str) -> RemoteStat:
        resp = self._send(
            "PROPFIND", key, headers={"Depth": "0", **XML}, content=self._body, follow=True
        )
        if resp.status_code != 207:
            raise ProviderError(
                f"{self._what(rel)}: PROPFIND answered {resp.status_code}, not a WebDAV multistatus"
            )
        response = ET.fromstring(resp.content).find(DAV + "response")
        if response is None:
            raise NotFound(f"{self._what(rel)}: not found")
        return self._to_stat(rel, _props(response))

    def _to_stat(self, rel: str, props: Mapping[str, ET.Element]) -> RemoteStat:
        rtype = props.get(DAV + "resourcetype")
        lastmod = props.get(DAV + "getlastmodified")
        mtime = _parse_time(lastmod.text if lastmod is not None else None)
        if rtype is not None and rtype.find(DAV + "collection") is not None:
            return RemoteStat(rel, "dir", 0, mtime, "")
        length = props.get(DAV + "getcontentlength")
        size = int((length.text or "0").strip()) if length is not None else 0
        etag_el = props.get(DAV + "getetag")
        etag = bare_etag(etag_el.text if etag_el is not None else None)
        return RemoteStat(
            rel,
            "file",
            size,
            mtime,
            etag or f"{size}:{mtime}",
            _checksums(props.get(OC + "checksums")),
        )

    def _forget_dirs(self, key: str) -> None:
        """Drop `key` and everything below it from the collection cache."""
        with self._lock:
            self._known_dirs -= {k for k in self._known_dirs if k == key or k.startswith(key + "/")}
            self._known_dirs.add("")

    def _ensure_dirs(self, key: str, *, exact: bool = False, retry: bool = True) -> None:
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
                    self._file_in_the_way(sub.rpartition("/")[0])
                if status in (404, 409):  # a parent we believed in is gone
                    status = 409
                    if retry and have > 0:
                        self._forget_dirs("/".join(segs[:have]))
                        restart = True
                        break
                    raise DAVStatus("MKCOL", 409)
                # 405: something exists there; mkdir needs it to be a collection
                if status == 405 and check and self._stat_key(sub, sub).kind != "dir":
                    raise AlreadyExists(f"{self._what_key(sub)}: a file is in the way")
                last = status
                with self._lock:
                    self._known_dirs.add(sub)
        if restart:  # once more from the top, without trusting the cache
            self._ensure_dirs(key, exact=exact, retry=False)

    def _mkcol(self, key: str) -> int:
        """MKCOL one collection: 201 made, 405 something is there, 409 (404) no parent."""
        status = self._send("MKCOL", key, collection=True, ok=(404, 405, 409, 500)).status_code
        if status == 500:  # wsgidav, when another client made it a moment ago
            with suppress(NotFound):
                if self._stat_key(key, key).kind == "dir":
                    return 405
            raise DAVStatus("MKCOL", 500)
        return status

    def _dir_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._dir_locks.setdefault(key, threading.Lock())

    def _move_into_place(self, src: str, dst: str, method: str = "MOVE") -> None:
        """MOVE (or COPY) `src` onto `dst`, replacing a file there but never a collection."""
        resp = self._send(method, src, headers=self._destination(dst, overwrite=False), ok=(412,))
        if resp.status_code != 412:
            return
        # Something is at dst. Overwrite: T would delete a whole tree if it is a collection.
        if self._stat_key(dst, dst).kind == "dir":
            raise IsADirectory(f"{self._what_key(dst)}: is a directory")
        self._send(method, src, headers=self._destination(dst, overwrite=True))

    def _destination_ok(self, key: str) -> bool:
        """Whether a MOVE/COPY can target `key`. Names with `?`, `;` or `#` are probed once per
        process: a MOVE inside a temporary collection to such a name, then a look for it."""
        if self._mangles_destination is None and not RISKY_IN_DESTINATION.isdisjoint(key):
            with self._lock:
                probed = self._mangles_destination
            if probed is None:
                probed = self._probe_destination()
                with self._lock:
                    self._mangles_destination = probed
        return not (self._mangles_destination and not RISKY_IN_DESTINATION.isdisjoint(key))

    def _probe_destination(self) -> bool:
        """True if the server mangles Destination headers with `?;#` in them. Runs in a
        temporary collection (hidden from listings), deleted afterwards with any leftovers."""
        base = self._key("")
        self._ensure_dirs(base)
        coll = (
            f"{base}/{TMP_PREFIX}{uuid.uuid4().hex}" if base else f"{TMP_PREFIX}{uuid.uuid4().hex}"
        )
        self._send("MKCOL", coll, collection=True)
        try:
            self._send("PUT", f"{coll}/a", content=b"")
            self._send(
                "MOVE", f"{coll}/a", headers=self._destination(f"{coll}/b #?;c", overwrite=False)
            )
            found = self._send(
                "PROPFIND",
                f"{coll}/b #?;c",
                headers={"Depth": "0", **XML},
                content=self._body,
                ok=(404,),
            )
            return found.status_code == 404
        finally:
            self._send("DELETE", coll, ok=(404,))

    def _check_multistatus(self, resp: httpx.Response, rel: str) -> None:
        """PROPPATCH answers 207 with a status per property: all must be 2xx."""
        if resp.status_code != 207 or not resp.content:
            return
        for propstat in ET.fromstring(resp.content).iter(DAV + "propstat"):
            status = propstat.findtext(DAV + "status")
            if not _status_ok(status):
                raise Unsupported(
                    f"{self._what(rel)}: the server refused to set the modification time "
                    f"({(status or '?').strip()}); set mtime_method to x-oc-mtime or none"
                )

    def _patch_mtime(self, rel: str, key: str, mtime_ns: int) -> None:
        secs = mtime_ns // NS
        if self.mtime_method == "proppatch":
            body = _proppatch_body("getlastmodified", email.utils.formatdate(secs, usegmt=True))
        else:  # Nextcloud, ownCloud and rclone take unix seconds in {DAV:}lastmodified
            body = _proppatch_body("lastmodified", str(secs))
        self._check_multistatus(self._send("PROPPATCH", key, headers=XML, content=body), rel)

    # --- reading ---------------------------------------------------------------------------
    def list(self, path: str = "", recursive: bool = False) -> Iterator[RemoteStat]:
        top = self._rel(path)
        pending = [top]
        while pending:
            rel = pending.pop()
            try:
                for item in self._children(rel):
                    yield item
                    if recursive and item.kind == "dir":
                        pending.append(item.path)
            except NotFound:
                if rel == top and top != "":
                    raise
                # the root not made yet lists empty; a subdirectory removed meanwhile is skipped

    def _children(self, rel: str) -> Iterator[RemoteStat]:
        """The entries of one collection, parsed from PROPFIND Depth 1 as it streams in."""
        key = self._key(rel)
        me = self._abs(key)
        what = self._what(rel)
        with (
            translated(ERRORS, what),
            self._http().stream(
                "PROPFIND",
                self._url(key, collection=True),
                headers={"Depth": "1", **XML},
                content=self._body,
                follow_redirects=True,
            ) as resp,
        ):
            if resp.status_code >= 400:
                raise DAVStatus("PROPFIND", resp.status_code)
            if resp.status_code != 207:
                raise ProviderError(
                    f"{what}: PROPFIND answered {resp.status_code}, not a WebDAV multistatus"
                )
            parser: ET.XMLPullParser = ET.XMLPullParser(events=("end",))
            first = True
            for chunk in resp.iter_bytes():
                parser.feed(chunk)
                for event in parser.read_events():
                    el = event[-1]
                    if not isinstance(el, ET.Element) or el.tag != DAV + "response":
                        continue
                    href = href_path((el.findtext(DAV + "href") or "").strip())
                    props = _props(el)
                    el.clear()
                    # The collection itself is in its own answer; servers put it first.
                    is_self = href == me or (first and not href.startswith(me + "/"))
                    first = False
                    if is_self:
                        rtype = props.get(DAV + "resourcetype")
                        if rtype is None or rtype.find(DAV + "collection") is None:
                            raise NotADirectory(f"{what}: not a directory")
                        continue
                    name = href.rsplit("/", 1)[-1]
                    if not name or name.startswith(TMP_PREFIX) or not props:
                        continue  # an upload in flight, or an entry without readable props
                    yield self._to_stat(f"{rel}/{name}" if rel else name, props)
            parser.close()

    def stat(self, path: str) -> RemoteStat:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            return self._stat_key(rel, self._key(rel))

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        rel = self._rel(path)
        key = self._key(rel)
        what = self._what(rel)
        if end is not None and end <= start:
            self.stat(rel)  # nothing to read, but a missing file is still NotFound
            return
        headers = {}
        if start > 0 or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        with (
            translated(ERRORS, what),
            self._http().stream(
                "GET", self._url(key), headers=headers, follow_redirects=True
            ) as resp,
        ):
            if resp.status_code == 416:
                return  # start is at or past the end
            if resp.status_code >= 400:
                if resp.status_code in (403, 405) and self._stat_key(rel, key).kind == "dir":
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
            self._ensure_dirs(self._key(rel), exact=True)

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        rel = self._rel(path)
        what = self._what(rel)
        if not rel:
            raise IsADirectory(f"{what}: is a directory")
        key = self._key(rel)
        parent = key.rpartition("/")[0]
        headers: dict[str, str] = {}
        if mtime_ns is not None and self.mtime_method == "x-oc-mtime":
            headers["X-OC-Mtime"] = str(mtime_ns // NS)
        with translated(ERRORS, what):
            self._ensure_dirs(parent)
            if not self._destination_ok(key):
                # This server cannot MOVE onto this name: write in place (not atomic).
                if self._upload(stream, key, parent, size, headers, what) == 405:
                    raise IsADirectory(f"{what}: is a directory")
                if mtime_ns is not None and self.mtime_method == "proppatch":
                    self._patch_mtime(rel, key, mtime_ns)
                return self._stat_key(rel, key)
            tmp = self._tmp_key(parent)
            with self._deleted_on_failure(tmp):
                self._upload(stream, tmp, parent, size, headers, what)
                if mtime_ns is not None and self.mtime_method == "proppatch":
                    # before the MOVE, so readers never see the file with the upload time
                    self._patch_mtime(rel, tmp, mtime_ns)
                self._move_into_place(tmp, key)
            # The ETag of the PUT answer predates the mtime change and the server's own time
            # is unknown, so read back what readers will see.
            return self._stat_key(rel, key)

    @contextmanager
    def _deleted_on_failure(self, tmp: str) -> Iterator[None]:
        """Delete the temporary `tmp` (best effort) when the block fails."""
        try:
            yield
        except BaseException:
            with suppress(Exception):
                self._send("DELETE", tmp, ok=(404,))
            raise

    @staticmethod
    def _tmp_key(parent: str) -> str:
        name = f"{TMP_PREFIX}{uuid.uuid4().hex}"
        return f"{parent}/{name}" if parent else name

    def _upload(
        self,
        stream: BinaryIO,
        key: str,
        parent: str,
        size: int | None,
        headers: dict[str, str],
        what: str,
    ) -> int:
        """PUT the stream to `key`: up to SMALL_BODY in one piece (also when the size is not
        given but the stream is that short), else streamed (chunked when the size is unknown).
        A 409 (a parent removed behind our back, so the collection cache lied) is retried once
        when the body can be sent again. Returns the status (405: a collection is there)."""
        body: bytes | Iterator[bytes]
        pos: int | None = None
        head = b""
        if size is not None and size <= SMALL_BODY:
            body = read_upto(stream, size + 1)  # one more: a stream that runs long is refused
            check_size(what, size, len(body), more=len(body) > size)
        elif size is None and len(head := read_upto(stream, SMALL_BODY + 1)) <= SMALL_BODY:
            body, size = head, len(head)
        else:
            with suppress(AttributeError, OSError, ValueError):
                pos = stream.tell() if stream.seekable() and size is not None else None
            # a stream of the wrong size raises while it is sent, failing the PUT
            body = PrependedStream(head, stream, size, what).blocks(CHUNK)
        if size is not None:
            headers = {**headers, "Content-Length": str(size)}
        resp = self._send("PUT", key, headers=headers, content=body, ok=(404, 405, 409))
        if resp.status_code == 404:  # rclone's answer when the parent is a file
            self._file_in_the_way(parent)
            raise DAVStatus("PUT", 404)
        if resp.status_code != 409:
            return resp.status_code
        self._forget_dirs(parent)
        self._file_in_the_way(parent)
        if not isinstance(body, bytes):
            if pos is None:
                raise Conflict(
                    f"{self._what_key(key)}: a parent directory vanished during the upload",
                    retryable=True,
                )  # a retry MKCOLs it again
            stream.seek(pos)
            body = PrependedStream(b"", stream, size, what).blocks(CHUNK)
        self._ensure_dirs(parent)
        return self._send("PUT", key, headers=headers, content=body, ok=(405,)).status_code

    def _file_in_the_way(self, key: str) -> None:
        """After a 409 or 404: NotADirectory if `key`, a would-be parent, or one of its
        ancestors is a file (walking up over missing levels; this is only on error paths)."""
        root = self._key("")
        while key and key != root:
            try:
                kind = self._stat_key(key, key).kind
            except (NotFound, DAVStatus):
                key = key.rpartition("/")[0]
                continue
            if kind == "file":
                raise NotADirectory(f"{self._what_key(key)}: not a directory")
            return

    def delete(self, path: str) -> None:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            key = self._key(rel)
            # DELETE of a collection removes the whole tree: only files go this way
            if not rel or self._stat_key(rel, key).kind == "dir":
                raise IsADirectory(f"{self._what(rel)}: is a directory")
            self._send("DELETE", key)

    def delete_tree(self, path: str) -> None:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            key = self._key(rel)
            if key:
                self._send("DELETE", key, ok=(404,))
            else:  # never delete the account's own collection (the URL): empty it instead
                for item in list(self._children("")):
                    self._send("DELETE", self._key(item.path), ok=(404,))
            self._forget_dirs(key)

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        rel = self._rel(path)
        if self.mtime_method == "none":
            raise Unsupported(f"{self.name}: cannot set modification times (mtime_method none)")
        with translated(ERRORS, self._what(rel)):
            key = self._key(rel)
            self._patch_mtime(rel, key, mtime_ns)
            return self._stat_key(rel, key)

    def copy(self, src: str, dst: str) -> RemoteStat:
        s, d = self._rel(src), self._rel(dst)
        with translated(ERRORS, self._what(s)):
            skey, dkey = self._key(s), self._key(d)
            before = self._stat_key(s, skey)
            if before.kind == "dir":
                raise IsADirectory(f"{self._what(s)}: is a directory")
            if not d:
                raise IsADirectory(f"{self._what(d)}: is a directory")
            parent = dkey.rpartition("/")[0]
            self._ensure_dirs(parent)
            if not self._destination_ok(dkey):  # the server cannot COPY there: go through us
                source = cast(BinaryIO, ChunkReader(self.read_chunks(s)))
                return self.put_stream(source, d, before.size, before.mtime_ns)
            # COPY onto a temporary name and MOVE it into place: readers never see a partial
            # copy, and an existing directory at dst is refused rather than replaced.
            tmp = self._tmp_key(parent)
            self._send(
                "COPY", skey, headers={**self._destination(tmp, overwrite=False), "Depth": "0"}
            )
            with self._deleted_on_failure(tmp):
                if (
                    self.capabilities.set_mtime
                    and before.mtime_ns is not None
                    and self._stat_key(d, tmp).mtime_ns != before.mtime_ns
                ):
                    self._patch_mtime(d, tmp, before.mtime_ns)  # server did not keep it
                self._move_into_place(tmp, dkey)
            return self._stat_key(d, dkey)

    def move(self, src: str, dst: str) -> RemoteStat:
        s, d = self._rel(src), self._rel(dst)
        with translated(ERRORS, self._what(s)):
            skey, dkey = self._key(s), self._key(d)
            if not s or not d:
                raise UsageError(f"{self._what(s)}: cannot move the root or onto it")
            self._ensure_dirs(dkey.rpartition("/")[0])
            if not self._destination_ok(dkey):
                # the server cannot MOVE there: copy through us, then delete (files only)
                if self._stat_key(s, skey).kind == "dir":
                    raise Unsupported(
                        f"{self._what(d)}: this server cannot move a directory "
                        "to a name with ?, ; or #"
                    )
                moved = self.copy(s, d)
                self._send("DELETE", skey)
                return moved
            try:
                self._move_into_place(skey, dkey)
            except DAVStatus as exc:
                # some servers (rclone) answer 403 for a missing source: say NotFound then
                if exc.status in (403, 409):
                    self._stat_key(s, skey)
                raise
            self._forget_dirs(skey)
            return self._stat_key(d, dkey)

    def check(self) -> None:
        with translated(ERRORS, self._what("")):
            resp = self._send(
                "PROPFIND",
                "",
                collection=True,
                headers={"Depth": "0", **XML},
                content=self._body,
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
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
