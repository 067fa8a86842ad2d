"""What the Drive API and httpx report, translated through one table into cdir errors.

Drive answers errors as `{"error": {"code": 403, "message": "…", "errors": [{"domain":
"usageLimits", "reason": "userRateLimitExceeded", "message": "…"}]}}`; the `reason` tells a
quota refusal (retried with backoff) from a real permission error."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from cdir.errors import AuthError, ErrorRule, NotFound, ProviderError, Unavailable, UsageError

# 403 reasons that mean "slow down", not "forbidden"
RATE_LIMITED = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "sharingRateLimitExceeded"})
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# 403 reasons that mean "full" or "over a daily limit": a human must act, but not by signing in
QUOTA = frozenset(
    {"storageQuotaExceeded", "dailyLimitExceeded", "teamDriveFileLimitExceeded", "quotaExceeded"}
)


class DriveError(Exception):
    """The Drive API answered with an error status."""

    def __init__(self, status: int, reason: str = "", message: str = "") -> None:
        self.status = status
        self.reason = reason
        text = message or httpx.codes.get_reason_phrase(status)
        super().__init__(f"Drive answered {status}{f' {reason}' if reason else ''}: {text}")

    @classmethod
    def of(cls, resp: httpx.Response) -> DriveError:
        """The error in a response's JSON body (a bare status when it has none)."""
        try:
            body = resp.json().get("error", {})
        except ValueError:
            body = {}
        if not isinstance(body, dict):  # OAuth endpoints answer {"error": "invalid_grant"}
            return cls(resp.status_code, str(body))
        errors = body.get("errors") or [{}]
        return cls(resp.status_code, errors[0].get("reason", ""), body.get("message", ""))

    @property
    def retryable(self) -> bool:
        return self.status in RETRY_STATUS or (self.status == 403 and self.reason in RATE_LIMITED)


def _status(*codes: int) -> Callable[[BaseException], bool]:
    return lambda e: isinstance(e, DriveError) and e.status in codes


ERRORS: list[ErrorRule] = [
    (lambda e: isinstance(e, DriveError) and e.retryable, Unavailable, True),
    (lambda e: isinstance(e, DriveError) and e.reason in QUOTA, ProviderError, False),
    (_status(401, 403), AuthError, False),
    (_status(404, 410), NotFound, None),
    (_status(400), UsageError, False),
    (
        lambda e: isinstance(
            e, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
        ),
        Unavailable,
        True,
    ),
    (lambda e: isinstance(e, httpx.InvalidURL | httpx.UnsupportedProtocol), UsageError, False),
    (lambda e: isinstance(e, ValueError), ProviderError, False),  # an answer that is not JSON
]
