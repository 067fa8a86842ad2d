"""The fast path for small objects: botocore's own SigV4 signer, sent on a urllib3 pool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import urllib3


class SignedRequests:
    """PutObject of a small body, and GetObject, without botocore's request machinery.
    Measured against SeaweedFS: 0.74 ms of CPU per 16 KiB object against 1.68 ms through boto3,
    which on small files is what bounds throughput. Anything unusual (an error status, a
    dropped connection) returns None and the caller redoes the request through boto3, which
    retries and reports through the error table."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        region: str,
        style: str,
        secrets: Mapping[str, str],
        pool_size: int,
    ) -> None:
        from botocore.credentials import Credentials

        scheme, _, host = endpoint.rstrip("/").partition("://")
        self.base = (
            f"{scheme}://{bucket}.{host}/" if style == "virtual" else f"{scheme}://{host}/{bucket}/"
        )
        self.region = region
        self.creds = Credentials(
            secrets["access_key_id"],
            secrets.get("secret_access_key", ""),
            secrets.get("session_token") or None,
        )
        self.http = urllib3.PoolManager(maxsize=pool_size, retries=False)

    def _signed(self, method: str, key: str, data: bytes, headers: dict[str, str]) -> Any:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        url = self.base + quote(key, safe="/-_.~")
        req = AWSRequest(method=method, url=url, data=data, headers=headers)
        S3SigV4Auth(self.creds, "s3", self.region).add_auth(req)
        return self.http.request(
            method,
            url,
            body=data or None,
            headers=dict(req.headers.items()),
            preload_content=method != "GET",
        )

    def get(self, key: str, byte_range: str | None) -> Any:
        """The open response of a GetObject (stream it, then release_conn()), or None."""
        try:
            r = self._signed("GET", key, b"", {"Range": byte_range} if byte_range else {})
        except urllib3.exceptions.HTTPError:
            return None
        if r.status in (200, 206):
            return r
        r.drain_conn()
        r.release_conn()
        return None

    def put(self, key: str, data: bytes, meta: Mapping[str, str]) -> dict[str, Any] | None:
        headers = {"Content-Length": str(len(data))}
        headers.update({f"x-amz-meta-{k}": v for k, v in meta.items()})
        try:
            r = self._signed("PUT", key, data, headers)
        except urllib3.exceptions.HTTPError:
            return None
        if r.status != 200 or not r.headers.get("ETag"):
            return None
        # the fields of boto3's response that the caller reads
        return {
            "ETag": r.headers["ETag"],
            "ServerSideEncryption": r.headers.get("x-amz-server-side-encryption"),
            "SSECustomerAlgorithm": r.headers.get(
                "x-amz-server-side-encryption-customer-algorithm"
            ),
        }
