"""The ASGI contract of the HTTP/2 listener, over a real socket: a tiny ASGI
app speaking gRPC's framing by hand, served by the listener's protocol
(gateway.http2) in this process, read by grpcio and by a raw h2 client.

What an ASGI app may rely on (the gRPC route kinds build on it):
``http.response.start`` with ``trailers: True``, body messages, then
``http.response.trailers``; a Trailers-Only answer (start without trailers
and an empty final body) is one HEADERS frame with END_STREAM; a client's
cancellation reaches the app as an interruption with the client_gone reason.
"""

from __future__ import annotations

import asyncio
import base64
import queue
import struct
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import uvicorn

from gateway.config import ListenerLimitsConfig
from gateway.http2.select import serving_protocol
from gateway.interrupts import CLIENT_GONE, SCOPE_KEY
from gateway.listeners import bind
from tests.support.h2_client import H2Client
from tests.support.net import free_port

pytestmark = pytest.mark.integration

GRPC = [("content-type", "application/grpc"), ("te", "trailers")]
BINARY = b"\x00\xffbinary\x01"


def frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def unframe(body: bytes) -> list[bytes]:
    out = []
    while body:
        (size,) = struct.unpack(">I", body[1:5])
        out.append(body[5 : 5 + size])
        body = body[5 + size :]
    return out


