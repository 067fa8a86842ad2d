"""WebDAV servers (Nextcloud, ownCloud, pCloud, Apache/nginx mod_dav, wsgidav, rclone serve…)
through httpx.

Only this package imports httpx, and only when a webdav provider is opened. Its modules:
`provider` (the interface on provider paths), `session` (the requests on keys, the collection
cache, the Destination probe), `wire` (quoting, bodies, multistatus parsing), `settings` (the
typed options and what they resolve to), `presets` (vendors as data), `errors` (the table).

How the tree maps onto the server:
- `url` is the base collection of the account (a preset can build it from `host` and
  `username`); `root` is a path below it, so a file `a/b.txt` is `<url>/<root>/a/b.txt`.
  Every path segment is percent-encoded as UTF-8 (`quote_path`) and hrefs read back are decoded
  (`href_path`), so names with spaces, `#`, `%`, `?`, `:` or any Unicode round-trip.
- Listing walks collections one PROPFIND Depth 1 at a time (many servers refuse Depth
  infinity); each answer is parsed while it streams in.
- Writes are atomic for readers: PUT to a temporary name (`temp_name()`: `TMP_PREFIX`, pid,
  host tag) in the same collection, then MOVE onto the final name. A MOVE never replaces a
  directory (it would delete the tree). Temporaries a killed writer left are removed by
  `reap_temporaries`. The body is hashed (MD5) as it is sent, and the stat a write returns
  carries that hash.
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

from cdir.providers.webdav.errors import ERRORS, DAVStatus
from cdir.providers.webdav.presets import MTIME_METHODS, PRESETS, Preset
from cdir.providers.webdav.provider import WebDAVProvider
from cdir.providers.webdav.settings import OPTIONS, Settings
from cdir.providers.webdav.wire import href_path, quote_path

__all__ = [
    "ERRORS",
    "MTIME_METHODS",
    "OPTIONS",
    "PRESETS",
    "DAVStatus",
    "Preset",
    "Settings",
    "WebDAVProvider",
    "href_path",
    "quote_path",
]
