"""Server streaming over REST with meshgate: JSON array, NDJSON and SSE.

One listener, three routes chosen by the ``x-stream`` request header, each with
``transcode: {services: [meshgate.test.v1.Bookstore], stream: ...}``. The
bookstore backend's StreamBooks sends ``count`` books, sleeping
``delay_seconds`` between them, then fails with ``fail_code`` if asked.

Checked for every format: messages reach the client as they are sent, not
when the call ends; a failure after the first message ends the stream with an
error record instead of a silent, truncated 200; a failure before the first
message is an ordinary JSON error with its HTTP status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.bookstore_backend import SERVICE, bookstore_descriptor_set
from tests.support.gateway import run_gateway
from tests.support.net import free_port
from tests.support.processes import python_module, running

pytestmark = pytest.mark.integration

FORMATS = ("array", "ndjson", "sse")
CONTENT_TYPES = {
    "array": "application/json",
    "ndjson": "application/x-ndjson",
    "sse": "text/event-stream",
}
STREAM = "/v1/shelves/7/books:stream"
ROUTE_TIMEOUT = "10s"
CLIENT_TIMEOUT_SECONDS = 15.0
DELAY_SECONDS = 1.0
# With three messages one second apart, the last is sent about 2 s after the first.
MIN_LEAD_SECONDS = 0.5


def route(stream: str, headers: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "match": {"prefix": "/", "headers": headers},
        "transcode": {"services": [SERVICE], "stream": stream},
        "cluster": "bookstore",
        "timeout": ROUTE_TIMEOUT,
    }


def streaming_config(descriptors: Path, backend_port: int) -> dict[str, Any]:
    return {
        "descriptors": [{"file": str(descriptors)}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    route("ndjson", [{"name": "x-stream", "exact": "ndjson"}]),
                    route("sse", [{"name": "x-stream", "exact": "sse"}]),
                    route("array", []),
                ],
            }
        ],
        "clusters": [
            {"name": "bookstore", "endpoints": [{"address": f"127.0.0.1:{backend_port}"}]}
        ],
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    port = free_port()
    with (
        running(
            python_module("tests.support.bookstore_backend", "--port", str(port)),
            "READY",
            timeout=30.0,
        ),
        run_gateway(
            streaming_config(bookstore_descriptor_set(), port),
            tmp_path_factory.mktemp("rest-stream"),
        ) as gateway,
        httpx.Client(base_url=gateway.url, timeout=CLIENT_TIMEOUT_SECONDS) as http,
    ):
        yield http


@dataclass
class Record:
    """One framed record of a stream: a message, or the error that ended it."""

    kind: str  # "message" | "error"
    value: Any
    at: float  # time.monotonic() when the record was complete at the client


@dataclass
class Framer:
    """Incremental parser of the three stream formats."""

    format: str
    buffer: bytes = b""
    records: list[Record] = field(default_factory=list)
    closed: bool = False

    def feed(self, chunk: bytes, now: float) -> None:
        self.buffer += chunk
        if self.format == "array":
            self._feed_array(now)
        elif self.format == "ndjson":
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                if line.strip():
                    self._add(json.loads(line), now)
        else:
            while b"\n\n" in self.buffer:
                event, self.buffer = self.buffer.split(b"\n\n", 1)
                self._add_sse(event.decode(), now)

    def _feed_array(self, now: float) -> None:
        # Re-read the whole body so far (it is small): every element that is
        # complete now and was not before is a new record, stamped now.
        try:
            text = self.buffer.decode()
        except UnicodeDecodeError:
            return  # a multi-byte character is split across chunks
        elements, self.closed = _complete_elements(text)
        for value in elements[len(self.records) :]:
            self._add(value, now)

    def _add(self, value: Any, now: float) -> None:
        kind = "error" if isinstance(value, dict) and set(value) == {"error"} else "message"
        self.records.append(Record(kind, value["error"] if kind == "error" else value, now))

    def _add_sse(self, event: str, now: float) -> None:
        name = "message"
        data: list[str] = []
        for line in event.split("\n"):
            if line.startswith(":"):
                continue  # a comment (keep-alive)
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
        if not data:
            return
        payload = json.loads("\n".join(data))
        if name == "error":
            # The data is the google.rpc.Status, bare or under "error".
            status = payload.get("error", payload) if isinstance(payload, dict) else payload
            self.records.append(Record("error", status, now))
        else:
            assert name == "message", f"unexpected SSE event {name!r}"
            self.records.append(Record("message", payload, now))

    @property
    def messages(self) -> list[Any]:
        return [r.value for r in self.records if r.kind == "message"]

    @property
    def errors(self) -> list[Any]:
        return [r.value for r in self.records if r.kind == "error"]


def _complete_elements(text: str) -> tuple[list[Any], bool]:
    """The complete elements of a JSON array being received, and whether it is closed."""
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if position == len(text):
        return [], False
    assert text[position] == "[", f"a JSON array must start with '[': {text!r}"
    position = _skip_space(text, position + 1)
    elements: list[Any] = []
    while position < len(text):
        if text[position] == "]":
            assert not text[position + 1 :].strip(), f"data after the array: {text!r}"
            return elements, True
        if elements:
            assert text[position] == ",", f"expected ',' or ']' at {position}: {text!r}"
            position = _skip_space(text, position + 1)
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return elements, False  # the element is not complete yet
        elements.append(value)
        position = _skip_space(text, position)
    return elements, False


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


@dataclass
class Streamed:
    status: int
    content_type: str
    framer: Framer
    ended_at: float


def stream(http: httpx.Client, fmt: str, query: dict[str, str]) -> Streamed:
    headers = {} if fmt == "array" else {"x-stream": fmt}
    framer = Framer(fmt)
    with http.stream("GET", STREAM, params=query, headers=headers) as response:
        for chunk in response.iter_raw():
            framer.feed(chunk, time.monotonic())
        ended_at = time.monotonic()
        return Streamed(
            response.status_code, response.headers.get("content-type", ""), framer, ended_at
        )


def book(i: int) -> dict[str, Any]:
    return {
        "name": f"shelves/7/books/{i}",
        "id": str(i),
        "title": f"Volume {i} \u2014 \u7b2c{i}\u5377",
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_whole_stream(client: httpx.Client, fmt: str) -> None:
    answer = stream(client, fmt, {"count": "3"})
    assert answer.status == 200
    assert answer.content_type.split(";")[0] == CONTENT_TYPES[fmt]
    assert answer.framer.messages == [book(1), book(2), book(3)]
    assert answer.framer.errors == []
    assert answer.framer.closed if fmt == "array" else not answer.framer.buffer.strip()


@pytest.mark.parametrize("fmt", FORMATS)
def test_first_message_arrives_before_the_last_is_sent(client: httpx.Client, fmt: str) -> None:
    answer = stream(client, fmt, {"count": "3", "delay_seconds": str(DELAY_SECONDS)})
    assert answer.status == 200
    assert answer.framer.messages == [book(1), book(2), book(3)]
    first = answer.framer.records[0].at
    # The backend sends message 3 two delays after message 1; a gateway that
    # buffered the stream would deliver message 1 only when the call ended.
    assert answer.ended_at - first >= MIN_LEAD_SECONDS, (
        f"message 1 reached the client {answer.ended_at - first:.3f}s before the end"
    )
    assert [r.at for r in answer.framer.records] == sorted(r.at for r in answer.framer.records)


@pytest.mark.parametrize("fmt", FORMATS)
def test_error_after_first_message_ends_with_an_error_record(
    client: httpx.Client, fmt: str
) -> None:
    answer = stream(client, fmt, {"count": "2", "fail_code": "5", "fail_message": "gone"})
    # The status line went out with message 1; the failure must be in the body.
    assert answer.status == 200
    assert answer.framer.messages == [book(1), book(2)]
    assert [r.kind for r in answer.framer.records] == ["message", "message", "error"]
    error = answer.framer.errors[0]
    assert error["code"] == 5
    assert error["message"] == "gone"
    assert error.get("details", []) == []
    if fmt == "array":
        assert answer.framer.closed, "the array must be closed after the error element"
    else:
        assert not answer.framer.buffer.strip()


@pytest.mark.parametrize("fmt", FORMATS)
def test_error_after_slow_first_message(client: httpx.Client, fmt: str) -> None:
    answer = stream(client, fmt, {"count": "1", "delay_seconds": "0.3", "fail_code": "14"})
    assert answer.status == 200
    assert [r.kind for r in answer.framer.records] == ["message", "error"]
    assert answer.framer.errors[0]["code"] == 14
    assert answer.framer.errors[0]["message"] == "stream failed with UNAVAILABLE"


@pytest.mark.parametrize("fmt", FORMATS)
def test_error_before_first_message_is_a_plain_error(client: httpx.Client, fmt: str) -> None:
    headers = {} if fmt == "array" else {"x-stream": fmt}
    answer = client.get(STREAM, params={"count": "101"}, headers=headers)
    assert answer.status_code == 400
    assert answer.headers["content-type"].split(";")[0] == "application/json"
    body = answer.json()
    assert body["code"] == 3
    assert body["message"] == "invalid count: must be in 1..100"
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"


@pytest.mark.parametrize("fmt", FORMATS)
def test_unary_methods_are_not_framed(client: httpx.Client, fmt: str) -> None:
    headers = {} if fmt == "array" else {"x-stream": fmt}
    answer = client.get("/v1/shelves/1", headers=headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == "application/json"
    assert answer.json() == {"id": "1", "theme": "Fiction", "name": "shelves/1"}