class GrpcByHand:
    """Unary echo, a server stream, a Trailers-Only error, and a call that
    waits to be cancelled; remembers how each cancelled call was interrupted."""

    def __init__(self) -> None:
        self.interrupted: list[Any] = []
        self.waiting = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert scope["http_version"] == "2"
        assert "http.response.trailers" in scope["extensions"]
        method = scope["path"].rsplit("/", 1)[-1]
        if method in ("Count", "Duplex"):
            await self._streaming(method, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        head = [(b"content-type", b"application/grpc")]
        if method == "Crash":
            raise RuntimeError("the app failed before answering")
        if method == "Fail":
            status = [(b"grpc-status", b"5"), (b"grpc-message", b"no such thing")]
            await send({"type": "http.response.start", "status": 200, "headers": head + status})
            await send({"type": "http.response.body", "body": b""})
            return
        if method == "Wait":
            self.waiting.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.interrupted.append(scope.get(SCOPE_KEY))
                raise
        await send(
            {"type": "http.response.start", "status": 200, "headers": head, "trailers": True}
        )
        (request,) = unframe(body)
        count = 3 if method == "Stream" else 1
        for i in range(count):
            reply = request + (b"#%d" % i if count > 1 else b"")
            await send({"type": "http.response.body", "body": frame(reply), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        trailers = [
            (b"grpc-status", b"0"),
            (b"x-trailer", b"yes"),
            (b"x-raw-bin", base64.b64encode(BINARY).rstrip(b"=")),
        ]
        await send({"type": "http.response.trailers", "headers": trailers, "more_trailers": False})

    async def _streaming(self, method: str, receive: Any, send: Any) -> None:
        """Count: the sizes of every request message, once the client is done
        (read slowly: a pause per message). Duplex: each message echoed as it
        arrives, before the next is read."""
        head = [(b"content-type", b"application/grpc")]
        start = {"type": "http.response.start", "status": 200, "headers": head, "trailers": True}
        if method == "Duplex":
            await send(start)
        buffer = b""
        total = count = 0
        more = True
        while more:
            message = await receive()
            buffer += message.get("body", b"")
            more = message.get("more_body", False)
            while len(buffer) >= 5 and len(buffer) >= 5 + int.from_bytes(buffer[1:5], "big"):
                size = int.from_bytes(buffer[1:5], "big")
                payload, buffer = buffer[5 : 5 + size], buffer[5 + size :]
                count += 1
                total += size
                if method == "Duplex":
                    await send(
                        {"type": "http.response.body", "body": frame(payload), "more_body": True}
                    )
                else:
                    await asyncio.sleep(0.001)
        if method == "Count":
            await send(start)
            await send(
                {
                    "type": "http.response.body",
                    "body": frame(b"%d %d" % (count, total)),
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")]})


class ServedInThread:
    """The listener's protocol selection (HTTP/1.1 or HTTP/2) under uvicorn,
    on its own event loop in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.sock = bind(f"127.0.0.1:{self.port}", reuse_port=False)
        config = uvicorn.Config(
            app,
            http=serving_protocol(lambda port: ListenerLimitsConfig()),
            lifespan="off",
            log_config=None,
            proxy_headers=False,
        )
        config.load()
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        await self.server.startup(sockets=[self.sock])
        self.ready.set()
        await self.server.main_loop()
        await self.server.shutdown(sockets=[self.sock])

    def __enter__(self) -> ServedInThread:
        self.thread.start()
        assert self.ready.wait(15)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def app() -> GrpcByHand:
    return GrpcByHand()


@pytest.fixture(scope="module")
def served(app: GrpcByHand) -> Iterator[ServedInThread]:
    with ServedInThread(app) as served:
        yield served


@pytest.fixture
def channel(served: ServedInThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        yield channel


def test_grpcio_reads_the_body_and_trailers(channel: grpc.Channel) -> None:
    call = channel.unary_unary("/test.ByHand/Unary")
    reply, outcome = call.with_call(b"hello", timeout=15)
    assert reply == b"hello"
    trailers = dict(outcome.trailing_metadata())
    assert trailers["x-trailer"] == "yes"
    assert trailers["x-raw-bin"] == BINARY
    assert outcome.code() == grpc.StatusCode.OK


def test_grpcio_reads_a_stream_then_trailers(channel: grpc.Channel) -> None:
    call = channel.unary_stream("/test.ByHand/Stream")
    assert list(call(b"s", timeout=15)) == [b"s#0", b"s#1", b"s#2"]


def test_grpcio_client_stream_past_every_window(channel: grpc.Channel) -> None:
    # 8 MiB through a stream window of 1 MiB and a connection window of
    # 4 MiB, read slowly: it arrives only if reading reopens the windows.
    chunk = b"c" * (64 * 1024)
    call = channel.stream_unary("/test.ByHand/Count")
    assert call(iter([chunk] * 128), timeout=60) == b"128 %d" % (128 * len(chunk))


def test_grpcio_full_duplex(channel: grpc.Channel) -> None:
    # Each reply is read before the next request is sent: the app must
    # answer a message while the request stream is still open.
    requests: queue.Queue[bytes | None] = queue.Queue()
    replies = channel.stream_stream("/test.ByHand/Duplex")(iter(requests.get, None), timeout=30)
    for i in range(20):
        requests.put(b"m%d" % i)
        assert next(replies) == b"m%d" % i
    requests.put(None)
    assert list(replies) == []


def test_grpcio_reads_a_trailers_only_error(channel: grpc.Channel) -> None:
    call = channel.unary_unary("/test.ByHand/Fail")
    with pytest.raises(grpc.RpcError) as failure:
        call(b"x", timeout=15)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert failure.value.details() == "no such thing"  # type: ignore[attr-defined]


def test_an_app_that_fails_unanswered_is_a_grpc_internal_status(channel: grpc.Channel) -> None:
    call = channel.unary_unary("/test.ByHand/Crash")
    with pytest.raises(grpc.RpcError) as failure:
        call(b"x", timeout=15)
    assert failure.value.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]


def test_a_grpcio_deadline_interrupts_the_app_as_client_gone(
    channel: grpc.Channel, app: GrpcByHand
) -> None:
    before = len(app.interrupted)
    app.waiting.clear()
    call = channel.unary_unary("/test.ByHand/Wait")
    with pytest.raises(grpc.RpcError) as failure:
        call(b"x", timeout=1.0)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    assert app.waiting.is_set()
    for _ in range(100):
        if len(app.interrupted) > before:
            break
        threading.Event().wait(0.05)
    assert app.interrupted[before:] == [CLIENT_GONE]


def test_frames_seen_by_an_h2_client(served: ServedInThread) -> None:
    with H2Client.connect(("127.0.0.1", served.port)) as client:
        ok = client.wait(client.request("POST", "/test.ByHand/Unary", GRPC, frame(b"hi")))
        assert (ok.status, ok.head_ended) == (200, False)
        assert unframe(bytes(ok.body)) == [b"hi"]
        assert ok.trailers[0] == (b"grpc-status", b"0")
        failed = client.wait(client.request("POST", "/test.ByHand/Fail", GRPC, frame(b"")))
        # Trailers-Only: the head carries the status and ends the stream.
        assert failed.head_ended
        assert dict(failed.headers)[b"grpc-status"] == b"5"
        assert (bytes(failed.body), failed.trailers) == (b"", [])
