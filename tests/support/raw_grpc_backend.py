"""A grpc.aio backend on raw bytes for passthrough tests: every streaming kind,
metadata and trailers echoed back (binary ones included), failures with
status details, and a record of what each call saw (deadline, cancellation).

    backend = RawBackend()
    port = await backend.start()
    ...
    await backend.stop()

Methods of ``meshgate.test.v1.Raw`` (messages are opaque bytes):

* ``Unary``: replies with the request; request metadata ``x-echo-*`` comes back
  as initial metadata and as trailers (``-bin`` values byte for byte), plus
  ``x-trailer-bin`` = bytes 0..255.
* ``ClientStream``: replies with the requests joined by ``|``.
* ``ServerStream``: the request repeated ``int(request)`` times (``b"3"`` → 3 replies).
* ``Bidi``: each request echoed as it arrives.
* ``Fail``: aborts with ``int(request)`` as the code, and grpc-status-details-bin.
* ``Hang``: waits until cancelled or past its deadline.
* ``Flood``: ``int(request)`` replies of FLOOD_BYTES, as fast as the client takes them.
* ``SlowSink``: waits ``x-hold`` seconds (metadata) before reading the requests,
  then replies with their count.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from google.rpc import status_pb2

SERVICE = "meshgate.test.v1.Raw"
TRAILER_BYTES = bytes(range(256))
FLOOD_BYTES = 4096
DETAILS = status_pb2.Status(code=9, message="details here").SerializeToString()


@dataclass
class Seen:
    method: str
    metadata: dict[str, str | bytes]
    time_remaining: float | None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)


class RawBackend:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._server: grpc.aio.Server | None = None

    def _record(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Seen:
        metadata = {k: v for k, v in context.invocation_metadata() or ()}
        seen = Seen(method, metadata, context.time_remaining())
        self.seen.append(seen)
        seen.started.set()
        return seen

    async def _echo_metadata(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        echoed = tuple(
            (k, v) for k, v in (context.invocation_metadata() or ()) if k.startswith("x-echo-")
        )
        await context.send_initial_metadata(echoed)
        context.set_trailing_metadata((*echoed, ("x-trailer-bin", TRAILER_BYTES)))

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        self._record("Unary", context)
        await self._echo_metadata(context)
        return request

    async def client_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        self._record("ClientStream", context)
        return b"|".join([r async for r in requests])

    async def server_stream(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        self._record("ServerStream", context)
        await self._echo_metadata(context)
        for i in range(int(request)):
            yield f"reply {i}".encode()

    async def bidi(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        self._record("Bidi", context)
        async for request in requests:
            yield b"echo " + request

    async def fail(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        self._record("Fail", context)
        context.set_trailing_metadata((("grpc-status-details-bin", DETAILS),))
        await context.abort(grpc.StatusCode(_status(int(request))), "failed as asked: 100% ✓")
        raise AssertionError("abort returns no value")

    async def hang(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        seen = self._record("Hang", context)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            # grpc cancels the handler when the client resets the stream.
            seen.cancelled.set()
            raise
        return request

    async def flood(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        self._record("Flood", context)
        chunk = b"f" * FLOOD_BYTES
        for _ in range(int(request)):
            yield chunk
        self.flooded()

    def flooded(self) -> None:
        """Every Flood reply was taken by the transport."""

    async def slow_sink(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        self._record("SlowSink", context)
        hold = dict(context.invocation_metadata() or ()).get("x-hold", "0")
        await asyncio.sleep(float(hold))
        count = 0
        async for _ in requests:
            count += 1
        return str(count).encode()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
                "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
                "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
                "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
                "Hang": grpc.unary_unary_rpc_method_handler(self.hang),
                "Flood": grpc.unary_stream_rpc_method_handler(self.flood),
                "SlowSink": grpc.stream_unary_rpc_method_handler(self.slow_sink),
            },
        )

    async def start(self, port: int = 0) -> int:
        server = self._server = grpc.aio.server()
        server.add_generic_rpc_handlers((self.handler(),))
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        return bound

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)

    async def seen_call(self, method: str, timeout: float = 30.0) -> Seen:
        async with asyncio.timeout(timeout):
            while True:
                for seen in self.seen:
                    if seen.method == method:
                        return seen
                await asyncio.sleep(0.01)


def _status(code: int) -> tuple[int, str]:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.value  # type: ignore[no-any-return]
    raise ValueError(code)


class PrintingBackend(RawBackend):
    """Run as a process: each call and each cancellation is a line on stdout
    (``CALL Unary remaining=4.99``, ``CANCELLED Hang``) for the test to read."""

    def _record(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Seen:
        seen = super()._record(method, context)
        print(f"CALL {method} remaining={seen.time_remaining}", flush=True)
        return seen

    def flooded(self) -> None:
        print("FLOODED", flush=True)

    async def hang(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        try:
            return await super().hang(request, context)
        except asyncio.CancelledError:
            print("CANCELLED Hang", flush=True)
            raise


async def _main(port: int) -> None:
    backend = PrintingBackend()
    bound = await backend.start(port)
    print(f"READY {bound}", flush=True)
    assert backend._server is not None
    await backend._server.wait_for_termination()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(_main(parser.parse_args().port))
