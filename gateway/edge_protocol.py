"""uvicorn's httptools protocol with the listener's limits (docs/limits.md).

httptools parses whatever arrives: a 64 MiB header, a request line trickled
one byte a minute, a socket that never says anything. This subclass adds,
per listener (the port a connection arrived on):

* header bytes and header count (431) and request-target length (414),
  checked as the parser reports each piece, and a cap on the raw bytes of an
  unfinished request head so the parser never buffers more than that;
* a header read timeout from the connection (or the first bytes of a later
  request's head) to the end of the headers: 408 if a request had begun,
  else the socket is just closed;
* the idle timeout of a keep-alive connection (uvicorn's keep-alive timer,
  set per listener);
* a cap on open connections per listener and per worker, kept below the
  file-descriptor limit: past it a new connection is answered 503 and
  closed, and established ones are untouched;
* a body read timeout from the end of the headers to the end of the body;
* a response of known length written in one piece (gateway.edge_cycle);
* the parser's own errors answered as the JSON error body, not plain text;
* a client that disconnects, or whose body is late, interrupts the request:
  the reason goes into the scope and the app's task is cancelled
  (gateway.interrupts), so the backend call ends with it.

Everything here is per-callback bookkeeping on the connection; a request
whose head and body arrive whole starts no timer of its own.
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from gateway.config import ListenerLimitsConfig
from gateway.edge_cycle import EdgeCycle
from gateway.errors import (
    BadRequest,
    Code,
    GatewayError,
    HeadersTooLarge,
    RequestTimeout,
    UriTooLong,
)
from gateway.http2.upgrade import H2cRequest, asks_for_h2c, h2c_request
from gateway.interrupts import BODY_TIMEOUT, CLIENT_GONE, SCOPE_KEY, Reason

if TYPE_CHECKING:
    H2cSwitch = Callable[["EdgeProtocol", H2cRequest, bytes], None]

LimitsFor = Callable[[int], ListenerLimitsConfig]
# File descriptors a worker keeps for itself (upstream channels, logs,
# metrics files) when the connection cap is derived from its fd limit.
RESERVED_FDS = 64
# A refused connection waits this long for its request before it is closed.
REFUSE_LINGER = 1.0
# Per header line beyond its name and value: ": " and CRLF.
LINE_OVERHEAD = 4
# The request line's method, version and spaces.
REQUEST_LINE_OVERHEAD = 32


class _Refused(Exception):
    """A limit was crossed inside a parser callback."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


def worker_connection_cap() -> int:
    """Connections one worker may hold open, below its fd limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(soft - RESERVED_FDS, 16)


def edge_protocol(limits_for: LimitsFor) -> type[EdgeProtocol]:
    """The protocol class for one worker; ``limits_for(port)`` gives each
    listener's limits (the admin port gets the defaults)."""
    return type(
        "BoundEdgeProtocol",
        (EdgeProtocol,),
        {"limits_for": staticmethod(limits_for), "open_by_port": Counter(), "worker_cap": None},
    )


