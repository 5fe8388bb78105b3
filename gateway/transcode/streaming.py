"""Framing a stream of JSON messages for HTTP/1.1, sans-IO.

``array`` writes one JSON array, as Envoy does; ``ndjson`` one message per
line; ``sse`` Server-Sent Events. Messages are written as they arrive. An
error after the first message cannot change the status any more, so it is
written into the stream as a last record, never dropped: a client that
reads to the end always learns how the stream ended.
"""

from __future__ import annotations

from typing import Literal

StreamFormat = Literal["array", "ndjson", "sse"]

CONTENT_TYPES: dict[str, str] = {
    "array": "application/json",
    "ndjson": "application/x-ndjson",
    "sse": "text/event-stream",
}


class StreamEncoder:
    __slots__ = ("_count", "format")

    def __init__(self, format: StreamFormat) -> None:
        self.format = format
        self._count = 0

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    def message(self, json: bytes) -> bytes:
        first = self._count == 0
        self._count += 1
        if self.format == "array":
            return (b"[" if first else b",") + json
        if self.format == "ndjson":
            return json + b"\n"
        return b"data: " + json + b"\n\n"

    def error(self, status_json: bytes) -> bytes:
        record = b'{"error":' + status_json + b"}"
        if self.format == "array":
            return (b"[" if self._count == 0 else b",") + record + b"]"
        if self.format == "ndjson":
            return record + b"\n"
        return b"event: error\ndata: " + status_json + b"\n\n"

    def end(self) -> bytes:
        if self.format == "array":
            return b"]" if self._count else b"[]"
        return b""
