"""What several provider test modules share (the conformance suite is cdir.providers.testing)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from cdir.errors import AuthError, Conflict, Unavailable
from cdir.providers.base import Provider
from cdir.providers.testing import stream

if TYPE_CHECKING:
    from cdir.providers.azure import AzureProvider
    from cdir.providers.gcs import GCSProvider


def requests_seen(p: AzureProvider | GCSProvider) -> list[str]:
    """Method and URL of every HTTP request the provider sends from now on."""
    p.check()  # builds the client and its session
    seen: list[str] = []
    assert p._http is not None
    p._http.hooks["response"].append(
        lambda r, *a, **k: seen.append(f"{r.request.method} {r.request.url}")
    )
    return seen


def assert_every_op_raises(p: Provider, error: type[Exception], match: str) -> None:
    """check, list, stat and put_stream each raise `error` with a message matching `match`
    (the root is out of reach: a missing bucket, say)."""
    for op in (
        p.check,
        lambda: list(p.list("")),
        lambda: p.stat("f"),
        lambda: p.put_stream(stream(b"x"), "f"),
    ):
        with pytest.raises(error, match=match):
            op()


def one_line_error(exc: pytest.ExceptionInfo[Exception], *secrets: str) -> str:
    """The message of a raised error, checked to be one line that shows none of `secrets`."""
    text = str(exc.value)
    assert text and "\n" not in text
    for secret in secrets:
        assert secret not in text
    return text


def unavailable(op: Callable[[], object], *secrets: str) -> str:
    """The message of the Unavailable that `op` raises: retryable, one line, no secrets."""
    with pytest.raises(Unavailable) as err:
        op()
    assert err.value.retryable
    return one_line_error(err, *secrets)


def auth_refused(op: Callable[[], object], *secrets: str) -> str:
    """The message of the AuthError that `op` raises: not retryable, one line, no secrets."""
    with pytest.raises(AuthError) as err:
        op()
    assert not err.value.retryable
    return one_line_error(err, *secrets)


def assert_bad_sources_change_nothing(p: Provider, path: str, data: bytes) -> None:
    """600 kB streams (above the small-upload limit the tests set) that are shorter or longer
    than announced, or that break, leave `data` stored at `path`."""
    for size in (700_000, 300_000):
        with pytest.raises(Conflict):
            p.put_stream(stream(os.urandom(600_000)), path, size=size)
    with pytest.raises(Exception, match="broke"):
        p.put_stream(stream(os.urandom(600_000), fail=True), path)
    assert p.read_bytes(path) == data
