"""gRPC upstream over grpc.aio, on raw bytes.

One channel per (endpoint address, security) per worker, created on first
use and kept for the life of the worker: HTTP/2 multiplexes every request
over it (the per-request dialing of some gateways costs a handshake per
call). The channel reconnects by itself when the backend comes back.

A TLS cluster's channel dials the worker's TLS transport
(:mod:`gateway.tls.transport`), which carries its connections to the
endpoint over TLS with the cluster's certificates and SAN checks: grpcio's
own ssl credentials cannot check a SPIFFE ID. Rotated certificates reach
the next connection; the channel and its calls in flight are kept.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any

import grpc
import grpc.aio

from gateway.errors import (
    CONNECT_FAILURE,
    REFUSED_STREAM,
    RESET,
    BadUpstreamResponse,
    Code,
    GatewayError,
    UpstreamStatus,
    UpstreamUnavailable,
)
from gateway.tls.transport import TlsTransports
from gateway.upstream.call import Call, CallStatus, DuplexReply, Metadata, Reply, ReplyStream
from gateway.upstream.metadata import response_headers
from gateway.upstream.status import status_details
from mesh.security import UpstreamTls

DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024
# What grpc says when a reply exceeds the channel's receive limit, a local
# check, not the backend's RESOURCE_EXHAUSTED.
_LOCAL_SIZE_ERROR = "Received message larger than max"
_CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.http2.max_pings_without_data", 0),
    # The gateway does its own retries; grpc's transparent retries would
    # multiply them.
    ("grpc.enable_retries", 0),
    # Reconnect soon after a backend comes back: gRPC's default backoff grows
    # to two minutes, long after health checks put the endpoint back. (Not
    # min_reconnect_backoff_ms: gRPC core takes it as the connect timeout too,
    # and a slow peer's handshake, a JVM's, needs more than a few 100 ms.)
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)
# In-flight calls on the channel of an endpoint that left get this long to end.
CLOSE_GRACE_S = 5.0
Keepalive = tuple[float, float]  # seconds: ping after idle, then wait for the ack
DEFAULT_KEEPALIVE: Keepalive = (30.0, 10.0)
ALPN = ("h2",)
ChannelKey = tuple[str, UpstreamTls | None, int]  # address, security, reply limit


class GrpcUpstream:
    def __init__(self, tls: TlsTransports | None = None) -> None:
        self._owns_tls = tls is None
        self._tls = tls or TlsTransports()
        # One channel per address, security and reply limit: grpc enforces
        # max_receive_message_length per channel, while the message arrives.
        self._channels: dict[ChannelKey, grpc.aio.Channel] = {}
        self._unary: dict[tuple[ChannelKey, str], grpc.aio.UnaryUnaryMultiCallable] = {}
        self._keepalive: dict[str, Keepalive] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def channel(
        self, address: str, security: UpstreamTls | None = None, max_reply_bytes: int | None = None
    ) -> grpc.aio.Channel:
        limit = max_reply_bytes or DEFAULT_MAX_REPLY_BYTES
        key = (address, security, limit)
        channel = self._channels.get(key)
        if channel is None:
            ping, wait = self._keepalive.get(address, DEFAULT_KEEPALIVE)
            options = (
                *_CHANNEL_OPTIONS,
                ("grpc.max_receive_message_length", limit),
                ("grpc.keepalive_time_ms", int(ping * 1000)),
                ("grpc.keepalive_timeout_ms", int(wait * 1000)),
                # While a call is running grpc sends BDP pings, and its keepalive
                # ping waits behind them; their acks are awaited for a minute
                # unless told otherwise. The same wait for every ping, so a
                # silent peer fails a running call in time + timeout too.
                ("grpc.http2.ping_timeout_ms", int(wait * 1000)),
            )
            if security is None:
                channel = grpc.aio.insecure_channel(address, options=options)
            else:
                path = await self._tls.socket_path(address, security, ALPN)
                channel = self._channels.get(key)  # another call may have made it meanwhile
                if channel is None:
                    # :authority stays the endpoint's (or the SNI name), not the socket's.
                    authority = ("grpc.default_authority", security.sni or address)
                    channel = grpc.aio.insecure_channel(
                        f"unix:{path}", options=(*options, authority)
                    )
            self._channels[key] = channel
        return channel

    def set_keepalive(self, keepalive: Mapping[str, Keepalive]) -> None:
        """Per endpoint keepalive (its cluster's); a changed one re-creates the channel."""
        changed = {
            a for a, k in keepalive.items() if self._keepalive.get(a, DEFAULT_KEEPALIVE) != k
        }
        self._keepalive = dict(keepalive)
        for address in changed:
            self._drop(address)

    def retain(self, addresses: Collection[str]) -> None:
        """Close the channels of endpoints that left every cluster (EDS or the config);
        calls still running on them get CLOSE_GRACE_S to finish."""
        for address in {key[0] for key in self._channels if key[0] not in addresses}:
            self._drop(address)

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(key[0] for key in self._channels))

    def _drop(self, address: str) -> None:
        for key in [k for k in self._channels if k[0] == address]:
            channel = self._channels.pop(key)
            task = asyncio.get_running_loop().create_task(channel.close(CLOSE_GRACE_S))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        for unary_key in [k for k in self._unary if k[0][0] == address]:
            del self._unary[unary_key]

    async def unary(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> Reply:
        try:
            return await self._unary_call(address, call, timeout, security)
        except UpstreamUnavailable as error:
            raise self._explained(error, address, security) from None

    async def _unary_call(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None
    ) -> Reply:
        metadata = call.metadata
        limit = call.max_reply_bytes or DEFAULT_MAX_REPLY_BYTES
        if call.client_streaming:
            channel = await self.channel(address, security, limit)
            return await _reply(
                channel.stream_unary(call.path)(
                    iter(call.messages), timeout=timeout, metadata=metadata
                )
            )
        key = ((address, security, limit), call.path)
        call_factory = self._unary.get(key)
        if call_factory is None:
            channel = await self.channel(address, security, limit)
            call_factory = channel.unary_unary(call.path)
            self._unary[key] = call_factory
        return await _reply(call_factory(call.messages[0], timeout=timeout, metadata=metadata))

    def _explained(
        self, error: UpstreamUnavailable, address: str, security: UpstreamTls | None
    ) -> UpstreamUnavailable:
        """grpc only sees the local socket close; say what the TLS side saw, and where."""
        if security is None or "unix:" not in error.message:
            return error  # plaintext, or the backend's own UNAVAILABLE status
        failure = self._tls.failure(address, security, ALPN)
        error.message = f"{address}: {failure or 'upstream unavailable over TLS'}"
        return error

    async def stream(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> ReplyStream:
        try:
            return await self._stream_call(address, call, timeout, security)
        except UpstreamUnavailable as error:
            raise self._explained(error, address, security) from None

    async def _stream_call(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None
    ) -> ReplyStream:
        channel = await self.channel(address, security, call.max_reply_bytes)
        rpc: Any
        if call.client_streaming:
            rpc = channel.stream_stream(call.path)(
                iter(call.messages), timeout=timeout, metadata=call.metadata
            )
        else:
            rpc = channel.unary_stream(call.path)(
                call.messages[0], timeout=timeout, metadata=call.metadata
            )
        try:
            initial = await rpc.initial_metadata()
        except grpc.aio.AioRpcError as exc:
            raise upstream_error(exc) from None

        async def messages() -> AsyncIterator[bytes]:
            try:
                async for message in rpc:
                    yield message
            except grpc.aio.AioRpcError as exc:
                raise upstream_error(exc) from None
            finally:
                rpc.cancel()

        return ReplyStream(tuple(initial or ()), messages())

    async def duplex(
        self,
        address: str,
        call: Call,
        requests: AsyncIterator[bytes],
        timeout: float | None,
        security: UpstreamTls | None = None,
    ) -> DuplexReply:
        """gRPC passthrough on the same channels: every call is a bidi call on
        bytes (unary and one-sided streams are the same on the wire). The
        writer reads the next request only once the previous one is written,
        which carries the backend's flow control back to the client."""
        channel = await self.channel(address, security, call.max_reply_bytes)
        rpc: Any = channel.stream_stream(call.path)(timeout=timeout, metadata=call.metadata)
        writer = asyncio.ensure_future(_write_all(rpc, requests))
        try:
            initial = await rpc.initial_metadata()
        except grpc.aio.AioRpcError:
            initial = ()  # the call failed before headers: status() says how
        except BaseException:
            writer.cancel()
            rpc.cancel()
            raise

        async def messages() -> AsyncIterator[bytes]:
            try:
                async for message in rpc:
                    yield message
            except grpc.aio.AioRpcError:
                pass  # the status is read by status()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                # grpc's way of ending a call cancelled on this side (the
                # request stream failed): status() says CANCELLED.
            finally:
                # The client left mid-stream: the backend sees CANCELLED.
                writer.cancel()
                rpc.cancel()

        async def status() -> CallStatus:
            code = (await rpc.code()).value[0]
            message = await rpc.details() or ""
            trailing = tuple(await rpc.trailing_metadata() or ())
            if code == Code.UNAVAILABLE:
                return CallStatus(code, message, trailing, transport_cause(message))
            return CallStatus(code, message, trailing)

        return DuplexReply(tuple(initial or ()), messages(), status)

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        self._unary.clear()
        for channel in channels.values():
            await channel.close()
        if self._owns_tls:
            await self._tls.close()


async def _write_all(rpc: Any, requests: AsyncIterator[bytes]) -> None:
    """Write the request stream, each message once the previous one is sent
    (grpc's flow control), then half-close."""
    try:
        async for message in requests:
            if rpc.done():
                return
            await rpc.write(message)
        if not rpc.done():
            await rpc.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return  # the call has ended; its status says how
    except Exception:
        # The request stream failed (too large, malformed, the client left):
        # end the call; the route kind reports why.
        rpc.cancel()


async def _reply(call: Any) -> Reply:
    """The single reply of a call, with its metadata, or the translated error."""
    try:
        body = await call
        initial = await call.initial_metadata()
        trailing = await call.trailing_metadata()
    except grpc.aio.AioRpcError as exc:
        raise upstream_error(exc) from None
    return Reply(body, tuple(initial or ()), tuple(trailing or ()))


# grpc core's wording when it, not the backend, fails a call: these name
# addresses and the network's state, and stay in the log (gateway/errors.py).
_TRANSPORT_FAILURE = re.compile(
    r"ipv4:|ipv6:|unix:|failed to connect|connection refused|connection reset|socket closed"
    r"|dns resolution|goaway|broken pipe|keepalive|handshake|subchannel|no healthy upstream",
    re.IGNORECASE,
)


def _is_local(message: str) -> bool:
    # grpc words it "[Stream removed (CLIENT: ]Received message larger than max (n vs. m)".
    return _LOCAL_SIZE_ERROR in message


def upstream_error(exc: grpc.aio.AioRpcError) -> GatewayError:
    """Translate a grpc.aio failure into the gateway's error tree."""
    code = Code(exc.code().value[0])
    trailing: Metadata = tuple(exc.trailing_metadata() or ())
    initial: Metadata = tuple(exc.initial_metadata() or ())
    message = exc.details() or ""
    if code in (Code.RESOURCE_EXHAUSTED, Code.INTERNAL) and _is_local(message):
        # grpc's own size or framing check on the reply: the backend sent
        # something this route refuses, which retrying will not change.
        return BadUpstreamResponse(f"backend reply refused: {message}")
    details = status_details(trailing)
    headers = response_headers(initial, trailing)
    if code == Code.UNAVAILABLE:
        error = UpstreamUnavailable(
            message or "upstream unavailable",
            details=details,
            headers=headers,
            cause=transport_cause(message),
        )
        if message and not _TRANSPORT_FAILURE.search(message):
            # The backend's own UNAVAILABLE status: its message is for the client.
            error.public_message = None
        return error
    return UpstreamStatus(message, grpc_code=code, details=details, headers=headers)


# gRPC core's words for what happened to the transport (status details).
_CAUSES = (
    ("failed to connect", CONNECT_FAILURE),
    ("refused_stream", REFUSED_STREAM),
    ("stream refused", REFUSED_STREAM),
    ("socket closed", RESET),
    ("connection reset", RESET),
    ("broken pipe", RESET),
    ("goaway", RESET),
    ("stream removed", RESET),
    ("rst_stream", RESET),
    ("connection closed", RESET),
)


def transport_cause(message: str) -> str | None:
    """connect_failure, refused_stream or reset, when the status came from the
    transport rather than from the backend's own handler (None)."""
    lowered = message.lower()
    for words, cause in _CAUSES:
        if words in lowered:
            return cause
    return None
