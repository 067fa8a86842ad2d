"""The webdav options (typed, parsed once by `Provider`), and what one provider's options
resolve to: the server's URL, credentials and behaviour as `Settings`. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from cdir.errors import UsageError
from cdir.providers.options import OptionSpec
from cdir.providers.webdav.presets import MTIME_METHODS, PRESETS

OPTIONS = (
    OptionSpec("root", "path below the URL that holds the files ('' = the URL itself)", default=""),
    OptionSpec(
        "url",
        "base URL, e.g. https://cloud.example.com/remote.php/dav/files/USER "
        "(built from host/username by a preset)",
    ),
    OptionSpec(
        "preset",
        "nextcloud, owncloud, pcloud or generic",
        "choice",
        default="generic",
        choices=tuple(PRESETS),
    ),
    OptionSpec("host", "server host (and path) for a preset, e.g. cloud.example.com"),
    OptionSpec("username", "login name"),
    OptionSpec("password", "password or app token", secret=True),
    OptionSpec(
        "mtime_method",
        "how mtimes are set: proppatch, x-oc-mtime or none (default from the preset)",
        "choice",
        choices=MTIME_METHODS,
    ),
    OptionSpec("verify_tls", "check the server's TLS certificate", "bool", default=True),
    OptionSpec(
        "max_connections",
        "HTTP connections kept open (>= --parallel)",
        "int",
        default=16,
        minimum=1,
    ),
    OptionSpec("timeout", "seconds to wait for the server on each request", "float", default=60.0),
    OptionSpec(
        "page_size",
        "accepted for uniformity: WebDAV lists a collection in one "
        "PROPFIND answer (parsed as it streams in)",
        "int",
        minimum=1,
    ),
)


@dataclass(frozen=True)
class Settings:
    """One provider's server. Keys (paths relative to `url`) are `root_segs` + a provider path;
    on the server they are below `base_segs`."""

    url: str  # the base collection without credentials: shown in messages
    origin: str  # scheme://host[:port]
    base_segs: tuple[str, ...]  # the decoded segments of the URL's path
    root_segs: tuple[str, ...]  # the root below the URL
    username: str
    password: str = field(repr=False)
    mtime_method: str  # one of MTIME_METHODS
    checksums: bool  # ask for oc:checksums
    verify_tls: bool
    max_connections: int
    timeout: float


def resolve(name: str, root: str, conf: Mapping[str, Any]) -> Settings:
    """`conf` (the typed options and secrets) → Settings; a bad combination is a UsageError."""
    preset = PRESETS[conf["preset"]]
    username = conf["username"] or ""
    url = conf["url"] or _preset_url(name, conf["preset"], conf["host"], username)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{name}: url must be http(s)://host/path, got {parts.scheme}://…")
    if parts.username and not username:  # credentials in the URL: moved out of it
        username = unquote(parts.username)
    password = conf["password"] or unquote(parts.password or "")
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port:
        netloc += f":{parts.port}"
    origin = f"{parts.scheme}://{netloc}"
    return Settings(
        url=origin + parts.path.rstrip("/"),
        origin=origin,
        base_segs=tuple(unquote(s) for s in parts.path.split("/") if s),
        root_segs=tuple(s for s in (root or "").split("/") if s),
        username=username,
        password=password,
        mtime_method=conf["mtime_method"] or preset.mtime_method,
        checksums=preset.checksums,
        verify_tls=conf["verify_tls"],
        max_connections=conf["max_connections"],
        timeout=conf["timeout"],
    )


def _preset_url(name: str, preset_name: str, host: str | None, username: str) -> str:
    preset = PRESETS[preset_name]
    host = host or preset.host
    if not preset.url:
        raise UsageError(f"{name}: give url (or a preset with host and username)")
    for needed, have in (("host", host), ("username", username)):
        if "{" + needed + "}" in preset.url and not have:
            raise UsageError(f"{name}: preset {preset_name} needs option {needed}")
    return preset.url.format(host=str(host).strip("/"), username=quote(username, safe=""))
