"""Any Apache libcloud storage driver as a cdir provider: S3 and its kin, Azure Blobs, Google
Storage, Backblaze B2, OpenStack Swift, a local folder… (option `driver`, libcloud's name).

Root is "container" or "container/some/prefix"; the mapping every object store shares is
`cdir.providers.objstore`. Only libcloud's common `StorageDriver` API is used, so what it lacks
shapes this provider:

- Listings have no delimiter: `iterate_container_objects(prefix)` gives every key below a
  prefix, and a one-level listing folds the deeper keys into directories here.
- Uploads go through `upload_object_via_stream`. A small file is read first and sent with its
  md5 and mtime in user metadata (rclone's keys `md5chksum` and `mtime`); a big one streams (S3
  multipart, Azure blocks) and is committed only when the stream ended at its announced size.
  The md5 of a streamed upload is known too late for metadata, so `hash_kinds` stays empty;
  `put_stream` still returns the md5 it hashed on the way.
- There is no copy: `set_mtime` rewrites metadata where the driver can
  (`ex_set_object_metadata`, Azure), else it streams the object back onto itself.
- A driver object keeps per-request state on its connection, so each thread gets its own.

Modules: `provider` (the interface over the driver API; `QUIRKS`, what drivers differ in, as
data) and `errors` (the table, and two fixes to libcloud's HTTP).

The LOCAL driver (a folder: `key` is its path, the container a folder in it) keeps no
metadata, so mtimes are the files' own and cannot be set; it writes big streams in place (a
failed upload of a file above `single_put_size` leaves a partial file there); it leaves a
lock file per object written in the temporary directory (`driver_options`
{"ex_use_locking": false} turns locking off); and it needs the package `fasteners`.
"""

from cdir.providers.libcloud.errors import ERRORS
from cdir.providers.libcloud.provider import QUIRKS, LibcloudProvider, Quirks

__all__ = ["ERRORS", "QUIRKS", "LibcloudProvider", "Quirks"]
