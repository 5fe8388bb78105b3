"""The HTTP/2 protocol driven in memory: the server protocol on one side, a
sans-IO ``h2`` client connection on the other, bytes moved by hand.

Covers what the ASGI contract promises HTTP/2 apps (trailers, the
Trailers-Only form, streaming request bodies, http.disconnect on RST_STREAM
with the task interrupted), flow control both ways, the stream limit, the
header limits and the graceful GOAWAY; the same behaviours run over real
sockets against a real gateway in tests/integration/test_http2_listener.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import Frame, GoAwayFrame
from uvicorn.config import Config
from uvicorn.server import ServerState

from gateway.config import ListenerLimitsConfig
from gateway.http2.messages import percent_encode
from gateway.http2.protocol import STREAM_WINDOW, H2Protocol
from gateway.http2.select import serving_protocol
from gateway.interrupts import BODY_TIMEOUT, CLIENT_GONE, SCOPE_KEY

pytestmark = pytest.mark.anyio

PORT = 8443
LIMITS = ListenerLimitsConfig(
    max_request_header_bytes=2048,
    max_request_headers=10,
    max_url_bytes=512,
    max_concurrent_streams=3,
)
GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"gw"), (b":path", b"/x?a=1")]
POST = [(b":method", b"POST"), *GET[1:3], (b":path", b"/upload")]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class MemoryTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", PORT), "peername": ("127.0.0.1", 4000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        return data


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def uvicorn_config(app: App) -> Config:
    config = Config(app, lifespan="off", proxy_headers=False, log_config=None)  # type: ignore[arg-type]
    config.load()
    return config


class Pair:
    """The server protocol and an h2 client, connected in memory."""

    def __init__(
        self,
        app: App,
        limits: ListenerLimitsConfig = LIMITS,
        client_window: int | None = None,
    ) -> None:
        self.state = ServerState()
        self.transport = MemoryTransport()
        self.server = H2Protocol(
            uvicorn_config(app),
            self.state,
            {},
            limits,
            Counter(),
            1000,
            asyncio.get_running_loop(),
        )
        self.server.connection_made(self.transport)  # type: ignore[arg-type]
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        if client_window is not None:
            self.client.local_settings = h2.settings.Settings(
                client=True,
                initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: client_window},
            )
        self.client.initiate_connection()
        self.events: list[h2.events.Event] = []

    async def pump(self, rounds: int = 20) -> list[h2.events.Event]:
        """Move bytes both ways until both sides are quiet; the client's new events."""
        new: list[h2.events.Event] = []
        for _ in range(rounds):
            await asyncio.sleep(0)
            moved = False
            outgoing = self.client.data_to_send()
            if outgoing:
                self.server.data_received(outgoing)
                moved = True
            await asyncio.sleep(0)
            incoming = self.transport.take()
            if incoming:
                new += self.client.receive_data(incoming)
                moved = True
            if not moved:
                await asyncio.sleep(0)
                if not self.transport.written and not self.client.data_to_send():
                    break
        self.events += new
        return new

    def request(self, headers: list[tuple[bytes, bytes]], body: bytes | None = None) -> int:
        stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, headers, end_stream=body is None)
        if body is not None:
            self.client.send_data(stream_id, body, end_stream=True)
        return stream_id

    def of(self, stream_id: int, kind: type[h2.events.Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and e.stream_id == stream_id]  # type: ignore[attr-defined]

    def body(self, stream_id: int) -> bytes:
        return b"".join(e.data for e in self.of(stream_id, h2.events.DataReceived))

    def status(self, stream_id: int) -> int:
        (response,) = self.of(stream_id, h2.events.ResponseReceived)
        return int(dict(response.headers)[b":status"])


async def read_body(receive: Receive) -> bytes:
    body = b""
    more = True
    while more:
        message = await receive()
        assert message["type"] == "http.request"
        body += message["body"]
        more = message["more_body"]
    return body


async def with_trailers(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/grpc")],
            "trailers": True,
        }
    )
    await send({"type": "http.response.body", "body": b"\x00\x00\x00\x00\x00", "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    await send(
        {
            "type": "http.response.trailers",
            "headers": [(b"grpc-status", b"0"), (b"grpc-message", b"fine")],
            "more_trailers": False,
        }
    )


async def trailers_only(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/grpc"), (b"grpc-status", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_body(receive)
    headers = [(b"content-type", b"text/plain"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": scope["http_version"].encode() + b" " + body})


class Hanging:
    """Answers nothing until released; records how each request ended."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.cancelled: list[Scope] = []
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(scope)
            raise
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})


# -- the ASGI contract -----------------------------------------------------------


async def test_trailers_follow_the_body() -> None:
    pair = Pair(with_trailers)
    stream = pair.request(POST, b"ping")
    await pair.pump()
    (response,) = pair.of(stream, h2.events.ResponseReceived)
    assert response.stream_ended is None
    assert dict(response.headers)[b"content-type"] == b"application/grpc"
    assert pair.body(stream) == b"\x00\x00\x00\x00\x00"
    (trailers,) = pair.of(stream, h2.events.TrailersReceived)
    assert trailers.headers == [(b"grpc-status", b"0"), (b"grpc-message", b"fine")]
    assert trailers.stream_ended is not None


async def test_an_empty_final_body_makes_a_trailers_only_response() -> None:
    pair = Pair(trailers_only)
    stream = pair.request(POST, b"")
    await pair.pump()
    (response,) = pair.of(stream, h2.events.ResponseReceived)
    # One HEADERS frame with END_STREAM: no DATA, no second HEADERS.
    assert response.stream_ended is not None
    assert dict(response.headers)[b"grpc-status"] == b"5"
    assert pair.of(stream, h2.events.DataReceived) == []
    assert pair.of(stream, h2.events.TrailersReceived) == []


async def test_scope_and_connection_specific_headers() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await echo(scope, receive, send)

    pair = Pair(app)
    stream = pair.request(GET)
    await pair.pump()
    assert pair.status(stream) == 200
    (response,) = pair.of(stream, h2.events.ResponseReceived)
    assert b"connection" not in dict(response.headers)
    assert pair.body(stream) == b"2 "
    (scope,) = seen
    assert (scope["http_version"], scope["method"], scope["path"]) == ("2", "GET", "/x")
    assert scope["query_string"] == b"a=1"
    assert scope["headers"][0] == (b"host", b"gw")
    assert scope["extensions"] == {"http.response.trailers": {}}
    assert scope["server"] == ("127.0.0.1", PORT)


async def test_a_head_response_carries_no_content() -> None:
    pair = Pair(echo)
    stream = pair.request([(b":method", b"HEAD"), *GET[1:]])
    await pair.pump()
    assert pair.status(stream) == 200
    assert pair.body(stream) == b""
    assert pair.of(stream, h2.events.StreamEnded)


async def test_streams_are_served_concurrently() -> None:
    app = Hanging()
    pair = Pair(app)
    streams = [pair.request(GET) for _ in range(3)]
    await pair.pump()
    assert len(app.scopes) == 3  # all three running at once
    app.release.set()
    await pair.pump()
    assert [pair.body(s) for s in streams] == [b"done"] * 3


# -- interruptions ---------------------------------------------------------------------


async def test_a_reset_stream_cancels_the_app_with_client_gone() -> None:
    app = Hanging()
    pair = Pair(app)
    stream = pair.request(GET)
    await pair.pump()
    pair.client.reset_stream(stream, ErrorCodes.CANCEL)
    await pair.pump()
    (scope,) = app.cancelled
    assert scope[SCOPE_KEY] == CLIENT_GONE
    # The connection carries on.
    app.release.set()
    other = pair.request(GET)
    await pair.pump()
    assert pair.body(other) == b"done"


async def test_receive_says_disconnect_after_a_reset() -> None:
    messages: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] == "http.disconnect":
                    return
        finally:
            done.set()

    pair = Pair(app)
    stream = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream, POST)
    pair.client.send_data(stream, b"part")
    await pair.pump()
    pair.client.reset_stream(stream, ErrorCodes.CANCEL)
    await pair.pump()
    await asyncio.wait_for(done.wait(), 5)
    assert messages[0] == {"type": "http.request", "body": b"part", "more_body": True}
    # The app may see the disconnect, or be cancelled while waiting for it.
    assert messages[-1]["type"] in ("http.disconnect", "http.request")


async def test_connection_loss_interrupts_every_stream() -> None:
    app = Hanging()
    pair = Pair(app)
    for _ in range(2):
        pair.request(GET)
    await pair.pump()
    pair.server.connection_lost(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert [scope[SCOPE_KEY] for scope in app.cancelled] == [CLIENT_GONE, CLIENT_GONE]


# -- flow control -----------------------------------------------------------------------


async def test_request_data_is_acknowledged_only_as_the_app_reads_it() -> None:
    reading = asyncio.Event()
    received: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await reading.wait()
        received.append(await read_body(receive))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    pair = Pair(app)
    await pair.pump()  # SETTINGS both ways: the stream window is ours now
    stream = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream, POST)
    window = pair.client.local_flow_control_window(stream)
    assert window == STREAM_WINDOW
    chunk = b"x" * pair.client.max_outbound_frame_size
    sent = 0
    while pair.client.local_flow_control_window(stream) >= len(chunk):
        pair.client.send_data(stream, chunk)
        sent += len(chunk)
        await pair.pump()
    # The app reads nothing: the window stays spent, the client must stop.
    assert sent >= STREAM_WINDOW - len(chunk)
    assert pair.client.local_flow_control_window(stream) < len(chunk)
    buffered = pair.server.streams[stream]
    assert buffered.task is not None and not buffered.task.done()
    reading.set()
    await pair.pump()
    # What the app took is given back: the client may send again.
    assert pair.client.local_flow_control_window(stream) >= STREAM_WINDOW // 2
    pair.client.send_data(stream, b"end", end_stream=True)
    await pair.pump()
    assert received == [b"x" * sent + b"end"]
    assert pair.body(stream) == b"ok"


async def test_send_waits_for_the_clients_window() -> None:
    size = 200_000
    sent = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"y" * size})
        sent.set()

    pair = Pair(app, client_window=1000)
    stream = pair.request(GET)
    await pair.pump()
    # Only the window's worth went out; the app is held in send().
    assert len(pair.body(stream)) == 1000
    assert not sent.is_set()
    while not sent.is_set() or pair.client.data_to_send():
        received = len(pair.body(stream))
        pair.client.acknowledge_received_data(received - getattr(pair, "_acked", 0), stream)
        pair._acked = received  # type: ignore[attr-defined]
        await pair.pump()
        if len(pair.body(stream)) == received and not pair.client.data_to_send():
            break
    assert pair.body(stream) == b"y" * size
    assert sent.is_set()


async def test_a_paused_socket_holds_senders() -> None:
    chunks = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal chunks
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            await send({"type": "http.response.body", "body": b"z" * 100, "more_body": True})
            chunks += 1
            await asyncio.sleep(0)  # an upstream read, in a real app

    pair = Pair(app)
    pair.client.increment_flow_control_window(1 << 30)
    stream = pair.request(GET)
    pair.client.increment_flow_control_window(1 << 30, stream)
    await pair.pump(rounds=3)
    pair.server.pause_writing()
    before = chunks
    for _ in range(20):
        await asyncio.sleep(0)
    assert chunks <= before + 1
    pair.server.resume_writing()
    for _ in range(20):
        await asyncio.sleep(0)
    assert chunks > before + 1
    pair.server.connection_lost(None)


# -- limits -------------------------------------------------------------------------------


async def test_streams_past_the_limit_are_refused_not_the_connection() -> None:
    app = Hanging()
    pair = Pair(app)
    await pair.pump()
    assert pair.client.remote_settings.max_concurrent_streams == LIMITS.max_concurrent_streams
    # A client that ignores the advertised limit (h2 would refuse to send it).
    pair.client.remote_settings = h2.settings.Settings(client=False)
    streams = [pair.request(GET) for _ in range(LIMITS.max_concurrent_streams + 1)]
    await pair.pump()
    refused = streams[-1]
    (reset,) = pair.of(refused, h2.events.StreamReset)
    assert reset.error_code == ErrorCodes.REFUSED_STREAM
    assert len(app.scopes) == LIMITS.max_concurrent_streams
    app.release.set()
    await pair.pump()
    assert [pair.body(s) for s in streams[:-1]] == [b"done"] * LIMITS.max_concurrent_streams
    assert not pair.transport.closed


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(f"x-h{i}".encode(), b"v") for i in range(11)], 431),
        ([(b"x-big", b"v" * 2100)], 431),
        ([(b":path", b"/" + b"p" * 600)], 414),
    ],
)
async def test_header_limits_answer_like_http_1_1(
    headers: list[tuple[bytes, bytes]], status: int
) -> None:
    pair = Pair(echo)
    request = [h for h in GET if h[0] != b":path" or not any(n == b":path" for n, _ in headers)]
    stream = pair.request([*request, *headers])
    await pair.pump()
    assert pair.status(stream) == status
    assert b'"code":3' in pair.body(stream)
    # The connection serves the next request.
    again = pair.request(GET)
    await pair.pump()
    assert pair.body(again) == b"2 "


async def test_a_late_body_interrupts_the_app_and_is_answered_408() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await read_body(receive)  # never ends: the client stops sending

    pair = Pair(echo, limits=LIMITS.model_copy(update={"body_read_timeout": 0.05}))
    pair.server.app = app
    stream = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream, POST)
    pair.client.send_data(stream, b"some")
    await pair.pump()
    await asyncio.sleep(0.2)
    await pair.pump()
    assert seen[0][SCOPE_KEY] == BODY_TIMEOUT
    assert pair.status(stream) == 408
    assert b'"code":4' in pair.body(stream)


async def test_grpc_requests_get_grpc_statuses_from_the_protocol() -> None:
    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    pair = Pair(crash)
    grpc = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
    too_many = [(f"x-h{i}".encode(), b"v") for i in range(11)]
    refused = pair.request([*POST, *grpc, *too_many], b"")
    crashed = pair.request([*POST, *grpc], b"")
    await pair.pump()
    for stream, code in ((refused, b"3"), (crashed, b"13")):
        (response,) = pair.of(stream, h2.events.ResponseReceived)
        fields = dict(response.headers)
        # Trailers-Only: HTTP 200, the status in the one header block.
        assert response.stream_ended is not None
        assert (fields[b":status"], fields[b"grpc-status"]) == (b"200", code)
    (refused_head,) = pair.of(refused, h2.events.ResponseReceived)
    assert dict(refused_head.headers)[b"grpc-message"] == b"more than 10 headers"


def test_grpc_message_is_percent_encoded() -> None:
    assert percent_encode("50% of ü\n".encode()) == b"50%25 of %C3%BC%0A"


# -- shutdown ------------------------------------------------------------------------------


async def test_shutdown_sends_goaway_and_lets_open_streams_finish() -> None:
    app = Hanging()
    pair = Pair(app)
    first = pair.request(GET)
    await pair.pump()
    pair.server.shutdown()
    await asyncio.sleep(0)
    # h2's client stops reading at GOAWAY (real clients do not): read frames.
    (goaway,) = frames(pair.transport.take())
    assert isinstance(goaway, GoAwayFrame)
    assert (goaway.last_stream_id, goaway.error_code) == (first, ErrorCodes.NO_ERROR)
    assert not pair.transport.closed
    # A stream opened after the GOAWAY is refused; the open one finishes.
    late = pair.request(GET)
    pair.server.data_received(pair.client.data_to_send())
    app.release.set()
    for _ in range(10):
        await asyncio.sleep(0)
    sent = frames(pair.transport.take())
    assert [(type(f).__name__, f.stream_id) for f in sent] == [
        ("RstStreamFrame", late),
        ("HeadersFrame", first),
        ("DataFrame", first),
    ]
    assert "END_STREAM" in sent[-1].flags
    assert pair.transport.closed


def frames(data: bytes) -> list[Frame]:
    out = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        out.append(frame)
        data = data[9 + length :]
    return out


async def test_an_idle_connection_is_closed_with_goaway() -> None:
    limits = LIMITS.model_copy(update={"idle_timeout": 0.05})
    pair = Pair(echo, limits=limits)
    stream = pair.request(GET)
    await pair.pump()
    assert pair.body(stream) == b"2 "
    await asyncio.sleep(0.2)
    await pair.pump()
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in pair.events)
    assert pair.transport.closed


# -- protocol choice ---------------------------------------------------------------------------


async def test_the_preface_picks_http2_and_anything_else_http_1_1() -> None:
    config = uvicorn_config(echo)
    cls = serving_protocol(lambda port: LIMITS)
    state = ServerState()
    transport = MemoryTransport()
    selector = cls(config=config, server_state=state, app_state={})
    selector.connection_made(transport)  # type: ignore[arg-type]
    # The preface may come in pieces.
    selector.data_received(b"PRI * HTTP")
    assert transport.protocol is None
    selector.data_received(b"/2.0\r\n\r\nSM\r\n\r\n")
    assert isinstance(transport.protocol, H2Protocol)
    transport.protocol.connection_lost(None)

    transport = MemoryTransport()
    selector = cls(config=config, server_state=state, app_state={})
    selector.connection_made(transport)  # type: ignore[arg-type]
    selector.data_received(b"GET / HTTP/1.1\r\nhost: gw\r\n\r\n")
    assert isinstance(transport.protocol, cls.http1)
    for _ in range(10):
        await asyncio.sleep(0)
    assert transport.take().startswith(b"HTTP/1.1 200")
    transport.protocol.connection_lost(None)


def upgrade_request(settings: bytes, body: bytes = b"hello", **more: str) -> bytes:
    head = {
        "host": "gw",
        "connection": "Upgrade, HTTP2-Settings",
        "upgrade": "h2c",
        "http2-settings": settings.decode(),
        "content-length": str(len(body)),
        **more,
    }
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items() if v)
    return f"POST /upload HTTP/1.1\r\n{lines}\r\n".encode() + body


async def test_an_h2c_upgrade_serves_the_request_as_stream_1() -> None:
    cls = serving_protocol(lambda port: LIMITS)
    state = ServerState()
    transport = MemoryTransport()
    selector = cls(config=uvicorn_config(echo), server_state=state, app_state={})
    selector.connection_made(transport)  # type: ignore[arg-type]
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    settings = client.initiate_upgrade_connection()
    assert settings is not None
    request = upgrade_request(settings)
    # The body arrives after the head, in another read.
    selector.data_received(request[:-3])
    transport.protocol.data_received(request[-3:] + client.data_to_send())
    for _ in range(10):
        await asyncio.sleep(0)
    out = transport.take()
    head, _, frames_in = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"upgrade: h2c" in head.lower()
    assert isinstance(transport.protocol, H2Protocol)
    events = client.receive_data(frames_in)
    response = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert response[0].stream_id == 1
    data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert data == b"2 hello"
    # The connection goes on in HTTP/2.
    stream = client.get_next_available_stream_id()
    client.send_headers(stream, GET, end_stream=True)
    transport.protocol.data_received(client.data_to_send())
    for _ in range(10):
        await asyncio.sleep(0)
    events = client.receive_data(transport.take())
    assert b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived)) == b"2 "
    assert len(state.connections) == 1
    transport.protocol.connection_lost(None)


@pytest.mark.parametrize(
    ("more", "status"),
    [
        ({"content-length": str(2 << 20)}, 413),
        ({"http2-settings": "not base64!"}, 400),
        ({"content-length": "", "transfer-encoding": "chunked"}, 400),
    ],
)
async def test_an_h2c_upgrade_it_cannot_take_is_answered(more: dict[str, str], status: int) -> None:
    cls = serving_protocol(lambda port: LIMITS)
    transport = MemoryTransport()
    selector = cls(config=uvicorn_config(echo), server_state=ServerState(), app_state={})
    selector.connection_made(transport)  # type: ignore[arg-type]
    selector.data_received(upgrade_request(b"AAMAAABkAAQCAAAAAAIAAAAA", b"", **more))
    out = transport.take()
    assert out.startswith(b"HTTP/1.1 %d " % status), out
    assert b"application/json" in out
    assert transport.closed


async def test_a_silent_connection_counts_against_the_cap_until_it_is_closed() -> None:
    cls = serving_protocol(lambda port: LIMITS.model_copy(update={"max_connections": 1}))
    state = ServerState()
    config = uvicorn_config(echo)
    silent = MemoryTransport()
    first = cls(config=config, server_state=state, app_state={})
    first.connection_made(silent)  # type: ignore[arg-type]
    assert cls.http1.open_by_port[PORT] == 1
    # The next one is over the cap: HTTP/1.1 refuses it at once.
    refused = MemoryTransport()
    cls(config=config, server_state=state, app_state={}).connection_made(refused)  # type: ignore[arg-type]
    assert isinstance(refused.protocol, cls.http1)
    refused.protocol.data_received(b"GET / HTTP/1.1\r\nhost: gw\r\n\r\n")
    assert refused.take().startswith(b"HTTP/1.1 503 ")
    refused.protocol.connection_lost(None)
    # A drain closes the silent one; once gone it no longer counts.
    for connection in list(state.connections):
        connection.shutdown()
    assert silent.closed
    first.connection_lost(None)
    assert cls.http1.open_by_port[PORT] == 0
    assert not state.connections
