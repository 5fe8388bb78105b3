"""gRPC upstream over grpc.aio, on raw bytes.

One channel per endpoint address per worker, created on first use and kept
for the life of the worker: HTTP/2 multiplexes every request over it (the
per-request dialing of some gateways costs a handshake per call). The
channel reconnects by itself when the backend comes back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from gateway.errors import GatewayError, UpstreamStatus, UpstreamUnavailable
from gateway.upstream.metadata import Metadata
from gateway.upstream.status import status_details

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


@dataclass(frozen=True, slots=True)
class UnaryReply:
    body: bytes
    initial_metadata: Metadata
    trailing_metadata: Metadata


class GrpcUpstream:
    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._unary: dict[tuple[str, str], grpc.aio.UnaryUnaryMultiCallable] = {}

    def channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
            self._channels[address] = channel
        return channel

    async def unary(self, address: str, method: str, request: bytes, metadata: Metadata,
                    timeout: float | None) -> UnaryReply:
        key = (address, method)
        call_factory = self._unary.get(key)
        if call_factory is None:
            call_factory = self.channel(address).unary_unary(method)
            self._unary[key] = call_factory
        return await _reply(call_factory(request, timeout=timeout, metadata=metadata))

    async def client_stream(self, address: str, method: str, requests: Sequence[bytes],
                            metadata: Metadata, timeout: float | None) -> UnaryReply:
        return await _reply(self.channel(address).stream_unary(method)(
            iter(requests), timeout=timeout, metadata=metadata))

    async def server_stream(self, address: str, method: str, requests: Sequence[bytes],
                            metadata: Metadata, timeout: float | None, *,
                            client_streaming: bool = False
                            ) -> tuple[Metadata, AsyncIterator[bytes]]:
        """Start a stream; the iterator yields raw messages as they arrive."""
        channel = self.channel(address)
        call: Any
        if client_streaming:
            call = channel.stream_stream(method)(iter(requests), timeout=timeout,
                                                 metadata=metadata)
        else:
            call = channel.unary_stream(method)(requests[0], timeout=timeout,
                                                metadata=metadata)
        try:
            initial = await call.initial_metadata()
        except grpc.aio.AioRpcError as exc:
            raise upstream_error(exc) from None

        async def messages() -> AsyncIterator[bytes]:
            try:
                async for message in call:
                    yield message
            except grpc.aio.AioRpcError as exc:
                raise upstream_error(exc) from None
            finally:
                call.cancel()

        return tuple(initial or ()), messages()

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        self._unary.clear()
        for channel in channels.values():
            await channel.close()


async def _reply(call: Any) -> UnaryReply:
    """The single reply of a call, with its metadata, or the translated error."""
    try:
        body = await call
        initial = await call.initial_metadata()
        trailing = await call.trailing_metadata()
    except grpc.aio.AioRpcError as exc:
        raise upstream_error(exc) from None
    return UnaryReply(body, tuple(initial or ()), tuple(trailing or ()))


def upstream_error(exc: grpc.aio.AioRpcError) -> GatewayError:
    """Translate a grpc.aio failure into the gateway's error tree."""
    code = exc.code().value[0]
    trailing = tuple(exc.trailing_metadata() or ())
    initial = tuple(exc.initial_metadata() or ())
    message = exc.details() or ""
    details = status_details(trailing)
    from gateway.upstream.metadata import response_headers

    headers = response_headers(initial, trailing)
    if code == 14:
        return UpstreamUnavailable(message or "upstream unavailable", details=details,
                                   headers=headers)
    return UpstreamStatus(message, grpc_code=code, details=details, headers=headers)
