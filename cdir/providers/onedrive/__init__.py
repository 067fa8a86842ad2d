"""OneDrive (personal and business) and SharePoint document libraries through Microsoft Graph,
over httpx.

The registry imports this package (and so httpx) only when a onedrive provider is opened.
Modules: `provider` (the interface on provider paths), `api` (Graph URLs, the retry loop,
paging, job monitors), `upload` (session fragments), `delta` (the change feed), `quickxor`
(OneDrive's content hash), `options`, `errors`.

How the tree maps onto the drive:
- `drive_id` picks the drive (`me/drive` by default; a drive id, or `sites/{id}/drive`) and
  `root` is a folder path in it; items are addressed by path (`/root:/a/b.txt:`), every
  segment percent-encoded.
- Sign-in is OAuth 2.0 with the Microsoft identity platform (`tenant`, default "common"):
  cdir's own `OAuthSession` does the token refresh, as for the other drives, so msal is not
  needed. An expired token is refreshed before use and once more on a 401.
- Writes: up to 4 MiB one PUT /content; larger files an upload session (createUploadSession,
  then fragments of `chunk_size`, multiples of 320 KiB, with Content-Range); both with
  conflictBehavior=replace. A file appears only when complete, so no temporary names are
  used. A stream of unknown size over 4 MiB is spooled first (a session needs the total).
  The mtime goes in fileSystemInfo, kept to the second: a write with an mtime goes through
  a session whose item carries it, so content and mtime appear together (an empty file, which
  a session cannot take, gets a PATCH after its PUT). Missing parent folders are made when
  Graph says they are missing.
- Hashes: quickXorHash (hex; computed while sending and compared with the server's), sha1
  and sha256 where Graph gives them (OneDrive Personal used to), and md5 of the bytes sent.
  The fingerprint is the cTag, which changes with the content only.
- 429 and 503 are retried after the Retry-After Graph sends (bounded by `retries`).
- Copy is POST /copy, polled on its monitor URL with a deadline; move is a PATCH of
  parentReference. OneDrive Personal ignores conflictBehavior there: a file in the way is
  then deleted and the request sent again.
- Changes come from `delta` on the drive root (business drives allow no other), filtered to
  `root`; an expired cursor (410) asks the caller to list everything.
- Names are case-insensitive. Known gaps, not encoded: OneDrive refuses the characters
  " * : < > ? \\ | in names and names ending in "." or " "; such paths raise InvalidPath.
"""

from cdir.providers.onedrive.provider import OneDriveProvider
from cdir.providers.onedrive.quickxor import QuickXor, quickxor_hex

__all__ = ["OneDriveProvider", "QuickXor", "quickxor_hex"]
