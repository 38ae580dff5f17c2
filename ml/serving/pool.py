"""The serving reader's connection pool: a bounded, thread-safe LIFO pool of autocommit MySQLdb
connections that discards a connection the server dropped (see :mod:`ml.serving.app` for the reads
and their retries).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import MySQLdb

# server gone / lost / commands out of sync / killed (MariaDB 1927) / idle timeout (MySQL 8 4031) / closed
RECONNECT_CODES = {2006, 2013, 2014, 2055, 1927, 4031, 0}


def connect_args(
    host: str, port: int, user: str, password: str, database: str, timeout_s: float
) -> dict[str, Any]:
    """MySQLdb.connect arguments of the reader's accounts: autocommit, one statement per call, whole-second
    connect/read/write timeouts (at least 1 s)."""
    wait = max(1, round(timeout_s))
    return dict(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=wait,
        read_timeout=wait,
        write_timeout=wait,
        multi_statements=False,
    )


class ServingUnavailable(RuntimeError):
    """The serving database cannot answer now (→ HTTP 503)."""


class ConnectionPool:
    """A bounded, thread-safe LIFO pool of MySQLdb connections; broken ones are discarded."""

    def __init__(self, factory: Callable[[], MySQLdb.Connection], size: int = 8, wait_s: float = 2.0):
        self._factory, self._size, self._wait_s = factory, size, wait_s
        self._idle: queue.LifoQueue[MySQLdb.Connection] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._open = 0

    def _take(self) -> MySQLdb.Connection:
        with contextlib.suppress(queue.Empty):
            return self._idle.get_nowait()
        with self._lock:
            grow = self._open < self._size
            if grow:
                self._open += 1
        if grow:
            try:
                return self._factory()
            except BaseException:
                with self._lock:
                    self._open -= 1
                raise
        try:
            return self._idle.get(timeout=self._wait_s)
        except queue.Empty:
            raise ServingUnavailable(
                f"all {self._size} database connections busy for {self._wait_s}s"
            ) from None

    @contextlib.contextmanager
    def connection(self) -> Iterator[MySQLdb.Connection]:
        conn = self._take()
        healthy = True
        try:
            yield conn
        except (MySQLdb.OperationalError, MySQLdb.InterfaceError) as exc:
            healthy = bool(exc.args) and exc.args[0] not in RECONNECT_CODES
            raise
        finally:
            if healthy:
                self._idle.put(conn)
            else:
                with self._lock:
                    self._open -= 1
                with contextlib.suppress(Exception):
                    conn.close()

    def close(self) -> None:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                conn.close()
            with self._lock:
                self._open -= 1
