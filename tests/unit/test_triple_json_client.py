"""The Triple HTTP/JSON client against a scripted HTTP/1.1 server on loopback.

What the client sends, how it reuses connections, and how each way of failing
reaches the gateway's errors (connect failure, reset, deadline, bad header).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from gateway.errors import (
    CONNECT_FAILURE,
    RESET,
    BadRequest,
    Code,
    GatewayError,
    UpstreamStatus,
    UpstreamUnavailable,
)
from gateway.upstream.generic import GenericCall
from gateway.upstream.registry import UpstreamClients
from gateway.upstream.triple_json import TripleJsonUpstream

pytestmark = pytest.mark.anyio

USERS = "org.apache.dubbo.meshgate.UserService"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    """A loopback server running ``handler`` per connection; yields its address."""
    connections: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await handler(reader, writer)

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for writer in connections:
            writer.close()
        srv.close()


def answering(
    responses: list[bytes], requests: list[bytes], counter: list[int] | None = None
) -> Handler:
    """Reads each request (content-length framed) and sends the next canned response."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if counter is not None:
            counter.append(1)
        while responses:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            requests.append(head + await reader.readexactly(length))
            writer.write(responses.pop(0))
            await writer.drain()

    return handle


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


def greet(
    group: str | None = None, version: str | None = None, attachments: dict[str, str] | None = None
) -> GenericCall:
    return GenericCall(
        USERS, "greet", b'["ada"]', group, version, attachments=attachments or {}, timeout=10
    )


async def test_sends_one_post_with_the_triple_headers_and_reuses_the_connection() -> None:
    requests: list[bytes] = []
    connections: list[int] = []
    responses = [ok(b'"hi ada"'), ok(b"")]
    upstream = TripleJsonUpstream()
    async with server(answering(responses, requests, connections)) as address:
        call = greet(group="g1", version="1.0.0", attachments={"X-Trace": "t1"})
        first = await upstream.call(address, call)
        second = await upstream.call(address, call)
    await upstream.close()
    assert first.body == b'"hi ada"'
    assert second.body == b"null"  # an empty 200 is JSON null, as before
    assert len(connections) == 1
    head, body = requests[0].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == f"POST /{USERS}/greet HTTP/1.1".encode()
    assert body == b'["ada"]'
    assert {
        f"host: {address}".encode(),
        b"accept: */*",
        b"content-type: application/json",
        b"x-trace: t1",
        b"tri-service-group: g1",
        b"tri-service-version: 1.0.0",
        b"tri-service-timeout: 10000",
        b"triple-timeout-ms: 10000",
        b"triple-protocol-version: 0.1.0",
        b"content-length: 7",
    } <= set(lines[1:])


async def test_an_error_answer_is_mapped_as_the_provider_says() -> None:
    body = b'{"message":"Invoker not found","status":"404"}'
    response = b"HTTP/1.1 404 Not Found\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    upstream = TripleJsonUpstream()
    async with server(answering([response], [])) as address:
        with pytest.raises(GatewayError) as raised:
            await upstream.call(address, greet())
    await upstream.close()
    assert raised.value.grpc_code == Code.NOT_FOUND
    assert "Invoker not found" in str(raised.value)


async def test_a_refused_connection_is_unavailable_with_connect_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the call: nobody listens
    upstream = TripleJsonUpstream()
    with pytest.raises(UpstreamUnavailable) as raised:
        await upstream.call(f"127.0.0.1:{port}", greet())
    await upstream.close()
    assert raised.value.cause == CONNECT_FAILURE


async def test_a_connection_closed_before_the_answer_is_unavailable_with_reset() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    upstream = TripleJsonUpstream()
    async with server(hang_up) as address:
        with pytest.raises(UpstreamUnavailable) as raised:
            await upstream.call(address, greet())
    await upstream.close()
    assert raised.value.cause == RESET
    assert f"triple {address}/{USERS}/greet" in raised.value.message


async def test_garbage_instead_of_http_is_unavailable_with_reset() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00")  # an HTTP/2 SETTINGS frame
        await writer.drain()

    upstream = TripleJsonUpstream()
    async with server(garbage) as address:
        with pytest.raises(UpstreamUnavailable) as raised:
            await upstream.call(address, greet())
    await upstream.close()
    assert raised.value.cause == RESET


async def test_no_answer_within_the_deadline_is_deadline_exceeded() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    upstream = TripleJsonUpstream()
    async with server(silent) as address:
        with pytest.raises(UpstreamStatus) as raised:
            await upstream.call(address, GenericCall(USERS, "greet", b"[]", timeout=0.05))
    await upstream.close()
    assert raised.value.grpc_code == 4


async def test_an_attachment_that_cannot_be_a_header_is_a_bad_request() -> None:
    upstream = TripleJsonUpstream()
    with pytest.raises(BadRequest, match="x-evil"):
        await upstream.call("127.0.0.1:9", greet(attachments={"x-evil": "a\r\nhost: elsewhere"}))
    await upstream.close()


async def test_retain_closes_the_connections_of_endpoints_that_left() -> None:
    requests: list[bytes] = []
    connections: list[int] = []
    upstream = TripleJsonUpstream()
    async with server(answering([ok(b"1"), ok(b"2")], requests, connections)) as address:
        await upstream.call(address, greet())
        await upstream.retain(["127.0.0.1:1"])
        assert (await upstream.call(address, greet())).body == b"2"
    await upstream.close()
    assert len(connections) == 2


async def test_the_worker_s_retain_reaches_the_triple_json_pools() -> None:
    connections: list[int] = []
    clients = UpstreamClients()
    upstream = clients.get("triple-json")
    assert isinstance(upstream, TripleJsonUpstream)
    async with server(answering([ok(b"1"), ok(b"2")], [], connections)) as address:
        await upstream.call(address, greet())
        await clients.retain([])
        await upstream.call(address, greet())
    await clients.close()
    assert len(connections) == 2
