"""Google Drive (My Drive or a shared drive) through its v3 REST API, with httpx.

Why not google-api-python-client: its media uploads (`MediaIoBaseUpload`) seek the stream to
learn its size, and cdir uploads from unseekable streams of unknown length (another
provider's download); it speaks through httplib2, whose `Http` objects are not thread-safe
(cdir transfers in parallel); and its discovery layer adds nothing for the dozen calls used
here. The REST API is small and documented, and httpx is what the other OAuth providers use,
with `OAuthSession.auth()` renewing tokens on a 401.

Modules: `provider` (the interface), `tree` (paths ↔ file IDs), `api` (requests, backoff,
uploads), `changes` (the change feed), `options`, `errors` (the table).

How the tree maps onto Drive:
- The root is a folder path below My Drive (or the shared drive `drive_id`); `create_root`
  makes it. Paths are walked name by name from it (`files.list` with `'<folder>' in parents
  and name = '…'`); folder IDs are cached, and forgotten when cdir moves or deletes them or
  the change feed says they moved. Files are looked up each time, so two files of one name
  in a folder (Drive allows it) are always seen: an error naming both IDs, never one picked.
- Google Docs/Sheets/Slides and shortcuts have no bytes and no md5: listings skip them with a
  warning, and reading one is Unsupported.
- Small files go in one multipart request; larger ones (and streams longer than
  `upload_cutoff`) through a resumable session, in chunks of `chunk_size` (a multiple of
  256 KiB). The last chunk is sent only once the stream is known to have ended at the
  announced size, so a short or long source never completes an upload: the old version stays.
  A new version of an existing file replaces its content in place (same ID, one more
  revision). md5Checksum is the hash and the fingerprint; modifiedTime (ms) is the mtime.
- 403 rateLimitExceeded/userRateLimitExceeded, 429 and 5xx are retried with exponential
  backoff, honouring Retry-After; a chunk that failed is resumed from what the session holds.
- delete moves to the trash unless `trash=false`. copy is files.copy; move is files.update
  with addParents/removeParents.
- `changes(cursor)` is changes.getStartPageToken / changes.list: changed files are mapped to
  paths by walking their parents up to the root (outside it: left out).
"""

from cdir.providers.gdrive.errors import ERRORS, DriveError
from cdir.providers.gdrive.options import OPTIONS
from cdir.providers.gdrive.provider import GDriveProvider

__all__ = ["ERRORS", "OPTIONS", "DriveError", "GDriveProvider"]
