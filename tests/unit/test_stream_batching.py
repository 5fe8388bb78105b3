"""Server streaming through the whole app, chunk by chunk: messages ready
together leave as one body chunk; a message is never held for a later one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest

from gateway.upstream.call import Call
from tests.support.in_process import LISTENER_PORT, InProcessGateway

pytestmark = pytest.mark.anyio

STREAM = "/v1/shelves/1/books:stream"


def config(fmt: str) -> str:
    return f"""
descriptors:
  - proto: tests/protos/meshgate/test/v1/bookstore.proto
    include: [tests/protos]
listeners:
  - name: public
    address: 127.0.0.1:{LISTENER_PORT}
    routes:
      - match: {{prefix: /}}
        transcode: {{services: [meshgate.test.v1.Bookstore], stream: {fmt}}}
        cluster: books
clusters:
  - name: books
    endpoints: [{{address: "127.0.0.1:7001"}}]
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Client:
    """An ASGI server's side of one request: the body chunks as sent."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.arrived = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            self.chunks.append(message["body"])
            self.arrived.set()

    def scope(self) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": STREAM,
            "raw_path": STREAM.encode(),
            "query_string": b"",
            "headers": [(b"host", b"gateway")],
            "client": ("127.0.0.9", 5555),
            "server": ("127.0.0.1", LISTENER_PORT),
        }


def books(gateway: InProcessGateway, *titles: str) -> list[bytes]:
    book = gateway.message("meshgate.test.v1.Book")
    return [book(title=t).SerializeToString() for t in titles]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("array", b'[{"title":"a"},{"title":"b"},{"title":"c"}]'),
        ("ndjson", b'{"title":"a"}\n{"title":"b"}\n{"title":"c"}\n'),
    ],
)
async def test_messages_ready_together_leave_in_one_chunk(fmt: str, expected: bytes) -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> list[bytes]:
        return books(gateway, "a", "b", "c")

    gateway = InProcessGateway(config(fmt), handler)
    client = Client()
    await gateway.app(client.scope(), client.receive, client.send)
    # Every message in the first chunk; only the array's end comes after.
    assert client.chunks[0] == expected.removesuffix(b"]")
    assert b"".join(client.chunks) == expected


@pytest.mark.parametrize("fmt", ["array", "ndjson"])
async def test_the_first_message_leaves_while_the_backend_holds_the_next(fmt: str) -> None:
    release = asyncio.Event()

    async def held() -> AsyncIterator[bytes]:
        first, *rest = books(gateway, "a", "b", "c")
        yield first
        await release.wait()
        for message in rest:
            yield message

    async def handler(address: str, call: Call, timeout: float | None) -> AsyncIterator[bytes]:
        return held()

    gateway = InProcessGateway(config(fmt), handler)
    client = Client()
    serving = asyncio.ensure_future(gateway.app(client.scope(), client.receive, client.send))
    await client.arrived.wait()
    assert not release.is_set()
    assert [json.loads(chunk.lstrip(b"[")) for chunk in client.chunks] == [{"title": "a"}]
    release.set()
    await serving
    # The two released together leave together, then the array's end.
    separator = b"," if fmt == "array" else b""
    end = b"\n" if fmt == "ndjson" else b""
    assert client.chunks[1] == (
        separator + b'{"title":"b"}' + (b"\n" if fmt == "ndjson" else b",") + b'{"title":"c"}' + end
    )


async def test_a_client_that_leaves_cancels_the_backend_stream() -> None:
    cleaned: list[str] = []

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield books(gateway, "a")[0]
            await asyncio.Event().wait()
        finally:
            cleaned.append("ended")

    async def handler(address: str, call: Call, timeout: float | None) -> AsyncIterator[bytes]:
        return endless()

    gateway = InProcessGateway(config("array"), handler)
    client = Client()
    serving = asyncio.ensure_future(gateway.app(client.scope(), client.receive, client.send))
    await client.arrived.wait()
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert cleaned == ["ended"]
