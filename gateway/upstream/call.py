"""One RPC on its way to an upstream, its reply, and the interface every
protocol client implements.

A route kind decodes an HTTP request into a :class:`Call`; the invoker hands
it to an :class:`Upstream` (grpc, triple, triple-json, dubbo2) with an endpoint
address, a timeout and the cluster's TLS settings. The same shapes serve every
protocol, so the invoker and the tests treat them alike (httpx's transport
interface, for upstreams).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mesh.security import UpstreamTls

Metadata = tuple[tuple[str, str | bytes], ...]

# Pixiu's request headers that pick a Dubbo provider; they win over the route
# and the cluster.
GROUP_HEADER = "x-dubbo-service-group"
VERSION_HEADER = "x-dubbo-service-version"


@dataclass(frozen=True, slots=True)
class DubboOptions:
    """Which Dubbo provider serves the call and how it is named (Dubbo upstreams only)."""

    group: str | None = None
    version: str | None = None
    application: str = "meshgate"
    # Java parameter types, for dubbo2 generic invocation and Java's ~sig overloads.
    parameter_types: Sequence[str] | None = None

    def for_request(self, headers: Mapping[str, str]) -> DubboOptions:
        """Request headers first, then this (the route's over the cluster's) value."""
        group = headers.get(GROUP_HEADER) or self.group
        version = headers.get(VERSION_HEADER) or self.version
        if group == self.group and version == self.version:
            return self
        return DubboOptions(group, version, self.application, self.parameter_types)


NO_DUBBO = DubboOptions()


@dataclass(frozen=True, slots=True)
class Call:
    service: str  # gRPC service or Dubbo interface
    method: str
    # Serialized protobuf messages, or for JSON route kinds the one JSON body.
    messages: Sequence[bytes]
    metadata: Metadata = ()
    client_streaming: bool = False
    server_streaming: bool = False
    dubbo: DubboOptions = field(default=NO_DUBBO)
    # The most one reply message may be on the wire (the route's
    # max_response_bytes); the upstream refuses more while receiving.
    max_reply_bytes: int | None = None

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"


@dataclass(frozen=True, slots=True)
class Reply:
    body: bytes  # a serialized protobuf message, or JSON text
    initial_metadata: Metadata = ()
    trailing_metadata: Metadata = ()


@dataclass(frozen=True, slots=True)
class ReplyStream:
    initial_metadata: Metadata
    messages: AsyncIterator[bytes]


@dataclass(frozen=True, slots=True)
class CallStatus:
    """How a passthrough call ended: code, message, trailing metadata as sent,
    and (UNAVAILABLE from the transport) how the connection failed."""

    code: int
    message: str = ""
    trailing_metadata: Metadata = ()
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class DuplexReply:
    """A passthrough call's answer: headers now, messages as they come, then
    ``status()`` once ``messages`` has ended (never raises for a non-OK status)."""

    initial_metadata: Metadata
    messages: AsyncIterator[bytes]
    status: Callable[[], Awaitable[CallStatus]]


class RequestMessages(Protocol):
    """A passthrough call's request stream, replayable for a retry until the
    first reply message commits the call (or the kept messages outgrow their cap)."""

    def attempt(self) -> AsyncIterator[bytes]:
        """The messages for one attempt: those kept, then the rest as they arrive."""
        ...

    def commit(self) -> None:
        """No more attempts: stop keeping messages."""
        ...

    @property
    def replayable(self) -> bool: ...


class DuplexUpstream(Protocol):
    """A protocol client that streams both ways on bytes (gRPC passthrough)."""

    async def duplex(
        self,
        address: str,
        call: Call,
        requests: AsyncIterator[bytes],
        timeout: float | None,
        security: UpstreamTls | None = None,
    ) -> DuplexReply: ...


class Upstream(Protocol):
    """A protocol client of one worker, pooling its connections per address.

    Failures are raised as the gateway's error tree (``gateway.errors``),
    translated where they enter, so the invoker decides retries on gRPC codes
    whatever the protocol.
    """

    async def unary(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> Reply:
        """One reply: unary, or client streaming when ``call.client_streaming``.

        ``security`` is the cluster's TLS (None: plaintext); connections are
        pooled per (address, security)."""
        ...

    async def stream(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> ReplyStream:
        """Server streaming: the initial metadata, then messages as they arrive."""
        ...

    async def close(self) -> None: ...
