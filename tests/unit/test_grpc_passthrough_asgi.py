"""gRPC passthrough through the whole app, driven as an HTTP/2 server drives it:
ASGI ``http`` scopes with ``http_version: "2"`` and the trailers extension,
the request body streamed through ``receive()``, the answer read from
``send()`` (headers, messages, trailers). The backend is a real grpc.aio
server on loopback (tests/support/raw_grpc_backend.py)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.app import GatewayApp
from gateway.config import load_config_text
from gateway.grpc_front.frames import FrameDecoder, encode_frame
from gateway.router import Upstreams
from gateway.snapshot import DescriptorSources, compile_snapshot
from tests.support.raw_grpc_backend import DETAILS, SERVICE, TRAILER_BYTES, RawBackend

pytestmark = pytest.mark.anyio
PORT = 18443
WAIT = 30.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config(backend_port: int, extra_route: str = "", extra_cluster: str = "") -> str:
    return f"""
listeners:
  - name: rpc
    address: 127.0.0.1:{PORT}
    protocol: grpc
    routes:
{extra_route}
      - match: {{prefix: /{SERVICE}/}}
        cluster: raw
        timeout: 20s
clusters:
  - name: raw
    endpoints: [{{address: "127.0.0.1:{backend_port}"}}]
{extra_cluster}"""


@dataclass
class Answer:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    messages: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    trailers_announced: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    first_message: asyncio.Event = field(default_factory=asyncio.Event)


class H2Call:
    """One HTTP/2 request stream as an ASGI server presents it to the app."""

    def __init__(self, app: GatewayApp, method: str, headers: dict[str, str]) -> None:
        self.app = app
        self.path = f"/{SERVICE}/{method}"
        self.headers = {"content-type": "application/grpc", "te": "trailers", **headers}
        self.incoming: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self.answer = Answer()
        self._frames = FrameDecoder(1 << 24)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "2",
            "method": "POST",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "headers": [(k.encode(), v.encode()) for k, v in self.headers.items()],
            "server": ("127.0.0.1", PORT),
            "client": ("127.0.0.1", 40000),
            "extensions": {"http.response.trailers": {}},
        }
        self.task = asyncio.ensure_future(self.app(scope, self.incoming.get, self._send))

    def write(self, message: bytes, more: bool = True) -> None:
        self.incoming.put_nowait(
            {"type": "http.request", "body": encode_frame(message), "more_body": more}
        )

    def end(self) -> None:
        self.incoming.put_nowait({"type": "http.request", "body": b"", "more_body": False})

    def reset(self) -> None:
        """The client's RST_STREAM: the server says disconnect and cancels the app."""
        self.incoming.put_nowait({"type": "http.disconnect"})
        assert self.task is not None
        self.task.cancel()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        answer = self.answer
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            answer.trailers_announced = bool(message.get("trailers"))
        elif message["type"] == "http.response.body":
            for frame in self._frames.feed(message.get("body", b"")):
                answer.messages.append(frame.payload)
                answer.first_message.set()
            if not message.get("more_body") and not answer.trailers_announced:
                answer.done.set()
        elif message["type"] == "http.response.trailers":
            answer.trailers = {k.decode(): v.decode() for k, v in message["headers"]}
            answer.done.set()

    async def finished(self) -> Answer:
        async with asyncio.timeout(WAIT):
            await self.answer.done.wait()
        return self.answer


@pytest.fixture
async def backend() -> AsyncIterator[tuple[RawBackend, int]]:
    server = RawBackend()
    port = await server.start()
    yield server, port
    await server.stop()


def make_app(backend_port: int, extra_route: str = "", extra_cluster: str = "") -> GatewayApp:
    text = config(backend_port, extra_route, extra_cluster)
    loaded = load_config_text(text, base_dir=Path.cwd())
    return GatewayApp(compile_snapshot(loaded, DescriptorSources()), upstreams=Upstreams())


async def call(
    app: GatewayApp, method: str, messages: list[bytes], headers: dict[str, str] | None = None
) -> Answer:
    h2 = H2Call(app, method, headers or {})
    h2.start()
    for message in messages:
        h2.write(message)
    h2.end()
    return await h2.finished()


async def test_unary_metadata_and_trailers_round_trip_byte_for_byte(
    backend: tuple[RawBackend, int],
) -> None:
    server, port = backend
    app = make_app(port)
    binary = bytes(range(255, -1, -1))
    answer = await call(
        app,
        "Unary",
        [b"\x00hello\xff"],
        {"x-echo-text": "plain value", "x-echo-blob-bin": base64.b64encode(binary).decode()},
    )
    assert answer.status == 200 and answer.trailers_announced
    assert answer.headers["content-type"] == "application/grpc"
    assert answer.messages == [b"\x00hello\xff"]
    assert answer.headers["x-echo-text"] == "plain value"
    assert base64.b64decode(answer.headers["x-echo-blob-bin"]) == binary
    assert answer.trailers["grpc-status"] == "0"
    assert base64.b64decode(answer.trailers["x-trailer-bin"]) == TRAILER_BYTES
    assert base64.b64decode(answer.trailers["x-echo-blob-bin"]) == binary
    seen = await server.seen_call("Unary")
    assert seen.metadata["x-echo-blob-bin"] == binary
    assert "te" not in seen.metadata and "content-type" not in seen.metadata
    await app.aclose()


