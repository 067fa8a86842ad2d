"""One exception tree for all of cdir.

    CdirError
    ├── InvalidPath (ValueError)          a virtual or provider path that cdir refuses
    ├── UsageError (ValueError)           bad arguments or options
    ├── Unauthorized (PermissionError)    no or a wrong token for the cdir service
    ├── NotFound (FileNotFoundError)
    ├── AlreadyExists (FileExistsError)
    ├── NotADirectory (NotADirectoryError)
    ├── IsADirectory (IsADirectoryError)
    ├── Conflict                          concurrent change, precondition failed
    │   ├── Busy                          another command holds the subtree (retryable)
    │   └── PreconditionFailed            a conditional write met another generation
    ├── Unsupported (NotImplementedError) the provider cannot do this (see its capabilities)
    ├── MissingDependency (ImportError)   an optional SDK is not installed
    ├── VaultError                        wrong passphrase, tampered or unreadable vault
    ├── CatalogError
    ├── Unsafe                            a sync pass stopped by a safety rail (`--force`)
    ├── Interrupted                       Ctrl-C or SIGTERM; carries what was done
    └── ProviderError(retryable)          anything else a storage service reported
        ├── AuthError (PermissionError)
        └── Unavailable                   server down, timeout, throttled (retryable)

Leaves also subclass the builtin they mean, so `except FileNotFoundError` works on cdir errors.
Provider SDK errors are translated in one table per provider (see `translate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager


class CdirError(Exception):
    """Base of every error cdir raises on purpose. Its message is one line meant for users."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class InvalidPath(CdirError, ValueError):
    pass


class UsageError(CdirError, ValueError):
    pass


class Unauthorized(CdirError, PermissionError):
    """A request to the cdir service without its token (or with a wrong one)."""


class NotFound(CdirError, FileNotFoundError):
    pass


class AlreadyExists(CdirError, FileExistsError):
    pass


class NotADirectory(CdirError, NotADirectoryError):
    pass


class IsADirectory(CdirError, IsADirectoryError):
    pass


class Conflict(CdirError):
    pass


class Busy(Conflict):
    retryable = True


class PreconditionFailed(Conflict):
    """A conditional write found another generation than the one it was made against."""


class Unsupported(CdirError, NotImplementedError):
    pass


class MissingDependency(CdirError, ImportError):
    pass


class VaultError(CdirError):
    pass


class Unsafe(CdirError):
    pass


class CatalogError(CdirError):
    pass


class Interrupted(CdirError, KeyboardInterrupt):
    """A command stopped by Ctrl-C or SIGTERM after recording what the providers confirmed;
    `report` (a schema.TransferReport) says what was done. Still a KeyboardInterrupt, so
    code that stops on one stops on this."""

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report


class ProviderError(CdirError):
    pass


class AuthError(ProviderError, PermissionError):
    pass


class Unavailable(ProviderError):
    retryable = True


# One row of a provider's error table: (predicate on the SDK exception, cdir class, retryable).
# retryable None keeps the class default.
ErrorRule = tuple[Callable[[BaseException], bool], type[CdirError], bool | None]


def translate(exc: BaseException, table: Sequence[ErrorRule], what: str) -> CdirError:
    """Map an SDK exception to a cdir error through a provider's table; first match wins."""
    if isinstance(exc, CdirError):
        return exc
    what = one_line(what)
    for matches, cls, retryable in table:
        if matches(exc):
            return cls(f"{what}: {_describe(exc)}", retryable=retryable)
    return ProviderError(f"{what}: {_describe(exc)}")


@contextmanager
def translated(table: Sequence[ErrorRule], what: str) -> Iterator[None]:
    """`with translated(TABLE, "s3://b/k"):` turns SDK exceptions into cdir errors."""
    try:
        yield
    except CdirError:
        raise
    except Exception as exc:
        raise translate(exc, table, what) from exc


def one_line(text: str) -> str:
    """Control characters (a newline in an object key…) shown escaped: messages stay one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # not str(exc): that names the file, a temporary one perhaps
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first or type(exc).__name__


# How the REST API reports each error (status, code), most specific first; the CLI's client
# turns a code back into its error, so a command gives the same message and exit code
# through the service as directly.
HTTP_STATUS: tuple[tuple[type[CdirError], int, str], ...] = (
    (InvalidPath, 400, "invalid_path"),
    (Unauthorized, 401, "unauthorized"),
    (UsageError, 400, "bad_request"),
    (NotFound, 404, "not_found"),
    (AlreadyExists, 409, "already_exists"),
    (NotADirectory, 409, "not_a_directory"),
    (IsADirectory, 409, "is_a_directory"),
    (PreconditionFailed, 412, "precondition_failed"),
    (Busy, 409, "busy"),
    (Conflict, 409, "conflict"),
    (Unsafe, 409, "unsafe"),
    (Unsupported, 400, "unsupported"),
    (MissingDependency, 400, "missing_dependency"),
    (Unavailable, 503, "provider_unavailable"),
    (AuthError, 503, "provider_auth"),
    (ProviderError, 503, "provider_error"),
    (VaultError, 503, "vault"),
    (CatalogError, 503, "catalog"),
    (Interrupted, 503, "interrupted"),
)
