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

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from gateway.errors import Code, GatewayError, UpstreamStatus, UpstreamUnavailable
from gateway.tls.transport import TlsTransports
from gateway.upstream.call import Call, Metadata, Reply, ReplyStream
from gateway.upstream.metadata import response_headers
from gateway.upstream.status import status_details
from mesh.security import UpstreamTls

_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    # The gateway does its own retries; grpc's transparent retries would
    # multiply them.
    ("grpc.enable_retries", 0),
)
ALPN = ("h2",)
ChannelKey = tuple[str, UpstreamTls | None]


class GrpcUpstream:
    def __init__(self, tls: TlsTransports | None = None) -> None:
        self._owns_tls = tls is None
        self._tls = tls or TlsTransports()
        self._channels: dict[ChannelKey, grpc.aio.Channel] = {}
        self._unary: dict[tuple[ChannelKey, str], grpc.aio.UnaryUnaryMultiCallable] = {}

    async def channel(self, address: str, security: UpstreamTls | None = None) -> grpc.aio.Channel:
        key = (address, security)
        channel = self._channels.get(key)
        if channel is None:
            if security is None:
                channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
            else:
                path = await self._tls.socket_path(address, security, ALPN)
                channel = self._channels.get(key)  # another call may have made it meanwhile
                if channel is None:
                    # :authority stays the endpoint's (or the SNI name), not the socket's.
                    authority = ("grpc.default_authority", security.sni or address)
                    channel = grpc.aio.insecure_channel(
                        f"unix:{path}", options=(*_CHANNEL_OPTIONS, authority)
                    )
            self._channels[key] = channel
        return channel

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
        if call.client_streaming:
            channel = await self.channel(address, security)
            return await _reply(
                channel.stream_unary(call.path)(
                    iter(call.messages), timeout=timeout, metadata=metadata
                )
            )
        key = ((address, security), call.path)
        call_factory = self._unary.get(key)
        if call_factory is None:
            call_factory = (await self.channel(address, security)).unary_unary(call.path)
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
        channel = await self.channel(address, security)
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

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        self._unary.clear()
        for channel in channels.values():
            await channel.close()
        if self._owns_tls:
            await self._tls.close()


async def _reply(call: Any) -> Reply:
    """The single reply of a call, with its metadata, or the translated error."""
    try:
        body = await call
        initial = await call.initial_metadata()
        trailing = await call.trailing_metadata()
    except grpc.aio.AioRpcError as exc:
        raise upstream_error(exc) from None
    return Reply(body, tuple(initial or ()), tuple(trailing or ()))


def upstream_error(exc: grpc.aio.AioRpcError) -> GatewayError:
    """Translate a grpc.aio failure into the gateway's error tree."""
    code = Code(exc.code().value[0])
    trailing: Metadata = tuple(exc.trailing_metadata() or ())
    initial: Metadata = tuple(exc.initial_metadata() or ())
    message = exc.details() or ""
    details = status_details(trailing)
    headers = response_headers(initial, trailing)
    if code == Code.UNAVAILABLE:
        return UpstreamUnavailable(
            message or "upstream unavailable", details=details, headers=headers
        )
    return UpstreamStatus(message, grpc_code=code, details=details, headers=headers)
