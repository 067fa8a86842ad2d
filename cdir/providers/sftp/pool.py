"""The connection pool: each borrower has a connection to itself until it gives it back."""

from __future__ import annotations

import threading
from collections.abc import Callable

from cdir.providers.sftp.connection import Conn


class Pool:
    """Connections are opened only when no idle one is left, up to `size` at once."""

    def __init__(self, connect: Callable[[], Conn], size: int) -> None:
        self._connect = connect
        self.size = max(1, size)
        self._idle: list[Conn] = []
        self._open = 0
        self._generation = 0  # bumped by close(): connections from before are not reused
        self._cond = threading.Condition()

    def borrow(self) -> tuple[Conn, int]:
        dead: list[Conn] = []
        try:
            with self._cond:
                while True:
                    while self._idle:
                        conn = self._idle.pop()
                        if conn.alive():
                            return conn, self._generation
                        self._open -= 1
                        dead.append(conn)
                    if self._open < self.size:
                        self._open += 1
                        generation = self._generation
                        break
                    self._cond.wait()
        finally:
            for conn in dead:  # outside the lock: closing may wait for the loop
                conn.close()
        try:
            return self._connect(), generation  # outside the lock: connects run in parallel
        except BaseException:
            with self._cond:
                if generation == self._generation:
                    self._open -= 1
                self._cond.notify()
            raise

    def give_back(self, conn: Conn, generation: int, broken: bool) -> None:
        with self._cond:
            keep = generation == self._generation and not broken and conn.alive()
            if keep:
                self._idle.append(conn)
            elif generation == self._generation:
                self._open -= 1
            # else: opened before close(); not counted any more
            self._cond.notify()
        if not keep:
            conn.close(abort=broken)

    def close(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
            self._open = 0
            self._generation += 1
            self._cond.notify_all()
        for conn in idle:
            conn.close()