class EdgeProtocol(HttpToolsProtocol):
    limits_for: ClassVar[LimitsFor]
    open_by_port: ClassVar[Counter[int]]
    worker_cap: ClassVar[int | None]
    # Hands an h2c upgrade to HTTP/2 (gateway.http2.select); None: no upgrade.
    h2c_switch: ClassVar[H2cSwitch | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._port = 0
        self._limits = ListenerLimitsConfig()
        self._counted = False
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        # The app's task and the request it serves (pipelined ones wait).
        self._task: asyncio.Task[None] | None = None
        self._task_cycle: RequestResponseCycle | None = None
        self._reading_head = True
        self._head_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        self._url_bytes = 0
        self._h2c: H2cRequest | None = None

    # -- connection --------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cls = type(self)
        self._port = port = (self.server[1] or 0) if self.server else 0
        self._limits = limits = cls.limits_for(port)
        # uvicorn arms this timer after each response: the idle timeout.
        self.timeout_keep_alive = limits.idle_timeout  # type: ignore[assignment]
        cls.open_by_port[port] += 1
        self._counted = True
        if cls.worker_cap is None:
            cls.worker_cap = worker_connection_cap()
        if (
            cls.open_by_port[port] > limits.max_connections
            or len(self.connections) > cls.worker_cap
        ):
            self._refused = True
            self._head_timer = self.loop.call_later(REFUSE_LINGER, self.transport.close)
            return
        self._head_timer = self.loop.call_later(limits.header_read_timeout, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            type(self).open_by_port[self._port] -= 1
        self._cancel_head_timer()
        self._cancel_body_timer()
        self._interrupt(CLIENT_GONE)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._answer_and_close(
                GatewayError(
                    "too many connections to this listener",
                    grpc_code=Code.UNAVAILABLE,
                    http_status=503,
                )
            )
            return
        self._unset_keepalive_if_required()
        if self._h2c is not None:
            self._h2c_body(data)
            return
        if self._reading_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self._h2c is not None:
                self._h2c_body(data[upgrade.args[0] :])
            elif self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            error = cause.error if isinstance(cause, _Refused) else BadRequest(_parser_message(exc))
            self._answer_and_close(error)
            return
        if self._reading_head:
            if self._head_bytes > self._head_cap():
                # Bytes of one unfinished head: the parser buffers a header
                # until its end, so the callbacks alone would see it too late.
                self._answer_and_close(HeadersTooLarge("request headers too large"))
            elif self._head_timer is None and self._head_bytes:
                # Part of a head is here and the rest is late: time it from
                # now (a head that came whole needs no timer).
                self._head_timer = self.loop.call_later(
                    self._limits.header_read_timeout, self._head_timeout
                )
        elif self._body_timer is None and self._body_pending():
            self._body_timer = self.loop.call_later(
                self._limits.body_read_timeout, self._body_timeout
            )

    def send_400_response(self, msg: str) -> None:
        self._answer_and_close(BadRequest(msg))

    # -- parser callbacks --------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._header_bytes = self._header_count = self._url_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self._limits.max_url_bytes:
            raise _Refused(UriTooLong(f"request target over {self._limits.max_url_bytes} bytes"))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self._limits
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        if self._header_count > limits.max_request_headers:
            raise _Refused(HeadersTooLarge(f"more than {limits.max_request_headers} headers"))
        if self._header_bytes > limits.max_request_header_bytes:
            raise _Refused(
                HeadersTooLarge(f"request headers over {limits.max_request_header_bytes} bytes")
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self._cancel_head_timer()
        upgrade = self.h2c_switch is not None and self.parser.should_upgrade()
        if upgrade and asks_for_h2c(self.headers):
            # The parser stops at these headers; the body comes to _h2c_body.
            try:
                self._h2c = h2c_request(self.parser.get_method(), self.url, self.headers)
            except GatewayError as error:
                raise _Refused(error) from None
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        if self._h2c is None:
            super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn's, keeping the task so that the connection can cancel it.
        # uvicorn made the cycle; ours adds the one-write answer (it adds no
        # state of its own, so the class can change before the task starts).
        cycle.__class__ = EdgeCycle
        task = self.loop.create_task(cycle.run_asgi(app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        self._task, self._task_cycle = task, cycle

    # -- helpers -------------------------------------------------------------

    def _h2c_body(self, data: bytes) -> None:
        request = self._h2c
        switch = type(self).h2c_switch
        assert request is not None and switch is not None
        rest = request.feed(data)
        if rest is None:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(
                    self._limits.body_read_timeout, self.transport.close
                )
            return
        self._cancel_body_timer()
        # The connection is HTTP/2's from here, and counted there.
        if self._counted:
            self._counted = False
            type(self).open_by_port[self._port] -= 1
        self.connections.discard(self)
        switch(self, request, rest)

    def _head_cap(self) -> int:
        limits = self._limits
        return (
            limits.max_url_bytes
            + limits.max_request_header_bytes
            + LINE_OVERHEAD * limits.max_request_headers
            + REQUEST_LINE_OVERHEAD
        )

    def _body_pending(self) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle.more_body and not cycle.response_complete

    def _body_timeout(self) -> None:
        self._body_timer = None
        if not self._body_pending() or self.transport.is_closing():
            return
        if self.cycle.response_started:
            # Answered without the body: no reuse for this connection.
            self.cycle.keep_alive = False
            return
        if not self._interrupt(BODY_TIMEOUT):
            self.transport.close()

    def _interrupt(self, reason: Reason) -> bool:
        """Cancel the app serving the current request, saying why; False if
        no request is being served."""
        task, cycle = self._task, self._task_cycle
        if task is None or cycle is None or task.done() or cycle.response_complete:
            return False
        cycle.scope[SCOPE_KEY] = reason  # type: ignore[literal-required]
        task.cancel()
        return True

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._reading_head:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head is late while the previous request is still
            # answered: finish that one, then close.
            self.cycle.keep_alive = False
            return
        if self._head_bytes == 0:
            self.transport.close()  # a silent connection: nobody to answer
            return
        timeout = self._limits.header_read_timeout
        self._answer_and_close(RequestTimeout(f"request headers not received within {timeout:g}s"))

    def _answer_and_close(self, error: GatewayError) -> None:
        """Answer a request the app never saw, and close the connection."""
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            body = error.body()
            self.transport.write(
                b"".join(
                    [
                        STATUS_LINE[error.status],
                        b"content-type: application/json\r\n",
                        b"content-length: %d\r\n" % len(body),
                        b"connection: close\r\n\r\n",
                        body,
                    ]
                )
            )
        self.transport.close()


def _parser_message(exc: Exception) -> str:
    detail = str(exc.args[0]) if exc.args else ""
    return f"malformed HTTP request: {detail}"[:200] if detail else "malformed HTTP request"
