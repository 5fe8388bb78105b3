"""gRPC-Web, Connect and gRPC framing byte for byte, from the specs:
grpc/doc/PROTOCOL-WEB.md, grpc/doc/PROTOCOL-HTTP2.md and
connectrpc.com/docs/protocol."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import MutableMapping
from typing import Any

import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway.errors import Code
from gateway.grpc_front import connect, grpc_web
from gateway.grpc_front.frames import FrameDecoder, FrameError, decompress, encode_frame
from gateway.grpc_front.requests import RequestFailed, RequestPump
from gateway.grpc_front.status import (
    Status,
    encode_grpc_message,
    metadata_fields,
    status_of_error_response,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_frame_is_flags_then_a_big_endian_length_then_the_payload() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert encode_frame(b"", 0x80) == b"\x80\x00\x00\x00\x00"
    assert encode_frame(b"x" * 256, 0x02)[:5] == b"\x02\x00\x00\x01\x00"


def test_the_decoder_takes_frames_split_anywhere_and_refuses_oversize_at_the_prefix() -> None:
    wire = encode_frame(b"hello") + encode_frame(b"", 1) + encode_frame(b"world")
    decoder = FrameDecoder(limit=16)
    frames = [f for i in range(len(wire)) for f in decoder.feed(wire[i : i + 1])]
    assert [(f.flags, f.payload) for f in frames] == [(0, b"hello"), (1, b""), (0, b"world")]
    assert not decoder.pending
    assert decoder.feed(b"\x00\x00") == [] and decoder.pending
    with pytest.raises(FrameError) as refused:
        FrameDecoder(limit=4).feed(b"\x00\x00\x00\x00\x05")  # payload not sent yet
    assert refused.value.too_large


def test_compressed_messages_are_inflated_within_the_limit() -> None:
    assert decompress(gzip.compress(b"abc"), "gzip", 10) == b"abc"
    with pytest.raises(FrameError, match="limit"):
        decompress(gzip.compress(b"a" * 100), "gzip", 10)
    with pytest.raises(FrameError, match="unsupported"):
        decompress(b"x", "snappy", 10)


def test_grpc_web_trailers_frame_bytes() -> None:
    ok = grpc_web.trailer_frame(Status(0))
    assert ok == b"\x80\x00\x00\x00\x10grpc-status: 0\r\n"
    status = Status(
        Code.NOT_FOUND,
        "no book 7 ✓",
        (("x-shelf", "3"), ("x-trace-bin", b"\x00\xff"), ("X-Upper", "v")),
    )
    block = (
        b"grpc-status: 5\r\n"
        b"grpc-message: no book 7 %E2%9C%93\r\n"
        b"x-shelf: 3\r\n"
        b"x-trace-bin: AP8=\r\n"
        b"x-upper: v\r\n"
    )
    assert grpc_web.trailer_frame(status) == b"\x80" + len(block).to_bytes(4, "big") + block


def test_grpc_message_is_percent_encoded_as_the_spec_says() -> None:
    assert encode_grpc_message("plain text") == "plain text"
    assert encode_grpc_message("100%") == "100%25"
    assert encode_grpc_message("a\nb") == "a%0Ab"
    assert encode_grpc_message("é") == "%C3%A9"


def test_binary_metadata_is_base64_and_transport_fields_are_not_copied() -> None:
    fields = metadata_fields(
        [
            ("content-type", "application/grpc"),
            (":status", "200"),
            ("grpc-status-details-bin", b"\x08\x05"),
            ("grpc-status", "5"),
            ("x-a", "1"),
        ]
    )
    assert fields == [("grpc-status-details-bin", "CAU="), ("x-a", "1")]


def test_grpc_web_text_decodes_concatenated_padded_chunks_split_anywhere() -> None:
    frames = encode_frame(b"A") + encode_frame(b"BC")
    # A sender flushes one padded base64 chunk per write.
    text = (
        base64.b64encode(frames[:5]) + base64.b64encode(frames[5:7]) + base64.b64encode(frames[7:])
    )
    assert b"=" in text[:-2]
    decoder = grpc_web.TextDecoder()
    out = b"".join(decoder.feed(text[i : i + 3]) for i in range(0, len(text), 3))
    assert out == frames and not decoder.pending
    assert grpc_web.encode_text(b"\x80\x00") == b"gAA="
    with pytest.raises(FrameError):
        grpc_web.TextDecoder().feed(b"!!!!")


def test_connect_error_json_names_the_code_and_carries_the_details() -> None:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest())
    packed = status_pb2.Status(code=5, message="gone", details=[detail]).SerializeToString()
    status = Status(Code.NOT_FOUND, "gone", (("grpc-status-details-bin", packed),))
    assert json.loads(connect.error_body(status)) == {
        "code": "not_found",
        "message": "gone",
        "details": [{"type": "google.rpc.BadRequest", "value": ""}],
    }
    assert json.loads(connect.error_body(Status(Code.CANCELLED))) == {"code": "canceled"}


@pytest.mark.parametrize(
    ("code", "name", "http"),
    [
        (Code.CANCELLED, "canceled", 499),
        (Code.UNKNOWN, "unknown", 500),
        (Code.INVALID_ARGUMENT, "invalid_argument", 400),
        (Code.DEADLINE_EXCEEDED, "deadline_exceeded", 504),
        (Code.NOT_FOUND, "not_found", 404),
        (Code.ALREADY_EXISTS, "already_exists", 409),
        (Code.PERMISSION_DENIED, "permission_denied", 403),
        (Code.RESOURCE_EXHAUSTED, "resource_exhausted", 429),
        (Code.FAILED_PRECONDITION, "failed_precondition", 400),
        (Code.ABORTED, "aborted", 409),
        (Code.OUT_OF_RANGE, "out_of_range", 400),
        (Code.UNIMPLEMENTED, "unimplemented", 501),
        (Code.INTERNAL, "internal", 500),
        (Code.UNAVAILABLE, "unavailable", 503),
        (Code.DATA_LOSS, "data_loss", 500),
        (Code.UNAUTHENTICATED, "unauthenticated", 401),
    ],
)
def test_connect_codes_and_their_http_statuses(code: int, name: str, http: int) -> None:
    assert connect.CODE_NAMES[code] == name
    assert connect.http_status(code) == http


def test_connect_end_stream_message_bytes() -> None:
    ok = connect.end_stream(Status(0, "", (("x-a", "1"), ("x-a", "2"), ("x-b-bin", b"\x01"))))
    payload = b'{"metadata": {"x-a": ["1", "2"], "x-b-bin": ["AQ=="]}}'
    assert ok == b"\x02" + len(payload).to_bytes(4, "big") + payload
    failed = connect.end_stream(Status(Code.UNAVAILABLE, "down"))
    assert failed[0] == 0x02
    assert json.loads(failed[5:]) == {"error": {"code": "unavailable", "message": "down"}}


def test_connect_unary_trailers_are_prefixed_headers() -> None:
    assert connect.trailer_fields([("x-a", "1"), ("x-b-bin", b"\xff")]) == [
        ("trailer-x-a", "1"),
        ("trailer-x-b-bin", "/w=="),
    ]


def test_connect_get_reads_the_message_from_the_query() -> None:
    got = connect.parse_get(b"encoding=json&message=%7B%22a%22%3A1%7D&connect=v1")
    assert (got.message, got.encoding, got.compression) == (b'{"a":1}', "json", None)
    raw = b"\x0a\x02\xfb\xff"
    query = b"encoding=proto&base64=1&message=" + base64.urlsafe_b64encode(raw).rstrip(b"=")
    assert connect.parse_get(query).message == raw
    with pytest.raises(connect.ConnectRequestError):
        connect.parse_get(b"message=x")
    with pytest.raises(connect.ConnectRequestError):
        connect.parse_get(b"encoding=proto&base64=1&message=***")


def test_connect_timeout_is_milliseconds() -> None:
    assert connect.parse_timeout("1500") == 1.5
    assert connect.parse_timeout(None) is None
    for bad in ("0", "-1", "1.5", "12345678901"):
        with pytest.raises(connect.ConnectRequestError):
            connect.parse_timeout(bad)


def test_content_types_pick_the_codec() -> None:
    assert connect.codec_of("application/connect+json") == "json"
    assert connect.codec_of("application/proto") == "proto"
    assert connect.codec_of("application/json; charset=utf-8") == "json"
    assert connect.codec_of("application/xml") is None


def test_an_http_error_answer_becomes_the_status_it_stands_for() -> None:
    body = json.dumps({"code": 16, "message": "missing token", "details": []}).encode()
    assert status_of_error_response(401, body) == Status(16, "missing token")
    assert status_of_error_response(503, b"busy") == Status(Code.UNAVAILABLE, "busy")
    assert status_of_error_response(404, b"").code == Code.UNIMPLEMENTED
    assert status_of_error_response(418, b"").code == Code.UNKNOWN


class Body:
    """What an ASGI server hands the app: the body in chunks, then (maybe) a disconnect."""

    def __init__(self, *chunks: bytes, disconnect: bool = False) -> None:
        self.events: list[MutableMapping[str, Any]] = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or disconnect}
            for i, c in enumerate(chunks)
        ]
        if disconnect:
            self.events.append({"type": "http.disconnect"})

    async def __call__(self) -> MutableMapping[str, Any]:
        return self.events.pop(0)


async def _all(pump: RequestPump) -> list[bytes]:
    return [m async for m in pump.attempt()]


async def test_the_pump_yields_messages_and_replays_them_until_committed() -> None:
    wire = encode_frame(b"one") + encode_frame(b"two")
    pump = RequestPump(Body(wire[:4], wire[4:9], wire[9:]), 100)
    first = pump.attempt()
    assert await anext(first) == b"one"
    await first.aclose()  # the attempt failed after one message
    assert await _all(pump) == [b"one", b"two"]  # replayed, then read on
    pump.commit()
    assert not pump.replayable and await _all(pump) == []


async def test_the_pump_refuses_oversize_truncated_and_flagged_messages() -> None:
    cases = [
        (Body(encode_frame(b"x" * 11)), "RESOURCE_EXHAUSTED"),
        (Body(encode_frame(b"abc")[:6]), "INVALID_ARGUMENT"),
        (Body(encode_frame(b"abc", 0x80)), "INVALID_ARGUMENT"),
        (Body(encode_frame(b"abc"), disconnect=True), "CANCELLED"),
    ]
    for body, code in cases:
        pump = RequestPump(body, 10)
        with pytest.raises(RequestFailed):
            await _all(pump)
        assert pump.failure is not None and Code(pump.failure.grpc_code).name == code


async def test_the_pump_reads_text_mode_and_gzip_messages() -> None:
    text = base64.b64encode(encode_frame(b"hi")) + base64.b64encode(encode_frame(b"yo"))
    assert await _all(RequestPump(Body(text[:7], text[7:]), 10, text=True)) == [b"hi", b"yo"]
    zipped = encode_frame(gzip.compress(b"hello"), 0x01)
    assert await _all(RequestPump(Body(zipped), 30, compression="gzip")) == [b"hello"]


def _request(method: str, content_type: str | None, query: bytes = b"", **headers: str) -> Any:
    from filters.http import HttpRequest

    header_list = [(k.replace("_", "-"), v) for k, v in headers.items()]
    if content_type is not None:
        header_list.append(("content-type", content_type))
    return HttpRequest(method, "/pkg.S/M", query, header_list)


def test_the_protocol_is_told_by_content_type_method_and_query() -> None:
    from gateway.grpc_front.protocols import Wire, wire_of

    cases = [
        ("POST", "application/grpc", b"", True, Wire.GRPC),
        ("POST", "application/grpc+proto", b"", False, Wire.GRPC),
        ("POST", "application/grpc-web", b"", False, Wire.GRPC_WEB),
        ("POST", "application/grpc-web-text+proto", b"", False, Wire.GRPC_WEB_TEXT),
        ("POST", "application/connect+json", b"", False, Wire.CONNECT_STREAM),
        ("POST", "application/json", b"", True, Wire.CONNECT_UNARY),
        ("POST", "application/json", b"", False, None),  # plain REST elsewhere
        ("GET", None, b"encoding=json&message=%7B%7D", True, Wire.CONNECT_GET),
        ("GET", None, b"encoding=json", False, None),
        ("GET", None, b"connect=v1&encoding=proto", False, Wire.CONNECT_GET),
        ("OPTIONS", None, b"", True, None),  # a CORS preflight is the cors filter's
    ]
    for method, content_type, query, on_route, wire in cases:
        request = _request(method, content_type, query)
        assert wire_of(request, connect_unary=on_route) is wire, (method, content_type, query)
    declared = _request("POST", "application/json", connect_protocol_version="1")
    assert wire_of(declared, connect_unary=False) is Wire.CONNECT_UNARY


def test_an_http_error_is_rewritten_in_the_clients_protocol() -> None:
    from filters.http import HttpResponse
    from gateway.grpc_front.passthrough import rpc_error_response

    denied = HttpResponse(
        401,
        [("content-type", "application/json"), ("www-authenticate", "Bearer")],
        json.dumps({"code": 16, "message": "no token", "details": []}).encode(),
    )
    grpc = rpc_error_response(_request("POST", "application/grpc"), denied, connect_unary=True)
    assert grpc.status == 200 and grpc.body == b""
    assert dict(grpc.headers) == {
        "content-type": "application/grpc",
        "www-authenticate": "Bearer",
        "grpc-status": "16",
        "grpc-message": "no token",
    }
    connect_ = rpc_error_response(_request("POST", "application/proto"), denied, connect_unary=True)
    assert connect_.status == 401
    assert json.loads(connect_.body) == {"code": "unauthenticated", "message": "no token"}
    plain = rpc_error_response(_request("POST", "application/json"), denied, connect_unary=False)
    assert plain is denied  # a REST client keeps its JSON error
