"""requests Sessions tuned for the SDKs that send through requests (azure, gcs). Apart from
`common` because requests comes only with those SDKs."""

from __future__ import annotations

import os
from typing import Any

import requests


def tune_session(session: requests.Session, url: str, pool: int) -> None:
    """A connection pool of `pool` shared by all threads; proxies and CA bundle from the
    environment read once here: with trust_env requests looks them (and ~/.netrc) up again on
    every request, which cost ~8 ms per call, as much as a small upload to a local server.
    Retries are the SDK's."""
    adapter = _Adapter(pool_maxsize=pool, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False


class _Adapter(requests.adapters.HTTPAdapter):
    """Bigger socket blocks than http.client's 8 KiB default: faster uploads."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", 256 * 1024)
        super().init_poolmanager(*args, **kwargs)
