"""asyncssh's exceptions as cdir errors: one table, first match wins (see cdir.errors)."""

from __future__ import annotations

import errno
import socket

import asyncssh

from cdir.errors import AuthError, ErrorRule, NotFound, ProviderError, Unavailable

_NET_ERRNOS = {
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ENETDOWN,
    errno.EHOSTDOWN,
    errno.ECONNABORTED,
    errno.EPIPE,
}

# Dropped connections and sessions, timeouts, refused or reset connections, DNS hiccups
_RETRYABLE = (
    TimeoutError,
    ConnectionError,
    EOFError,
    socket.gaierror,
    asyncssh.ConnectionLost,
    asyncssh.ServiceNotAvailable,
    asyncssh.ChannelOpenError,
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
)

ERRORS: list[ErrorRule] = [
    (lambda e: isinstance(e, asyncssh.PermissionDenied), AuthError, False),  # login refused
    (lambda e: isinstance(e, asyncssh.SFTPNoSuchFile | FileNotFoundError), NotFound, None),
    # SFTP "permission denied"
    (lambda e: isinstance(e, asyncssh.SFTPPermissionDenied | PermissionError), AuthError, None),
    (lambda e: isinstance(e, _RETRYABLE), Unavailable, True),
    (lambda e: isinstance(e, OSError) and e.errno in _NET_ERRNOS, Unavailable, True),
    # no common cipher or key exchange, a protocol error, any other SFTP failure
    (lambda e: isinstance(e, OSError | asyncssh.Error), ProviderError, False),
]
