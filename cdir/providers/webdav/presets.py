"""WebDAV vendors as data: how each builds its URL, keeps mtimes and reports checksums."""

from __future__ import annotations

from dataclasses import dataclass

# proppatch: PROPPATCH of {DAV:}getlastmodified (wsgidav and other RFC servers that allow it);
# x-oc-mtime: the X-OC-Mtime header on PUT (Nextcloud, ownCloud, `rclone serve webdav`).
MTIME_METHODS = ("proppatch", "x-oc-mtime", "none")


@dataclass(frozen=True)
class Preset:
    """One vendor. `url`: a template whose `{host}` and `{username}` come from the options of
    the same name (`host` may carry a path such as `example.com/nextcloud`), or None when the
    user gives `url`; `host`: the default host; `mtime_method`: one of MTIME_METHODS;
    `checksums`: ask for ownCloud's `oc:checksums` property."""

    url: str | None
    mtime_method: str
    checksums: bool = False
    host: str | None = None


PRESETS: dict[str, Preset] = {
    # docs.nextcloud.com: user manual, "Accessing Nextcloud files using WebDAV"
    "nextcloud": Preset(
        "https://{host}/remote.php/dav/files/{username}", "x-oc-mtime", checksums=True
    ),
    # ownCloud 10 serves both remote.php/webdav and remote.php/dav/files/USER
    "owncloud": Preset(
        "https://{host}/remote.php/dav/files/{username}", "x-oc-mtime", checksums=True
    ),
    # webdav.pcloud.com (US data region) or ewebdav.pcloud.com (EU)
    "pcloud": Preset("https://{host}", "none", host="webdav.pcloud.com"),
    "generic": Preset(None, "proppatch"),
}
