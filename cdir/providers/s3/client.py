"""The boto3 client: one session per profile for the process, a config from the options;
and the server-side copy that picks CopyObject or a multipart copy by size."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from cdir.providers.common import MiB

MAX_COPY = 5 * 1024 * MiB  # the largest object one CopyObject may copy; above, multipart copy

# One boto3 session per profile for the process: a new session reloads the service model
# (~0.4 s), a client from a loaded one takes ~20 ms. Sessions are not thread-safe: the lock.
_SESSIONS: dict[str | None, boto3.session.Session] = {}
_SESSIONS_LOCK = threading.Lock()


def new_client(
    conf: Mapping[str, Any],
    secrets: Mapping[str, str],
    endpoint_url: str | None,
    region: str,
    addressing_style: str,
) -> Any:
    """An S3 client (thread-safe) for these options; boto3's default credential chain when
    no keys are given."""
    cfg = Config(
        region_name=region,
        s3={"addressing_style": addressing_style},
        retries={"mode": "standard", "max_attempts": conf["max_attempts"]},
        max_pool_connections=conf["max_connections"],
        connect_timeout=conf["connect_timeout"],
        read_timeout=conf["read_timeout"],
        tcp_keepalive=True,
        # The new default CRC32 checksums cost a pass over every body and several
        # S3-compatible services reject them; send checksums only where S3 demands one.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    keys: dict[str, str] = {}
    if secrets.get("access_key_id"):
        keys = {
            "aws_access_key_id": secrets["access_key_id"],
            "aws_secret_access_key": secrets.get("secret_access_key", ""),
        }
        if secrets.get("session_token"):
            keys["aws_session_token"] = secrets["session_token"]
    profile = conf.get("profile") or None
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(profile)
        if session is None:
            session = _SESSIONS[profile] = boto3.session.Session(profile_name=profile)
        return session.client("s3", endpoint_url=endpoint_url, config=cfg, **keys)


def server_copy(
    client: Any,
    bucket: str,
    src_key: str,
    dst_key: str,
    size: int,
    extra: dict[str, Any],
    transfer: TransferConfig,
) -> dict[str, Any] | None:
    """CopyObject (up to 5 GiB) or a managed multipart copy (`transfer`'s concurrency) within
    `bucket`; the CopyObject result, None after a multipart copy. Raw boto3 errors."""
    source = {"Bucket": bucket, "Key": src_key}
    if size <= MAX_COPY:
        r = client.copy_object(Bucket=bucket, Key=dst_key, CopySource=source, **extra)
        return r.get("CopyObjectResult")
    tc = TransferConfig(
        multipart_threshold=MAX_COPY,
        multipart_chunksize=512 * MiB,
        max_concurrency=transfer.max_concurrency,
        preferred_transfer_client="classic",
    )
    client.copy(source, bucket, dst_key, ExtraArgs=extra or None, Config=tc)
    return None
