"""Box (box.com) through Box's official SDK, box-sdk-gen.

Only this package imports the SDK, and only when a box provider is opened. Its modules:
`provider` (the interface on provider paths), `tree` (path ↔ id), `upload` (spooled,
small or chunked uploads), `changes` (the event stream as paths), `client` (the SDK's
client: base URLs, our OAuth session as its auth, retries, the error table).

How the tree maps onto Box:
- Box addresses items by id (the root folder is "0"); `root` is a folder path below it.
  Paths resolve to ids through folder listings (marker paging, `page_size` items a page)
  whose results are remembered (`tree.Tree`); names compare case-insensitively, as on Box.
- The SDK is pointed at other hosts by its `BaseUrls` (options `api_url`, `upload_url`;
  `token_url` for the OAuth refresh), which is how the tests run it against a fake of the
  API on loopback. It retries 429 and 5xx answers, obeying Retry-After (capped by
  `max_wait`), and after a 401 refreshes the token once through our `OAuthSession`: Box
  refresh tokens are single-use, and the session saves each new one in the secret store.
- Writes spool the bytes first (MD5 and SHA-1 on the way): small files go up in one request
  (POST /files/content, or /files/{id}/content for a new version, with the SHA-1 as
  Content-MD5), from `upload_cutoff` on as an upload session (parts with their SHA-1 in
  Digest and Content-Range, a commit with the parts list and the whole file's SHA-1).
  content_modified_at carries the mtime, to the second. A name taken meanwhile (409
  item_name_in_use) gets a new version. Deletes go to the trash.
- SHA-1 is Box's hash (`hash_kinds`); the fingerprint is the id of the file's current
  version. Copy (POST /files/{id}/copy) and move (PUT /files/{id} with a new parent) happen
  on the server. `changes` reads the event stream (see `changes`).
- The one request the SDK's typed methods cannot make, an upload session's commit with
  `attributes` (documented by Box, left out of the SDK), goes through the SDK's network
  client all the same (`client.fetch_json`).
"""

from cdir.providers.box.provider import BoxProvider

__all__ = ["BoxProvider"]
