"""What cdir keeps in an object's user metadata, in rclone's keys and formats, so each tool
reads what the other wrote.

- `mtime`: the original modification time as decimal seconds with up to nine decimals
  (`X-Amz-Meta-Mtime`).
- `md5chksum`: the MD5 of a multipart upload, base64 of the 16-byte digest
  (`X-Amz-Meta-Md5chksum`). A multipart ETag is no MD5 of the content, so without it neither
  cdir nor `rclone check` could verify a big object.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from cdir.providers.common import META_MTIME

META_MD5 = "md5chksum"
PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")
_MTIME = re.compile(r"\s*(-?)(\d+)(?:\.(\d*))?\s*")
# headers a metadata REPLACE would drop unless given again
_CONTENT_FIELDS = (
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "CacheControl",
)

__all__ = ["META_MD5", "META_MTIME", "PLAIN_MD5", "format_md5", "format_mtime", "parse_md5",
           "parse_mtime", "replace_metadata"]  # fmt: skip


def format_mtime(ns: int) -> str:
    """ns → "1700000000.123456789" (trailing zeros dropped), exact, like rclone writes it."""
    sign = "-" if ns < 0 else ""
    sec, frac = divmod(abs(ns), 1_000_000_000)
    text = f"{sign}{sec}.{frac:09d}".rstrip("0")
    return text.rstrip(".")


def parse_mtime(text: str | None) -> int | None:
    """Inverse of format_mtime; None for anything unparseable (written by some other tool)."""
    if not text:
        return None
    m = _MTIME.fullmatch(text)
    if not m:
        return None
    frac = (m.group(3) or "")[:9].ljust(9, "0")
    ns = int(m.group(2)) * 1_000_000_000 + int(frac)
    return -ns if m.group(1) else ns


def format_md5(digest: bytes) -> str:
    """The 16-byte MD5 digest as `md5chksum` holds it (base64)."""
    return base64.b64encode(digest).decode()


def parse_md5(meta: Mapping[str, str] | None) -> str | None:
    """The lowercase hex MD5 in `md5chksum`, None when absent or malformed."""
    text = (meta or {}).get(META_MD5)
    if not text:
        return None
    try:
        md5 = base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return None
    return md5 if PLAIN_MD5.match(md5) else None


def replace_metadata(head: Mapping[str, Any], meta: dict[str, str]) -> dict[str, Any]:
    """CopyObject arguments that replace an object's metadata by `meta` and keep the content
    headers its HEAD (`head`) showed."""
    extra: dict[str, Any] = {"Metadata": meta, "MetadataDirective": "REPLACE"}
    extra.update({f: head[f] for f in _CONTENT_FIELDS if head.get(f)})
    return extra
