"""Dropbox through its documented HTTP API (API v2), with httpx.

Why not the `dropbox` SDK: it builds every URL as `https://{host}/2/{route}`, its hosts read
from environment variables once at import, so it cannot talk to a plain-HTTP contract fake on
loopback without patching private attributes; it also sends through requests, while the OAuth
helper cdir's drive providers share (refresh under the vault's lock, one retry after a 401) is
an httpx.Auth. The API is small and documented: RPC endpoints take JSON by POST on `api_url`,
content endpoints take their arguments in the `Dropbox-API-Arg` header on `content_url` (both
options default to the real hosts). Modules: `provider` (the interface), `api` (requests and the
retry loop), `errors` (the table), `hashing` (content_hash).

How the tree maps onto Dropbox:
- `root` is a folder of the Dropbox (or of the app folder, for an app-folder app); a file
  `a/b.txt` is `/<root>/a/b.txt`. Dropbox is case-insensitive and keeps the case written.
- Listing: files/list_folder and list_folder/continue while `has_more` (`page_size` a page).
- Writes are atomic for readers (a file appears when committed): files/upload below
  `chunk_size`, else an upload session (start, append_v2, finish with mode overwrite). Every
  request carries the content_hash of its bytes, which the server checks; the stored file's
  `content_hash` (the "dropbox" hash) is compared with the one computed while sending.
- mtimes: `client_modified`, whole seconds, set only by an upload (no set_mtime).
- The fingerprint is the file's `rev`.
- Throttling (429 `too_many_requests` / `too_many_write_operations`, 503) waits for
  Retry-After, at most `max_wait` seconds, up to `max_retries` times.
- Changes: list_folder/get_latest_cursor (recursive, deleted entries included), then
  list_folder/continue; a `reset` error means the cursor expired and everything is listed again.
- Sign-in: OAuth 2 with PKCE and `token_access_type=offline` (a refresh token); Dropbox has no
  device flow, so a headless machine pastes the code back.
"""

from cdir.providers.dropbox.errors import ERRORS, ApiError
from cdir.providers.dropbox.hashing import ContentHasher, content_hash
from cdir.providers.dropbox.provider import OPTIONS, DropboxProvider, token_secret

__all__ = [
    "ERRORS",
    "OPTIONS",
    "ApiError",
    "ContentHasher",
    "DropboxProvider",
    "content_hash",
    "token_secret",
]
