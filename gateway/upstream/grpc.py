"""gRPC upstream over grpc.aio, on raw bytes.

One channel per endpoint address per worker, created on first use and kept
for the life of the worker: HTTP/2 multiplexes every request over it (the
per-request dialing of some gateways costs a handshake per call). The
channel reconnects by itself when the backend comes back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from gateway.errors import (
    BadUpstreamResponse,
    Code,
    GatewayError,
    UpstreamStatus,
    UpstreamUnavailable,
)
from gateway.upstream.call import Call, Metadata, Reply, ReplyStream
from gateway.upstream.metadata import response_headers
from gateway.upstream.status import status_details

DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024
# What grpc says when a reply exceeds the channel's receive limit, a local
# check, not the backend's RESOURCE_EXHAUSTED.
_LOCAL_SIZE_ERROR = "Received message larger than max"
_CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    # The gateway does its own retries; grpc's transparent retries would
    # multiply them.
    ("grpc.enable_retries", 0),
)


class GrpcUpstream:
    def __init__(self) -> None:
        # One channel per address and reply limit: grpc enforces
        # max_receive_message_length per channel, while the message arrives.
        self._channels: dict[tuple[str, int], grpc.aio.Channel] = {}
        self._unary: dict[tuple[str, int, str], grpc.aio.UnaryUnaryMultiCallable] = {}

    def channel(self, address: str, max_reply_bytes: int | None = None) -> grpc.aio.Channel:
        limit = max_reply_bytes or DEFAULT_MAX_REPLY_BYTES
        key = (address, limit)
        channel = self._channels.get(key)
        if channel is None:
            options = (*_CHANNEL_OPTIONS, ("grpc.max_receive_message_length", limit))
            channel = grpc.aio.insecure_channel(address, options=options)
            self._channels[key] = channel
        return channel

    async def unary(self, address: str, call: Call, timeout: float | None) -> Reply:
        metadata = call.metadata
        limit = call.max_reply_bytes or DEFAULT_MAX_REPLY_BYTES
        if call.client_streaming:
            return await _reply(
                self.channel(address, limit).stream_unary(call.path)(
                    iter(call.messages), timeout=timeout, metadata=metadata
                )
            )
        key = (address, limit, call.path)
        call_factory = self._unary.get(key)
        if call_factory is None:
            call_factory = self.channel(address, limit).unary_unary(call.path)
            self._unary[key] = call_factory
        return await _reply(call_factory(call.messages[0], timeout=timeout, metadata=metadata))

    async def stream(self, address: str, call: Call, timeout: float | None) -> ReplyStream:
        channel = self.channel(address, call.max_reply_bytes)
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


async def _reply(call: Any) -> Reply:
    """The single reply of a call, with its metadata, or the translated error."""
    try:
        body = await call
        initial = await call.initial_metadata()
        trailing = await call.trailing_metadata()
    except grpc.aio.AioRpcError as exc:
        raise upstream_error(exc) from None
    return Reply(body, tuple(initial or ()), tuple(trailing or ()))


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
        return UpstreamUnavailable(
            message or "upstream unavailable", details=details, headers=headers
        )
    return UpstreamStatus(message, grpc_code=code, details=details, headers=headers)
