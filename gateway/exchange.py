"""What one request did on its way through the gateway.

The app opens an :class:`Exchange` when a request arrives; the router writes
which route and cluster took it, the invoker each upstream attempt (endpoint,
time, outcome), and the app the status sent. When the response is done the
app hands the finished record to its observers (metrics, the access log,
tracing), so none of them reaches into the request path, and one that is
turned off costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.upstream.call import Call


@dataclass(slots=True)
class Attempt:
    """One try of the call on one endpoint."""

    endpoint: str
    started: float  # time.perf_counter() when the try was sent
    seconds: float = 0.0
    # The gRPC status the try ended with (0: OK); None while it runs, or when
    # the gateway gave up before the upstream answered.
    grpc_status: int | None = None


class Trace(Protocol):
    """The request's trace while tracing is on (gateway.tracing.RequestTrace)."""

    def attempt_call(self, call: Call, attempt: Attempt) -> Call:
        """The call as this attempt sends it (its own ``traceparent``)."""
        ...

    def finish(self, exchange: Exchange) -> None:
        """Told once the response is done; exports the spans."""
        ...


@dataclass(slots=True)
class Exchange:
    listener: str
    method: str
    path: str
    # time.perf_counter() at the request head; wall-clock time for the log.
    started: float = field(default_factory=time.perf_counter)
    wall_time: float = field(default_factory=time.time)
    request_id: str = ""
    trace_id: str = ""  # the W3C trace (32 hex digits) while tracing is on
    # None unless tracing is on: then each attempt's call goes through it.
    trace: Trace | None = None
    http_version: str = ""  # the client's: "1.1", "2"
    client: tuple[str, int] | None = None  # the client's address and port
    # The request's headers (lower-cased names) and query, as the app received
    # them (the request ID included); the response's headers as sent.
    request_headers: Sequence[tuple[str, str]] = ()
    query_string: bytes = b""
    response_headers: Sequence[tuple[str, str]] = ()
    bytes_received: int = 0  # the request body read
    bytes_sent: int = 0  # the response body written
    route: str = ""
    cluster: str = ""
    upstream: str = ""  # the upstream protocol client: grpc, triple, triple-json, dubbo
    attempts: list[Attempt] = field(default_factory=list)
    status: int = 0  # the HTTP status sent (499: the client left first)
    grpc_status: int | None = None  # the final gRPC status, when an upstream answered
    seconds: float = 0.0  # request head to the end of the response

    def begin_attempt(self, endpoint: str) -> Attempt:
        attempt = Attempt(endpoint, time.perf_counter())
        self.attempts.append(attempt)
        return attempt

    @property
    def endpoint(self) -> str:
        """The endpoint of the last attempt ("" when none was made)."""
        return self.attempts[-1].endpoint if self.attempts else ""

    @property
    def retries(self) -> int:
        return max(len(self.attempts) - 1, 0)

    @property
    def upstream_seconds(self) -> float:
        return sum(a.seconds for a in self.attempts)


# Told of every finished exchange, after the response was sent; must not raise.
Observer = Callable[[Exchange], None]
