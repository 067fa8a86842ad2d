"""boto3's errors in cdir's terms: one table, first match wins (see `cdir.errors.translate`)."""

from __future__ import annotations

import botocore.exceptions as bexc

from cdir.errors import (
    AuthError,
    Conflict,
    ErrorRule,
    NotFound,
    ProviderError,
    Unavailable,
    UsageError,
)


def code(exc: BaseException) -> str:
    """The S3 error code (NoSuchKey, SlowDown…); "" for anything else."""
    if isinstance(exc, bexc.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def status(exc: BaseException) -> int:
    """The HTTP status of a ClientError; 0 for anything else."""
    if isinstance(exc, bexc.ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def not_found(exc: BaseException) -> bool:
    """A 404: no such key, or no such bucket (a HEAD's answer has no code to tell which)."""
    return code(exc) in ("NoSuchBucket", "NoSuchKey", "NotFound", "404") or status(exc) == 404


def precondition_failed(exc: BaseException) -> bool:
    return code(exc) in ("PreconditionFailed", "412") or status(exc) == 412


AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "InvalidSecurity",
        "AllAccessDisabled",
        "AccountProblem",
        "403",
        "401",
        "Forbidden",
        "Unauthorized",
    }
)
BUSY_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeTooSkewed",
        "TooManyRequests",
        "503",
        "500",
        "502",
        "504",
        "429",
    }
)
_NETWORK = (
    bexc.EndpointConnectionError,
    bexc.ConnectTimeoutError,
    bexc.ReadTimeoutError,
    bexc.ConnectionClosedError,
    bexc.ResponseStreamingError,
)

ERRORS: list[ErrorRule] = [
    (not_found, NotFound, None),
    (lambda e: code(e) in AUTH_CODES or status(e) in (401, 403), AuthError, False),
    (
        lambda e: isinstance(e, bexc.NoCredentialsError | bexc.PartialCredentialsError),
        AuthError,
        False,
    ),
    (precondition_failed, Conflict, None),
    (
        lambda e: code(e) in BUSY_CODES or status(e) >= 500 or status(e) == 429,
        Unavailable,
        True,
    ),
    (lambda e: isinstance(e, (*_NETWORK, ConnectionError, TimeoutError)), Unavailable, True),
    (
        lambda e: (
            code(e) in ("InvalidBucketName", "InvalidArgument", "KeyTooLongError")
            or isinstance(e, bexc.ParamValidationError | bexc.ProfileNotFound)
        ),
        UsageError,
        None,
    ),
    (lambda e: isinstance(e, bexc.BotoCoreError), ProviderError, False),
]
