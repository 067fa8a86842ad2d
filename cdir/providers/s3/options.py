"""The options of an s3 provider: each with its kind and default, parsed once into
`Provider.conf` (see `cdir.providers.options`)."""

from __future__ import annotations

from cdir.providers.common import MiB
from cdir.providers.objstore import page_size_option
from cdir.providers.options import OptionSpec
from cdir.providers.s3.presets import PRESETS

OPTIONS = (
    OptionSpec("root", "bucket, or bucket/prefix", required=True),
    # a str, not a choice: the message lists the presets (see presets.resolve_endpoint)
    OptionSpec("preset", "S3-compatible service: " + ", ".join(PRESETS)),
    OptionSpec("endpoint_url", "service URL, e.g. https://s3.eu-central-1.wasabisys.com"),
    OptionSpec("region", "region name (signing and endpoint); us-east-1 when unset"),
    OptionSpec(
        "addressing_style", "path | virtual | auto", "choice", choices=("path", "virtual", "auto")
    ),
    OptionSpec("account_id", "Cloudflare account ID (preset cloudflare-r2)"),
    OptionSpec("namespace", "Object Storage namespace (preset oracle)"),
    OptionSpec("profile", "AWS profile for the default credential chain (no keys given)"),
    OptionSpec(
        "multipart_threshold", "files from this size go up in parts", "size", default=16 * MiB
    ),
    OptionSpec(
        "multipart_chunksize",
        "part size of multipart uploads (raised to 5 MiB if smaller)",
        "size",
        default=16 * MiB,
    ),
    OptionSpec(
        "upload_concurrency", "parts in flight per multipart upload", "int", default=8, minimum=1
    ),
    OptionSpec("max_connections", "HTTP connection pool size", "int", default=32, minimum=1),
    OptionSpec(
        "max_attempts", "tries per request (standard retry mode)", "int", default=5, minimum=1
    ),
    OptionSpec("connect_timeout", "seconds", "float", default=10.0, minimum=0),
    OptionSpec("read_timeout", "seconds", "float", default=60.0, minimum=0),
    page_size_option(1000, " (at most 1000)"),
    OptionSpec(
        "list_mtime",
        "where listings take mtimes from: metadata (a HEAD per "
        "file, exact) | server (Last-Modified, the upload time, no extra requests)",
        "choice",
        default="metadata",
        choices=("metadata", "server"),
    ),
    OptionSpec(
        "verify_dirs",
        "check each listed directory holds a file (on by default "
        "for preset seaweedfs, whose emptied folders linger in listings)",
        "bool",
    ),
    OptionSpec(
        "etag_md5",
        "report single-part ETags as md5 (turn off for buckets with "
        "SSE-KMS/SSE-C default encryption)",
        "bool",
        default=True,
    ),
    OptionSpec(
        "fast_put",
        "small puts (below multipart_threshold), reads and listings go as signed requests on "
        "a plain connection pool instead of through boto3 (half the CPU per object, a sixth "
        "per listed key); needs endpoint_url, addressing_style path|virtual and access keys",
        "bool",
        default=True,
    ),
    OptionSpec("access_key_id", "access key ID", secret=True),
    OptionSpec("secret_access_key", "secret access key", secret=True),
    OptionSpec("session_token", "temporary session token", secret=True),
)
