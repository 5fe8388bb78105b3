"""The dubbo2 wire protocol, sans-IO: frames in, events out, bytes back.

Every frame starts with a 16-byte header (Dubbo's ``ExchangeCodec``)::

    0-1   magic 0xdabb
    2     flags: 0x80 request, 0x40 two-way, 0x20 event, low 5 bits serialization id
    3     status (responses only; 20 = OK)
    4-11  request id, a signed 64-bit big-endian integer
    12-15 body length

The body is a hessian2 stream (serialization id 2). A request body holds the
dubbo version, service path, service version, method name, parameter-type
descriptor, each argument, then the attachment map (``DubboCodec``). A
response body holds a response kind and, by kind, the value or the thrown
exception and the attachments; a non-OK status carries an error string
instead. Events with a null payload are heartbeats, sent both ways.

``FrameDecoder`` accepts bytes as they arrive and hands back frames keyed by
request id, so that responses multiplexed over one pooled connection are
matched to their requests.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from gateway.dubbo.errors import DubboProtocolError, HessianError
from gateway.dubbo.hessian2_decode import Hessian2Decoder
from gateway.dubbo.hessian2_encode import Hessian2Encoder
from gateway.dubbo.hessian2_json import exception_summary
from gateway.dubbo.hessian2_types import TypedMap
from gateway.dubbo.invocation import Invocation
from gateway.dubbo.jvm_types import split_descriptors

MAGIC = 0xDABB
HEADER_LENGTH = 16
FLAG_REQUEST = 0x80
FLAG_TWO_WAY = 0x40
FLAG_EVENT = 0x20
SERIALIZATION_MASK = 0x1F
HESSIAN2 = 2
# Dubbo's default "payload" limit: 8 MiB per frame body.
DEFAULT_MAX_BODY_LENGTH = 8 * 1024 * 1024
_HEADER = struct.Struct(">HBBqi")
_NULL_PAYLOAD = b"N"


class Status(IntEnum):
    """The status byte of a response (``org.apache.dubbo.remoting.exchange.Response``)."""

    OK = 20
    CLIENT_TIMEOUT = 30
    SERVER_TIMEOUT = 31
    BAD_REQUEST = 40
    BAD_RESPONSE = 50
    SERVICE_NOT_FOUND = 60
    SERVICE_ERROR = 70
    SERVER_ERROR = 80
    CLIENT_ERROR = 90
    SERVER_THREADPOOL_EXHAUSTED_ERROR = 100


class ResponseKind(IntEnum):
    """The first value of an OK response body (``DubboCodec.RESPONSE_*``)."""

    EXCEPTION = 0
    VALUE = 1
    NULL_VALUE = 2
    EXCEPTION_WITH_ATTACHMENTS = 3
    VALUE_WITH_ATTACHMENTS = 4
    NULL_VALUE_WITH_ATTACHMENTS = 5


_WITH_ATTACHMENTS = frozenset(
    {
        ResponseKind.EXCEPTION_WITH_ATTACHMENTS,
        ResponseKind.VALUE_WITH_ATTACHMENTS,
        ResponseKind.NULL_VALUE_WITH_ATTACHMENTS,
    }
)


@dataclass(frozen=True)
class Request:
    request_id: int
    invocation: Invocation
    two_way: bool = True


@dataclass(frozen=True)
class Response:
    """A reply to ``request_id``; ``status`` other than OK carries ``error_message``."""

    request_id: int
    status: int = Status.OK
    kind: ResponseKind | None = None
    value: Any = None
    exception: Any = None
    attachments: Mapping[str, Any] = field(default_factory=dict)
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.OK and self.exception is None

    def failure_message(self) -> str | None:
        """Why the call failed, or None when it succeeded."""
        if self.status != Status.OK:
            name = _status_name(self.status)
            return f"{name}: {self.error_message or ''}".rstrip(": ")
        if self.exception is not None:
            return exception_summary(self.exception)
        return None


def _status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"status {status}"


@dataclass(frozen=True)
class Heartbeat:
    """An event frame with a null payload: a ping (``is_request``) or its pong."""

    request_id: int
    is_request: bool
    two_way: bool = True


@dataclass(frozen=True)
class Event:
    """An event frame with a payload, e.g. Dubbo's read-only notice ``"R"``."""

    request_id: int
    is_request: bool
    data: Any
    two_way: bool = False