async def test_every_streaming_kind(backend: tuple[RawBackend, int]) -> None:
    _, port = backend
    app = make_app(port)
    joined = await call(app, "ClientStream", [b"a", b"b", b"c"])
    assert joined.messages == [b"a|b|c"] and joined.trailers["grpc-status"] == "0"
    streamed = await call(app, "ServerStream", [b"3"])
    assert streamed.messages == [b"reply 0", b"reply 1", b"reply 2"]
    # Bidi, full duplex: each reply arrives before the next request is written.
    h2 = H2Call(app, "Bidi", {})
    h2.start()
    for i in range(3):
        h2.answer.first_message.clear()
        h2.write(f"m{i}".encode())
        async with asyncio.timeout(WAIT):
            await h2.answer.first_message.wait()
        assert h2.answer.messages[-1] == f"echo m{i}".encode()
    h2.end()
    answer = await h2.finished()
    assert answer.messages == [b"echo m0", b"echo m1", b"echo m2"]
    assert answer.trailers["grpc-status"] == "0"
    await app.aclose()


async def test_a_backend_status_keeps_its_message_and_details(
    backend: tuple[RawBackend, int],
) -> None:
    _, port = backend
    app = make_app(port)
    answer = await call(app, "Fail", [b"9"])
    assert answer.messages == []
    assert answer.trailers["grpc-status"] == "9"
    assert answer.trailers["grpc-message"] == "failed as asked: 100%25 %E2%9C%93"
    assert base64.b64decode(answer.trailers["grpc-status-details-bin"]) == DETAILS
    await app.aclose()


async def test_the_deadline_reaches_the_backend_shortened_by_the_route(
    backend: tuple[RawBackend, int],
) -> None:
    server, port = backend
    app = make_app(port)
    await call(app, "Unary", [b"x"], {"grpc-timeout": "5S"})
    await call(app, "ServerStream", [b"1"], {"grpc-timeout": "100H"})
    short, long_ = server.seen[0].time_remaining, server.seen[1].time_remaining
    # grpc rounds the deadline it sends up a little.
    assert short is not None and 0 < short <= 5.5
    assert long_ is not None and 5.5 < long_ <= 21  # the route's 20s wins over 100 hours
    hung = await call(app, "Hang", [b"x"], {"grpc-timeout": "200m"})
    assert hung.trailers["grpc-status"] == "4"  # DEADLINE_EXCEEDED
    await app.aclose()


async def test_a_client_reset_cancels_the_backend_call(backend: tuple[RawBackend, int]) -> None:
    server, port = backend
    app = make_app(port)
    h2 = H2Call(app, "Hang", {})
    h2.start()
    h2.write(b"x", more=False)
    seen = await server.seen_call("Hang")
    h2.reset()
    async with asyncio.timeout(WAIT):
        await seen.cancelled.wait()
    await app.aclose()


async def test_gateway_errors_are_grpc_statuses_not_error_pages(
    backend: tuple[RawBackend, int],
) -> None:
    _, port = backend
    app = make_app(port)
    h2 = H2Call(app, "Unary", {})
    h2.path = "/other.v1.Service/Method"  # no route takes it
    h2.start()
    h2.write(b"x", more=False)
    answer = await h2.finished()
    assert answer.status == 200 and answer.headers["content-type"] == "application/grpc"
    assert answer.headers["grpc-status"] == "12"  # UNIMPLEMENTED, trailers-only
    assert "no route" in answer.headers["grpc-message"]
    await app.aclose()


async def test_no_healthy_upstream_and_oversize_messages_are_statuses(
    backend: tuple[RawBackend, int],
) -> None:
    _, port = backend
    app = make_app(port)
    await backend[0].stop()
    down = await call(app, "Unary", [b"x"])
    assert down.trailers.get("grpc-status", down.headers.get("grpc-status")) == "14"
    await app.aclose()
    limited = make_app(
        port,
        f"""      - match: {{path: /{SERVICE}/Unary}}
        cluster: raw
        max_request_bytes: 4
""",
    )
    too_big = await call(limited, "Unary", [b"0123456789"])
    assert too_big.trailers["grpc-status"] == "8"  # RESOURCE_EXHAUSTED
    await limited.aclose()


async def test_a_reply_over_max_response_bytes_is_resource_exhausted(
    backend: tuple[RawBackend, int],
) -> None:
    _, port = backend
    app = make_app(
        port,
        f"""      - match: {{path: /{SERVICE}/Unary}}
        cluster: raw
        max_response_bytes: 8
""",
    )
    answer = await call(app, "Unary", [b"0123456789abcdef"])
    assert answer.messages == [] and answer.trailers["grpc-status"] == "8"
    await app.aclose()


async def test_streams_are_retried_before_their_first_reply(
    backend: tuple[RawBackend, int],
) -> None:
    server, port = backend
    dead = 1  # nothing listens on port 1
    app = make_app(
        port,
        f"""      - match: {{prefix: /{SERVICE}/, headers: [{{name: x-route, exact: retry}}]}}
        cluster: half-dead
        retry: {{attempts: 3, on: [unavailable]}}
""",
        f"""  - name: half-dead
    endpoints: [{{address: "127.0.0.1:{dead}"}}, {{address: "127.0.0.1:{port}"}}]
""",
    )
    for _ in range(4):  # round robin starts on the dead endpoint every other call
        streamed = await call(app, "ServerStream", [b"2"], {"x-route": "retry"})
        assert streamed.messages == [b"reply 0", b"reply 1"]
        joined = await call(app, "ClientStream", [b"a", b"b"], {"x-route": "retry"})
        assert joined.messages == [b"a|b"]  # the request messages replayed
    assert sum(1 for seen in server.seen if seen.method == "ClientStream") == 4
    await app.aclose()
