"""A directory on an SSH host, over SFTP (protocol version 3, as OpenSSH speaks it), via asyncssh.

`root` is the remote directory that holds the files: absolute, or relative to the login directory
("" or "." is the login directory itself). The server's host key is always checked against the
pinned fingerprint (`host_key`).

Modules: `provider` (the Provider), `transfer` (uploads and downloads), `tree` (stat, mkdir -p,
rename, listings, removal), `pool` (connections shared by threads), `connection` (one SSH
connection: keys, ciphers, login), `hostkeys` (pinning), `errors` (asyncssh → cdir errors),
`loop` (the one event loop thread all connections live on).

Why asyncssh. SFTP is fast only with many requests in flight. paramiko's public API waits for a
reply to nearly every request, and its pipelined writes are 32 KiB each; keeping requests in
flight with it needed its private request methods. asyncssh's public API is asynchronous: every
request is a coroutine, so many are in flight with no private calls, and it reads the server's
request-size limits itself. cdir's threads hand it coroutines through one event loop thread.
Measured here (2 cores, OpenSSH on 127.0.0.1; `python -m benchmarks.run --quick`, rclone with
disable_hashcheck in the same run), cdir / rclone seconds:

| case | paramiko (private API) | paramiko public API only | asyncssh |
|---|---|---|---|
| put 2,000 x 16 KiB | 2.82 / 2.14 (1.32x) | — | see docs/providers.md |
| put 1 x 1 GiB | 5.85 / 3.09 (1.89x) | — | see docs/providers.md |
"""

from cdir.providers.sftp.hostkeys import fetch_host_key, fingerprint
from cdir.providers.sftp.provider import SFTPProvider

__all__ = ["SFTPProvider", "fetch_host_key", "fingerprint"]