Frame = Request | Response | Heartbeat | Event


# -- encoding ----------------------------------------------------------------


def _frame(flags: int, status: int, request_id: int, body: bytes) -> bytes:
    try:
        header = _HEADER.pack(MAGIC, flags | HESSIAN2, status, request_id, len(body))
    except struct.error as exc:
        raise DubboProtocolError(f"request id {request_id} does not fit in 64 bits") from exc
    return header + body


def encode_request(request: Request) -> bytes:
    inv = request.invocation
    body = Hessian2Encoder()
    body.write(inv.dubbo_version)
    body.write(inv.service_path)
    body.write(inv.service_version)
    body.write(inv.method_name)
    body.write(inv.parameter_types)
    expected = len(split_descriptors(inv.parameter_types))
    if expected != len(inv.args):
        raise DubboProtocolError(
            f"{inv.method_name}: {len(inv.args)} arguments for {expected} parameter types "
            f"{inv.parameter_types!r}"
        )
    for arg in inv.args:
        body.write(arg)
    body.write(dict(inv.attachments))
    flags = FLAG_REQUEST | (FLAG_TWO_WAY if request.two_way else 0)
    return _frame(flags, 0, request.request_id, body.getvalue())


def encode_response(response: Response) -> bytes:
    body = Hessian2Encoder()
    if response.status != Status.OK:
        body.write(response.error_message)
        return _frame(0, response.status, response.request_id, body.getvalue())
    kind = response.kind if response.kind is not None else _kind_for(response)
    body.write_int(kind)
    if kind in (ResponseKind.VALUE, ResponseKind.VALUE_WITH_ATTACHMENTS):
        body.write(response.value)
    elif kind in (ResponseKind.EXCEPTION, ResponseKind.EXCEPTION_WITH_ATTACHMENTS):
        body.write(response.exception)
    if kind in _WITH_ATTACHMENTS:
        body.write(dict(response.attachments))
    return _frame(0, Status.OK, response.request_id, body.getvalue())


def _kind_for(response: Response) -> ResponseKind:
    # Peers of protocol version 2.0.2 and later always send the attachment variants.
    if response.exception is not None:
        return ResponseKind.EXCEPTION_WITH_ATTACHMENTS
    if response.value is None:
        return ResponseKind.NULL_VALUE_WITH_ATTACHMENTS
    return ResponseKind.VALUE_WITH_ATTACHMENTS


def encode_heartbeat(request_id: int, *, is_request: bool = True, two_way: bool = True) -> bytes:
    """A heartbeat ping (``is_request``) or the pong that answers it."""
    if is_request:
        flags = FLAG_REQUEST | FLAG_EVENT | (FLAG_TWO_WAY if two_way else 0)
        return _frame(flags, 0, request_id, _NULL_PAYLOAD)
    return _frame(FLAG_EVENT, Status.OK, request_id, _NULL_PAYLOAD)


def encode_frame(frame: Frame) -> bytes:
    if isinstance(frame, Request):
        return encode_request(frame)
    if isinstance(frame, Response):
        return encode_response(frame)
    if isinstance(frame, Heartbeat):
        return encode_heartbeat(
            frame.request_id, is_request=frame.is_request, two_way=frame.two_way
        )
    body = Hessian2Encoder()
    body.write(frame.data)
    if frame.is_request:
        flags = FLAG_REQUEST | FLAG_EVENT | (FLAG_TWO_WAY if frame.two_way else 0)
        return _frame(flags, 0, frame.request_id, body.getvalue())
    return _frame(FLAG_EVENT, Status.OK, frame.request_id, body.getvalue())


# -- decoding ------------------------------------------------------------------


