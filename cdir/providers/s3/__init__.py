"""Amazon S3 and S3-compatible object stores (Wasabi, Backblaze B2, Cloudflare R2, Oracle,
IDrive e2, DigitalOcean Spaces, MinIO, Ceph RGW, SeaweedFS…) through boto3.

Only this package imports boto3 (~0.3 s), and only when an s3 provider is opened.

How the tree maps onto a bucket (the part every object store shares is `cdir.providers.objstore`):
- `root` is `bucket` or `bucket/some/prefix`; a file `a/b.txt` is the object `some/prefix/a/b.txt`.
- Directories are key prefixes. No marker objects are written, so a directory exists while a file
  below it exists (`empty_dirs=False`, `mkdir` is a no-op). Marker objects made by other tools
  (`dir/`) are read as directories.
- The original mtime is kept in user metadata `mtime` (seconds with up to nine decimals, the
  format rclone uses, so both tools read each other's times); `Last-Modified` is only the upload
  time and is reported when that metadata is missing. ListObjectsV2 carries no metadata, so a
  listing HEADs each file it has not seen before (in parallel; remembered by ETag and
  Last-Modified, so a daemon listing the same tree again pays only for what changed);
  `list_mtime=server` skips that and reports upload times, and so does a listing asked with
  `mtimes=False` for the files this process has not seen (a sync pass needs only sizes and
  fingerprints).
- Plain (single-part) ETags are MD5s and are reported as `md5`. Multipart ETags (`…-N`) are
  only fingerprints: a multipart upload stores the MD5 computed while it streamed in user
  metadata `md5chksum` (rclone's key and encoding, base64 of the digest), and that is reported.
- Writes are atomic for readers: one PutObject below `multipart_threshold`, a multipart upload
  (completed in one step) above it.

Modules: `provider` (S3Provider), `presets` (S3-compatible services as data), `errors` (the
error table), `metadata` (mtime and md5chksum formats), `client` (boto3 sessions and config),
`signed` (the signed urllib3 fast path for small objects and listings), `listing`
(ListObjectsV2 pages: the fast path's XML read with ElementTree, else boto3).
"""

from cdir.providers.s3.errors import ERRORS
from cdir.providers.s3.metadata import format_mtime, parse_mtime
from cdir.providers.s3.presets import PRESETS, Preset
from cdir.providers.s3.provider import S3Provider

__all__ = ["ERRORS", "PRESETS", "Preset", "S3Provider", "format_mtime", "parse_mtime"]
