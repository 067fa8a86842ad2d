"""A directory on an SSH host, over SFTP (protocol version 3, as OpenSSH speaks it), via asyncssh.

`root` is the remote directory that holds the files: absolute, or relative to the login directory
("" or "." is the login directory itself). The server's host key is always checked against the
pinned fingerprint (`host_key`).

Modules: `provider` (the Provider), `transfer` (uploads and downloads), `tree` (stat, mkdir -p,
rename, listings, removal), `pool` (connections shared by threads), `connection` (one SSH
connection: keys, ciphers, login), `hostkeys` (pinning), `errors` (asyncssh → cdir errors),
`loop` (the one event loop thread all connections live on).

Why asyncssh. SFTP is fast only with many requests in flight. paramiko's public API waits for a
reply to almost every request (five round trips for a small put) and pipelines writes of 32 KiB
only; keeping requests in flight needed its private request methods. asyncssh's public API is
asynchronous: each request is a coroutine, so many are in flight with no private calls, and it
reads the server's request-size limits itself. Measured against OpenSSH on 127.0.0.1 (2 shared
cores), the provider alone with 4 threads, wall / CPU seconds:

    client                          2,000 x 16 KiB puts    1 x 1 GiB put
    paramiko, private API (before)  1.6-2.5 / 0.9-2.0      2.7-3.9 / 1.6-1.9
    paramiko, public API only       2.1-2.5 / 1.2-2.0      4.9-6.5 (32 KiB writes)
    asyncssh 2.24                   2.6-3.1 / 1.9-2.7      2.9-3.6 / 2.2-2.8

and end to end, `cdir put --parallel 4` against `rclone copy --transfers 4` (disable_hashcheck),
medians of 3 interleaved runs on the same server, load average 3.5-4.8 on 2 cores, cdir /
rclone seconds: 2,000 x 16 KiB, before 3.04 / 2.32 (1.31x), asyncssh 4.28 / 2.32 (1.84x);
1 GiB, before 4.88 / 3.29 (1.48x), asyncssh 3.67 / 3.29 (1.12x). (`benchmarks.run --quick`,
one run each, gave 1.70-2.81x and 1.62-2.25x with asyncssh on the loaded machine, against
1.32x and 1.89x before.) asyncssh spends more CPU per request (an asyncio task and future
each, and 2.24 sends an SSH_MSG_IGNORE before every packet, doubling encryptions and socket
writes), which shows on many small files over loopback; it keeps the round trips per file
that decide the speed over a real network.
"""

from cdir.providers.sftp.hostkeys import fetch_host_key, fingerprint
from cdir.providers.sftp.provider import SFTPProvider

__all__ = ["SFTPProvider", "fetch_host_key", "fingerprint"]
