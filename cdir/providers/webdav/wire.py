"""The WebDAV wire format: path quoting, request bodies, and multistatus answers read into
`RemoteStat`s (a PROPFIND answer parsed while it streams in). No I/O here."""

from __future__ import annotations

import calendar
import email.utils
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from datetime import datetime
from urllib.parse import quote, unquote, urlsplit

from cdir.providers.base import RemoteStat
from cdir.providers.common import bare_etag

DAV = "{DAV:}"
OC = "{http://owncloud.org/ns}"
NS = 1_000_000_000
XML = {"Content-Type": "application/xml; charset=utf-8"}

Props = Mapping[str, ET.Element]


def quote_path(path: str) -> str:
    """`a b/c#d` → `a%20b/c%23d`: each segment percent-encoded as UTF-8, `/` kept."""
    return "/".join(quote(seg, safe="") for seg in path.split("/"))


def href_path(href: str) -> str:
    """A multistatus href (absolute URL or path) → decoded path, `//` folded, no trailing `/`."""
    path = unquote(urlsplit(href).path)
    while "//" in path:
        path = path.replace("//", "/")
    return path.rstrip("/")


def parse_time(text: str | None) -> int | None:
    """getlastmodified (RFC 1123; some servers send ISO 8601) → ns since the epoch."""
    if not text:
        return None
    with suppress(TypeError, ValueError, IndexError):
        return calendar.timegm(email.utils.parsedate_to_datetime(text).utctimetuple()) * NS
    with suppress(ValueError):
        return calendar.timegm(datetime.fromisoformat(text).utctimetuple()) * NS
    return None


def checksums(el: ET.Element | None) -> dict[str, str]:
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


def status_ok(text: str | None) -> bool:
    """`HTTP/1.1 200 OK` → True."""
    parts = (text or "").split()
    return len(parts) >= 2 and parts[1].startswith("2")


def props(response: ET.Element) -> dict[str, ET.Element]:
    """The properties a multistatus `response` element reports with a 2xx status."""
    out: dict[str, ET.Element] = {}
    for propstat in response.iter(DAV + "propstat"):
        if not status_ok(propstat.findtext(DAV + "status")):
            continue
        prop = propstat.find(DAV + "prop")
        if prop is not None:
            for child in prop:
                out[child.tag] = child
    return out


def is_collection(found: Props) -> bool:
    rtype = found.get(DAV + "resourcetype")
    return rtype is not None and rtype.find(DAV + "collection") is not None


def to_stat(rel: str, found: Props) -> RemoteStat:
    """One entry's properties as a RemoteStat; the fingerprint is the ETag (size:mtime when
    the server sends none)."""
    lastmod = found.get(DAV + "getlastmodified")
    mtime = parse_time(lastmod.text if lastmod is not None else None)
    if is_collection(found):
        return RemoteStat(rel, "dir", 0, mtime, "")
    length = found.get(DAV + "getcontentlength")
    size = int((length.text or "0").strip()) if length is not None else 0
    etag_el = found.get(DAV + "getetag")
    etag = bare_etag(etag_el.text if etag_el is not None else None)
    hashes = checksums(found.get(OC + "checksums"))
    return RemoteStat(rel, "file", size, mtime, etag or f"{size}:{mtime}", hashes)


def first_response(content: bytes) -> dict[str, ET.Element] | None:
    """The properties of the first `response` of a multistatus body; None if it has none."""
    response = ET.fromstring(content).find(DAV + "response")
    return None if response is None else props(response)


def responses(chunks: Iterable[bytes]) -> Iterator[tuple[str, dict[str, ET.Element]]]:
    """(decoded href, properties) of each `response` of a multistatus body as it streams in;
    each element is dropped once read, so a large collection's answer is never held whole."""
    parser: ET.XMLPullParser = ET.XMLPullParser(events=("end",))
    for chunk in chunks:
        parser.feed(chunk)
        for event in parser.read_events():
            el = event[-1]
            if not isinstance(el, ET.Element) or el.tag != DAV + "response":
                continue
            href = href_path((el.findtext(DAV + "href") or "").strip())
            found = props(el)
            el.clear()
            yield href, found
    parser.close()


def refused_status(content: bytes) -> str | None:
    """The first non-2xx status of a PROPPATCH multistatus body (one per property), or None."""
    for propstat in ET.fromstring(content).iter(DAV + "propstat"):
        status = propstat.findtext(DAV + "status")
        if not status_ok(status):
            return (status or "?").strip()
    return None


def propfind_body(oc_checksums: bool) -> bytes:
    oc_ns = ' xmlns:oc="http://owncloud.org/ns"' if oc_checksums else ""
    oc_prop = "<oc:checksums/>" if oc_checksums else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"{oc_ns}><d:prop>'
        "<d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/>"
        f"{oc_prop}</d:prop></d:propfind>"
    ).encode()


def mtime_body(mtime_method: str, mtime_ns: int) -> bytes:
    """The PROPPATCH that sets a modification time (whole seconds)."""
    secs = mtime_ns // NS
    if mtime_method == "proppatch":
        name, value = "getlastmodified", email.utils.formatdate(secs, usegmt=True)
    else:  # Nextcloud, ownCloud and rclone take unix seconds in {DAV:}lastmodified
        name, value = "lastmodified", str(secs)
    return (
        '<?xml version="1.0" encoding="utf-8"?><d:propertyupdate xmlns:d="DAV:"><d:set>'
        f"<d:prop><d:{name}>{value}</d:{name}></d:prop></d:set></d:propertyupdate>"
    ).encode()
