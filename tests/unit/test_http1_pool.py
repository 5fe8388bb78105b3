"""The HTTP/1.1 connection pool over in-memory transports: reuse, bounds, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gateway.upstream.http1 import ProtocolError
from gateway.upstream.http1_pool import (
    ConnectFailed,
    ConnectionLost,
    Http1Connection,
    Http1Pool,
)

pytestmark = pytest.mark.anyio

REQUEST = b"POST /s/m HTTP/1.1\r\nhost: h:1\r\ncontent-length: 2\r\n\r\n[]"
OK = b'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n"ok"'
CLOSING = b'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 4\r\n\r\n"ok"'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeTransport:
    """The client's end of an in-memory connection; the endpoint answers each write."""

    def __init__(self, protocol: Http1Connection, endpoint: FakeEndpoint) -> None:
        self.protocol = protocol
        self.endpoint = endpoint
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)
        asyncio.get_running_loop().call_soon(self.endpoint.answer, self, data)

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    # The server's side.
    def send(self, data: bytes) -> None:
        if not self.closing:
            self.protocol.data_received(data)

    def hang_up(self) -> None:
        if not self.closing:
            self.protocol.eof_received()
            self.close()


class FakeEndpoint:
    def __init__(self, answer: Callable[[FakeTransport, bytes], None] | None = None) -> None:
        self.transports: list[FakeTransport] = []
        self.answer = answer or (lambda transport, _: transport.send(OK))

    async def connect(self) -> Http1Connection:
        connection = Http1Connection()
        transport = FakeTransport(connection, self)
        connection.connection_made(transport)  # type: ignore[arg-type]
        self.transports.append(transport)
        return connection


async def test_sequential_requests_share_one_connection() -> None:
    endpoint = FakeEndpoint()
    pool = Http1Pool(endpoint.connect)
    first = await pool.request(REQUEST)
    second = await pool.request(REQUEST)
    assert (first.status, first.body, second.body) == (200, b'"ok"', b'"ok"')
    assert len(endpoint.transports) == 1
    assert endpoint.transports[0].written == [REQUEST, REQUEST]
    assert pool.idle == 1


async def test_a_response_that_closes_is_not_reused() -> None:
    endpoint = FakeEndpoint(lambda transport, _: transport.send(CLOSING))
    pool = Http1Pool(endpoint.connect)
    await pool.request(REQUEST)
    await pool.request(REQUEST)
    assert len(endpoint.transports) == 2
    assert all(transport.closing for transport in endpoint.transports)
    assert pool.idle == 0


async def test_concurrent_requests_open_connections_up_to_the_bound_then_wait() -> None:
    held: list[FakeTransport] = []
    endpoint = FakeEndpoint(lambda transport, _: held.append(transport))
    pool = Http1Pool(endpoint.connect, max_connections=2)
    calls = [asyncio.create_task(pool.request(REQUEST)) for _ in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(endpoint.transports) == 2  # the third call waits for a connection
    held.pop(0).send(OK)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(endpoint.transports) == 2  # and gets the one that was freed
    while held:
        held.pop(0).send(OK)
    responses = await asyncio.gather(*calls)
    assert [response.status for response in responses] == [200, 200, 200]
    assert len(endpoint.transports) == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    endpoint = FakeEndpoint()
    pool = Http1Pool(endpoint.connect)
    await pool.request(REQUEST)
    endpoint.transports[0].hang_up()
    await asyncio.sleep(0)
    assert pool.idle == 0
    await pool.request(REQUEST)
    assert len(endpoint.transports) == 2


async def test_idle_connections_past_the_timeout_are_closed_not_reused() -> None:
    endpoint = FakeEndpoint()
    pool = Http1Pool(endpoint.connect, idle_timeout=-1.0)  # every idle connection is too old
    await pool.request(REQUEST)
    await pool.request(REQUEST)
    assert len(endpoint.transports) == 2
    assert endpoint.transports[0].closing


async def test_a_close_before_the_answer_is_connection_lost() -> None:
    endpoint = FakeEndpoint(lambda transport, _: transport.hang_up())
    pool = Http1Pool(endpoint.connect)
    with pytest.raises(ConnectionLost):
        await pool.request(REQUEST)
    assert pool.idle == 0


async def test_a_close_in_the_middle_of_the_answer_is_connection_lost() -> None:
    def half(transport: FakeTransport, _: bytes) -> None:
        transport.send(OK[:-2])
        transport.hang_up()

    pool = Http1Pool(FakeEndpoint(half).connect)
    with pytest.raises(ConnectionLost, match="before the response was complete"):
        await pool.request(REQUEST)


async def test_an_answer_that_ends_with_the_connection_is_complete() -> None:
    def unframed(transport: FakeTransport, _: bytes) -> None:
        transport.send(b"HTTP/1.1 503 Service Unavailable\r\n\r\nbusy")
        transport.hang_up()

    endpoint = FakeEndpoint(unframed)
    response = await Http1Pool(endpoint.connect).request(REQUEST)
    assert (response.status, response.body, response.keep_alive) == (503, b"busy", False)


async def test_garbage_from_the_server_fails_the_call_and_drops_the_connection() -> None:
    endpoint = FakeEndpoint(lambda transport, _: transport.send(b"NOT HTTP\r\n\r\n"))
    pool = Http1Pool(endpoint.connect)
    with pytest.raises(ProtocolError):
        await pool.request(REQUEST)
    assert endpoint.transports[0].closing
    assert pool.idle == 0


async def test_a_cancelled_call_does_not_leave_its_connection_in_the_pool() -> None:
    endpoint = FakeEndpoint(lambda transport, _: None)  # never answers
    pool = Http1Pool(endpoint.connect)
    call = asyncio.create_task(pool.request(REQUEST))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert endpoint.transports[0].closing
    endpoint.answer = lambda transport, _: transport.send(OK)
    assert (await pool.request(REQUEST)).status == 200
    assert len(endpoint.transports) == 2


async def test_unasked_bytes_on_an_idle_connection_close_it() -> None:
    endpoint = FakeEndpoint()
    pool = Http1Pool(endpoint.connect)
    await pool.request(REQUEST)
    endpoint.transports[0].send(OK)
    assert endpoint.transports[0].closing


async def test_a_refused_connect_is_connect_failed() -> None:
    async def refuse() -> Http1Connection:
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(ConnectFailed, match="Connection refused"):
        await Http1Pool(refuse).request(REQUEST)


async def test_a_connect_that_does_not_finish_in_time_is_connect_failed() -> None:
    async def hang() -> Http1Connection:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    with pytest.raises(ConnectFailed, match="timed out"):
        await Http1Pool(hang, connect_timeout=0.01).request(REQUEST)


async def test_close_fails_calls_in_flight_and_refuses_new_ones() -> None:
    endpoint = FakeEndpoint(lambda transport, _: None)
    pool = Http1Pool(endpoint.connect)
    call = asyncio.create_task(pool.request(REQUEST))
    await asyncio.sleep(0)
    pool.close()
    with pytest.raises(ConnectionLost):
        await call
    with pytest.raises(ConnectFailed, match="closed"):
        await pool.request(REQUEST)
