"""A bounded pool of HTTP/1.1 keep-alive connections to one endpoint, on asyncio protocols.

Each connection carries one exchange at a time (no pipelining); the bytes are
built and parsed by ``gateway.upstream.http1``. The pool:

* reuses the most recently used idle connection (the warm one; the others
  age out after ``idle_timeout``);
* opens at most ``max_connections`` at once, callers beyond that waiting in
  order for one to come back;
* drops a connection the server closed, one whose answer said it will close,
  and one whose exchange did not finish (a timeout or a cancellation leaves
  a half-read response on it).

Why not httpx (issue 18): under load it took about 2 ms of CPU per call, ten
times the rest of the gateway's work. httpcore retries a failing ``import
sniffio`` (a walk of ``sys.path``) four times per request when sniffio is
not installed, httpx logs every request at INFO, headers and body go in two
writes, and each reuse polls the socket; its pool also scans every
connection per request, which grows with concurrency. This client does one
write and one parse per call.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

from gateway.upstream.http1 import ProtocolError, Response, ResponseReader

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_IDLE_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0


class ConnectFailed(ConnectionError):
    """No connection could be made (refused, unreachable, or not within the connect bound)."""


class ConnectionLost(ConnectionError):
    """The connection closed or broke before the response was complete."""


class Http1Connection(asyncio.Protocol):
    """One socket; :meth:`exchange` sends a request and waits for its response."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._reader: ResponseReader | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # The request goes out in one write; never let it wait for an ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        waiter, reader = self._waiter, self._reader
        if waiter is None or reader is None or waiter.done():
            self.close()  # bytes nobody asked for: the connection's state is unknown
            return
        try:
            response = reader.receive_data(data)
        except ProtocolError as exc:
            waiter.set_exception(exc)
            self.close()
            return
        if response is not None:
            waiter.set_result(response)

    def eof_received(self) -> bool | None:
        waiter, reader = self._waiter, self._reader
        if waiter is not None and reader is not None and not waiter.done():
            try:
                waiter.set_result(reader.receive_eof())
            except ProtocolError as exc:
                waiter.set_exception(ConnectionLost(str(exc)))
        self.closed = True
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            reason = str(exc) if exc else "server closed the connection"
            waiter.set_exception(ConnectionLost(reason or type(exc).__name__))

    async def exchange(self, request: bytes) -> Response:
        if self.closed or self._transport is None:
            raise ConnectionLost("server closed the connection")
        self._reader = ResponseReader()
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = self._reader = None

    def close(self) -> None:
        self.closed = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


Connector = Callable[[], Awaitable[Http1Connection]]


class Http1Pool:
    """The connections of one endpoint; ``connect`` opens one (TCP or a TLS relay's Unix socket)."""

    def __init__(
        self,
        connect: Connector,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self._connect = connect
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[Http1Connection] = deque()  # oldest left, most recent right
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._busy: set[Http1Connection] = set()
        self._closed = False
        self.opened = 0  # connections made over the pool's life

    async def request(self, data: bytes) -> Response:
        """One exchange on an idle or a new connection; connection failures as the classes above."""
        async with self._slots:
            connection = self._take_idle() or await self._open()
            self._busy.add(connection)
            try:
                response = await connection.exchange(data)
            except BaseException:
                connection.close()
                raise
            finally:
                self._busy.discard(connection)
            if response.keep_alive and not connection.closed and not self._closed:
                connection.idle_since = asyncio.get_running_loop().time()
                self._idle.append(connection)
            else:
                connection.close()
            return response

    @property
    def idle(self) -> int:
        return sum(1 for connection in self._idle if not connection.closed)

    def _take_idle(self) -> Http1Connection | None:
        now = asyncio.get_running_loop().time()
        # Age out from the cold end first, so unused connections do not linger.
        while self._idle and (
            self._idle[0].closed or now - self._idle[0].idle_since > self._idle_timeout
        ):
            self._idle.popleft().close()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _open(self) -> Http1Connection:
        if self._closed:
            raise ConnectFailed("the client is closed")
        try:
            async with asyncio.timeout(self._connect_timeout):
                connection = await self._connect()
        except TimeoutError:
            raise ConnectFailed(f"connect timed out after {self._connect_timeout:g}s") from None
        except OSError as exc:
            raise ConnectFailed(exc.strerror or str(exc) or type(exc).__name__) from None
        self.opened += 1
        return connection

    def close(self) -> None:
        """Close every connection; calls in flight fail with :class:`ConnectionLost`."""
        self._closed = True
        idle, self._idle = self._idle, deque()
        for connection in [*idle, *self._busy]:
            connection.close()