class FrameDecoder:
    """Turns a byte stream into frames; feed it whatever the socket returned."""

    def __init__(self, *, max_body_length: int = DEFAULT_MAX_BODY_LENGTH) -> None:
        self._buffer = bytearray()
        self._start = 0  # bytes before this offset are consumed; compacted lazily
        self._max_body_length = max_body_length

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer) - self._start

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._start:
            # Drop consumed frames only when new bytes arrive: one copy per chunk,
            # however many frames the previous chunk held.
            del self._buffer[: self._start]
            self._start = 0
        self._buffer += data

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive.

        A broken header raises ``DubboProtocolError``: the stream cannot be
        resynchronised and the connection must close. A response whose body
        does not decode is returned as a CLIENT_ERROR response for its
        request id, as Dubbo does, and the stream goes on.
        """
        start = self._start
        if len(self._buffer) - start < HEADER_LENGTH:
            return None
        magic, flags, status, request_id, length = _HEADER.unpack_from(self._buffer, start)
        if magic != MAGIC:
            raise DubboProtocolError(
                f"bad magic 0x{magic:04x} at the start of a frame, expected 0x{MAGIC:04x}"
            )
        if length < 0 or length > self._max_body_length:
            raise DubboProtocolError(
                f"frame body of {length} bytes for request {request_id} exceeds the "
                f"limit of {self._max_body_length}"
            )
        end = start + HEADER_LENGTH + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[start + HEADER_LENGTH : end])
        self._start = end
        return decode_frame(flags, status, request_id, body)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Receive ``data`` and return every frame it completes."""
        self.receive_data(data)
        frames: list[Frame] = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames


def decode_frame(flags: int, status: int, request_id: int, body: bytes) -> Frame:
    """One frame from its header fields and body."""
    is_request = bool(flags & FLAG_REQUEST)
    two_way = bool(flags & FLAG_TWO_WAY)
    serialization = flags & SERIALIZATION_MASK
    try:
        if serialization != HESSIAN2:
            raise DubboProtocolError(
                f"serialization id {serialization} is not supported, only hessian2 ({HESSIAN2})"
            )
        if flags & FLAG_EVENT and (is_request or status == Status.OK):
            if body in (b"", _NULL_PAYLOAD):
                return Heartbeat(request_id, is_request, two_way)
            data = Hessian2Decoder(body).read()
            return Event(request_id, is_request, data, two_way)
        if is_request:
            return Request(request_id, decode_invocation(body), two_way)
        return decode_response(request_id, status, body)
    except (HessianError, DubboProtocolError) as exc:
        if is_request:
            raise DubboProtocolError(f"request {request_id}: undecodable body: {exc}") from exc
        return Response(
            request_id, Status.CLIENT_ERROR, error_message=f"undecodable response: {exc}"
        )


def decode_invocation(body: bytes) -> Invocation:
    decoder = Hessian2Decoder(body)
    dubbo_version = decoder.read_string()
    service_path = decoder.read_string()
    service_version = decoder.read()
    method_name = decoder.read_string()
    parameter_types = decoder.read_string()
    args = tuple(decoder.read() for _ in split_descriptors(parameter_types))
    attachments = _attachments(decoder.read()) if not decoder.at_end() else {}
    if service_version is not None and not isinstance(service_version, str):
        raise DubboProtocolError(
            f"service version must be a string, got a {type(service_version).__name__}"
        )
    return Invocation(
        service_path=service_path,
        method_name=method_name,
        parameter_types=parameter_types,
        args=args,
        attachments=attachments,
        service_version=service_version,
        dubbo_version=dubbo_version,
    )


def decode_response(request_id: int, status: int, body: bytes) -> Response:
    decoder = Hessian2Decoder(body)
    if status != Status.OK:
        message = decoder.read() if body else None
        return Response(request_id, status, error_message=None if message is None else str(message))
    raw_kind = decoder.read_int()
    try:
        kind = ResponseKind(raw_kind)
    except ValueError as exc:
        raise DubboProtocolError(f"unknown response kind {raw_kind}") from exc
    value = exception = None
    if kind in (ResponseKind.VALUE, ResponseKind.VALUE_WITH_ATTACHMENTS):
        value = decoder.read()
    elif kind in (ResponseKind.EXCEPTION, ResponseKind.EXCEPTION_WITH_ATTACHMENTS):
        exception = decoder.read()
    attachments = _attachments(decoder.read()) if kind in _WITH_ATTACHMENTS else {}
    return Response(request_id, status, kind, value, exception, attachments)


def _attachments(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    entries = value.entries if isinstance(value, TypedMap) else value
    if not isinstance(entries, dict):
        raise DubboProtocolError(f"attachments must be a map, got {type(value).__name__}")
    return {str(key): item for key, item in entries.items()}
