"""The listener limits in the HTTP protocol, driven with an in-memory
transport (uvicorn's own protocol tests do the same); the same cases run
against a real process in tests/integration/test_edge_hardening.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from gateway.config import ListenerLimitsConfig
from gateway.edge_protocol import EdgeProtocol, edge_protocol
from gateway.interrupts import BODY_TIMEOUT, CLIENT_GONE, SCOPE_KEY
from tests.support.memory_transport import MemoryTransport

LIMITS = ListenerLimitsConfig(
    max_request_header_bytes=2048,
    max_request_headers=10,
    max_url_bytes=512,
    header_read_timeout=30.0,
    body_read_timeout=30.0,
    max_connections=2,
)


class App:
    """Answers 200 after reading the body; remembers what it saw."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.cancelled = asyncio.Event()
        self.hang = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        try:
            if self.hang:
                await asyncio.sleep(60)
            more = True
            while more:
                message = await receive()
                more = message.get("more_body", False)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    # Requests started but never run by a test: let them finish cancelled.
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()

    async def drain() -> None:
        await asyncio.gather(*pending, return_exceptions=True)

    loop.run_until_complete(drain())
    loop.close()


def connect(
    loop: asyncio.AbstractEventLoop, app: App, cls: type[EdgeProtocol] | None = None
) -> tuple[EdgeProtocol, MemoryTransport]:
    cls = cls or edge_protocol(lambda port: LIMITS)
    config = Config(app=app, lifespan="off", http=cls)
    config.load()
    protocol = cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    transport = MemoryTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


def answer(transport: MemoryTransport) -> tuple[int, dict[str, Any]]:
    head, _, body = transport.written.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head
    assert transport.closed
    return int(head.split(b" ")[1]), json.loads(body)


def test_too_many_header_bytes_is_431(loop: asyncio.AbstractEventLoop) -> None:
    protocol, transport = connect(loop, App())
    protocol.data_received(b"GET / HTTP/1.1\r\nx-big: " + b"a" * 3000 + b"\r\n\r\n")
    assert answer(transport)[0] == 431


def test_a_header_never_ending_is_cut_at_the_head_cap(loop: asyncio.AbstractEventLoop) -> None:
    protocol, transport = connect(loop, App())
    protocol.data_received(b"GET / HTTP/1.1\r\nx-big: ")
    for _ in range(10):  # 10 x 1 KiB, no end of line: no callback yet
        if transport.closed:
            break
        protocol.data_received(b"a" * 1024)
    assert answer(transport)[0] == 431


def test_too_many_headers_is_431(loop: asyncio.AbstractEventLoop) -> None:
    protocol, transport = connect(loop, App())
    headers = b"".join(b"x-h%d: v\r\n" % i for i in range(11))
    protocol.data_received(b"GET / HTTP/1.1\r\n" + headers + b"\r\n")
    status, body = answer(transport)
    assert status == 431
    assert "10 headers" in body["message"]


def test_long_target_is_414(loop: asyncio.AbstractEventLoop) -> None:
    protocol, transport = connect(loop, App())
    protocol.data_received(b"GET /" + b"a" * 600 + b" HTTP/1.1\r\n\r\n")
    assert answer(transport)[0] == 414


def test_parser_errors_are_json_400(loop: asyncio.AbstractEventLoop) -> None:
    protocol, transport = connect(loop, App())
    protocol.data_received(b"NOT HTTP\r\n\r\n")
    status, body = answer(transport)
    assert status == 400
    assert body["code"] == 3


def test_late_head_is_408_and_a_silent_socket_is_just_closed(
    loop: asyncio.AbstractEventLoop,
) -> None:
    protocol, transport = connect(loop, App())
    protocol.data_received(b"GET / HTTP/1.1\r\nx-a: 1\r\n")
    assert protocol._head_timer is not None  # a partial head is timed
    protocol._head_timeout()  # the timer firing
    assert answer(transport)[0] == 408
    silent, silent_transport = connect(loop, App())
    silent._head_timeout()
    assert silent_transport.closed
    assert silent_transport.written == b""


def test_connections_past_the_cap_get_503(loop: asyncio.AbstractEventLoop) -> None:
    cls = edge_protocol(lambda port: LIMITS)
    first, _ = connect(loop, App(), cls)
    _, second_transport = connect(loop, App(), cls)
    third, third_transport = connect(loop, App(), cls)
    third.data_received(b"GET / HTTP/1.1\r\n\r\n")
    status, body = answer(third_transport)
    assert status == 503
    assert "too many connections" in body["message"]
    assert not second_transport.closed  # established ones are untouched
    third.connection_lost(None)
    first.connection_lost(None)
    fourth, _ = connect(loop, App(), cls)  # a slot is free again
    assert not fourth._refused


def test_client_leaving_interrupts_the_app(loop: asyncio.AbstractEventLoop) -> None:
    app = App()
    app.hang = True
    protocol, _ = connect(loop, app)
    protocol.data_received(b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}")

    async def leave() -> None:
        await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        await asyncio.wait_for(app.cancelled.wait(), 5)

    loop.run_until_complete(leave())
    assert app.scopes[0][SCOPE_KEY] == CLIENT_GONE


def test_late_body_interrupts_the_app(loop: asyncio.AbstractEventLoop) -> None:
    app = App()
    protocol, _ = connect(loop, app)
    protocol.data_received(b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\n{}")
    assert protocol._body_timer is not None  # the body is not all there

    async def wait() -> None:
        await asyncio.sleep(0.01)
        protocol._body_timeout()  # the timer firing
        await asyncio.wait_for(app.cancelled.wait(), 5)

    loop.run_until_complete(wait())
    assert app.scopes[0][SCOPE_KEY] == BODY_TIMEOUT


def test_a_body_that_came_with_its_head_starts_no_timer(loop: asyncio.AbstractEventLoop) -> None:
    protocol, _ = connect(loop, App())
    protocol.data_received(b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}")
    assert protocol._body_timer is None
    assert protocol._head_timer is None
