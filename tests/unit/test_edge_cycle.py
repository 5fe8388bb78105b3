"""The one-write answer (gateway.edge_cycle): the same bytes as uvicorn's own
cycle, in one write when the length is known, with the head first otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.config import ListenerLimitsConfig
from gateway.edge_protocol import edge_protocol
from tests.support.memory_transport import MemoryTransport

Headers = list[tuple[bytes, bytes]]
Messages = list[dict[str, Any]]


class Replay:
    """Sends the given ASGI messages; a later one waits for ``go`` when told to."""

    def __init__(self, messages: Messages, pause_after: int | None = None) -> None:
        self.messages = messages
        self.pause_after = pause_after
        self.go = asyncio.Event()
        self.failed: BaseException | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        for index, message in enumerate(self.messages):
            if index == self.pause_after:
                await self.go.wait()
            try:
                await send(message)
            except RuntimeError as exc:
                self.failed = exc
                raise


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()

    async def drain() -> None:
        await asyncio.gather(*pending, return_exceptions=True)

    loop.run_until_complete(drain())
    loop.close()


def serve(
    loop: asyncio.AbstractEventLoop,
    app: Replay,
    request: bytes,
    cls: type[HttpToolsProtocol] | None = None,
) -> MemoryTransport:
    cls = cls or edge_protocol(lambda port: ListenerLimitsConfig())
    config = Config(app=app, lifespan="off", http=cls)
    config.load()
    protocol = cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    transport = MemoryTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(request)
    loop.run_until_complete(asyncio.sleep(0.01))
    return transport


GET = b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n"


def start(headers: Headers, status: int = 200) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": headers}


def body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


KNOWN = [start([(b"content-type", b"application/json"), (b"content-length", b"2")]), body(b"{}")]
CHUNKED = [start([(b"content-type", b"application/x-ndjson")]), body(b"1\n", True), body(b"2\n")]
CLOSING = [start([(b"Content-Length", b"2"), (b"Connection", b"keep-alive, Close")]), body(b"ok")]
IN_PIECES = [start([(b"content-length", b"4")]), body(b"ab", True), body(b"cd")]


@pytest.mark.parametrize("messages", [KNOWN, CHUNKED, CLOSING, IN_PIECES])
@pytest.mark.parametrize(
    "request_bytes", [GET, b"HEAD /x HTTP/1.1\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n"]
)
def test_the_bytes_are_uvicorns(
    loop: asyncio.AbstractEventLoop, messages: Messages, request_bytes: bytes
) -> None:
    ours = serve(loop, Replay(messages), request_bytes)
    theirs = serve(loop, Replay(messages), request_bytes, HttpToolsProtocol)
    assert b"".join(ours.writes) == b"".join(theirs.writes)
    assert ours.closed == theirs.closed


def test_a_known_length_answer_is_one_write(loop: asyncio.AbstractEventLoop) -> None:
    transport = serve(loop, Replay(KNOWN), GET)
    assert transport.writes == [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    ]
    assert not transport.closed


def test_a_stream_gets_its_head_before_its_first_message(loop: asyncio.AbstractEventLoop) -> None:
    app = Replay(CHUNKED, pause_after=1)
    transport = serve(loop, app, GET)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    app.go.set()
    loop.run_until_complete(asyncio.sleep(0.01))
    assert transport.writes[1:] == [b"2\r\n1\n\r\n", b"2\r\n2\n\r\n0\r\n\r\n"]


@pytest.mark.parametrize(
    "headers",
    [[(b"x-evil", b"a\r\nset-cookie: b")], [(b"bad name", b"v")], [(b"x", b"\x00")]],
)
def test_an_unsafe_header_never_reaches_the_wire(
    loop: asyncio.AbstractEventLoop, headers: Headers
) -> None:
    app = Replay([start([*headers, (b"content-length", b"2")]), body(b"{}")])
    transport = serve(loop, app, GET)
    assert isinstance(app.failed, RuntimeError)
    assert transport.writes == []
    assert transport.closed


def test_a_body_longer_than_its_length_is_refused(loop: asyncio.AbstractEventLoop) -> None:
    app = Replay([start([(b"content-length", b"1")]), body(b"{}")])
    transport = serve(loop, app, GET)
    assert isinstance(app.failed, RuntimeError)
    assert transport.writes == []
