"""A deadline for a whole HTTP exchange: connect, send, headers and body, however slow.

Timeouts on a socket bound each wait for a byte, not the exchange: a server (or a proxy in the
way) that sends one byte every two seconds keeps a file far past its time budget. So each
exchange is armed with a deadline; the sockets it opens or reuses are registered with it (by the
connection classes below, which the HTTP client's pools use), and one thread per process shuts
them down when the deadline passes. The blocked read then ends at once with an error, which the
client reports as "did not answer in time".
"""

import contextlib
import heapq
import itertools
import socket
import threading
import time
from typing import Any, List, Optional, Tuple

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from ..ground import runtime


class Exchange:
    """One armed exchange: its deadline and the sockets it uses."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sockets: List[socket.socket] = []
        self.expired = False
        self.lock = threading.Lock()

    def register(self, sock: Optional[socket.socket]) -> None:
        if sock is None:
            return
        with self.lock:
            if self.expired:
                _shut(sock)
            else:
                self.sockets.append(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed, or never connected
        sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """The process's one thread that ends exchanges at their deadlines.

    Deadlines are on the real monotonic clock, not ``clock.now``: sockets wait in real time,
    whatever clock the budgets read (a test's fake one included)."""

    def __init__(self) -> None:
        self._due: List[Tuple[float, int, Exchange]] = []
        self._count = itertools.count()
        self._wake = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._local = threading.local()
        self._closed = False

    def arm(self, seconds: float) -> Exchange:
        """An exchange that ends ``seconds`` from now; the calling thread's until ``disarm``."""
        exchange = Exchange(time.monotonic() + seconds)
        with self._wake:
            heapq.heappush(self._due, (exchange.deadline, next(self._count), exchange))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pixstor-azure-watchdog", daemon=True
                )
                self._thread.start()
            self._wake.notify()
        self._local.exchange = exchange
        return exchange

    def disarm(self, exchange: Exchange) -> None:
        """The exchange ended: its sockets are left alone from now on."""
        self._local.exchange = None
        with exchange.lock:
            exchange.expired = False
            exchange.sockets = []
            exchange.deadline = float("inf")  # dropped from the heap when its turn comes

    def current(self) -> Optional[Exchange]:
        return getattr(self._local, "exchange", None)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _run(self) -> None:
        with self._wake:
            while not self._closed:
                now = time.monotonic()
                while self._due and self._due[0][0] <= now:
                    deadline, _, exchange = heapq.heappop(self._due)
                    if exchange.deadline == deadline:  # still armed: time is up
                        exchange.expire()
                self._wake.wait(self._due[0][0] - now if self._due else None)


def watchdog() -> Watchdog:
    return runtime.current().get(Watchdog)


def _register(sock: Any) -> None:
    exchange = watchdog().current()
    if exchange is not None:
        exchange.register(sock)


class WatchedHTTPConnection(HTTPConnection):
    """urllib3's connection, its socket registered with the thread's armed exchange."""

    def _new_conn(self) -> Any:
        sock = super()._new_conn()
        _register(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> Any:
        _register(self.sock)  # a kept-alive connection, connected by an earlier exchange
        return super().request(*args, **kwargs)


class WatchedHTTPSConnection(WatchedHTTPConnection, HTTPSConnection):
    """urllib3's TLS connection, registered as above (its methods come first in the MRO)."""


class WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


POOLS = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}
