"""The fast path for small objects and listings: botocore's own SigV4 signer, sent on a
urllib3 pool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import urllib3


class SignedRequests:
    """PutObject of a small body, GetObject and ListObjectsV2 (the answer parsed by
    `cdir.providers.s3.listing`), without botocore's request machinery.
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
        timeout: urllib3.Timeout | None = None,
    ) -> None:
        from botocore.credentials import Credentials

        scheme, _, host = endpoint.rstrip("/").partition("://")
        self.base = (
            f"{scheme}://{bucket}.{host}/" if style == "virtual" else f"{scheme}://{host}/{bucket}/"
        )
        # ListObjectsV2 goes to the bucket itself: `/bucket`, or `/` of the bucket's host
        self.bucket_url = self.base if style == "virtual" else self.base.rstrip("/")
        self.region = region
        self.timeout = timeout  # of listings (puts and reads keep urllib3's default)
        self.creds = Credentials(
            secrets["access_key_id"],
            secrets.get("secret_access_key", ""),
            secrets.get("session_token") or None,
        )
        self.http = urllib3.PoolManager(maxsize=pool_size, retries=False)

    def _signed(
        self, method: str, url: str, data: bytes, headers: dict[str, str], **kw: Any
    ) -> Any:
        """The response to a signed request (`kw`: for urllib3's `request`)."""
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        req = AWSRequest(method=method, url=url, data=data, headers=headers)
        S3SigV4Auth(self.creds, "s3", self.region).add_auth(req)
        return self.http.request(
            method, url, body=data or None, headers=dict(req.headers.items()), **kw
        )

    def _url(self, key: str) -> str:
        return self.base + quote(key, safe="/-_.~")

    def get(self, key: str, byte_range: str | None) -> Any:
        """The open response of a GetObject (stream it, then release_conn()), or None."""
        try:
            headers = {"Range": byte_range} if byte_range else {}
            r = self._signed("GET", self._url(key), b"", headers, preload_content=False)
        except urllib3.exceptions.HTTPError:
            return None
        if r.status in (200, 206):
            return r
        r.drain_conn()
        r.release_conn()
        return None

    def list_objects(self, params: Mapping[str, str]) -> bytes | None:
        """The XML body of a successful ListObjectsV2 with these query parameters, or None.
        The query is encoded and sorted as SigV4 signs it (botocore signs a URL's query as
        it stands)."""
        query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items())
        )
        kw = {} if self.timeout is None else {"timeout": self.timeout}
        try:
            r = self._signed("GET", f"{self.bucket_url}?{query}", b"", {}, **kw)
        except urllib3.exceptions.HTTPError:
            return None
        return r.data if r.status == 200 else None

    def put(self, key: str, data: bytes, meta: Mapping[str, str]) -> dict[str, Any] | None:
        headers = {"Content-Length": str(len(data))}
        headers.update({f"x-amz-meta-{k}": v for k, v in meta.items()})
        try:
            r = self._signed("PUT", self._url(key), data, headers)
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
