"""The dubbo2 frame codec: header layout, bodies, heartbeats, and stream reassembly."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dubbo.errors import DubboProtocolError
from gateway.dubbo.hessian2 import JavaLong, JavaObject, TypedList, decode_all, encode
from gateway.dubbo.invocation import Invocation, generic_invocation, invocation
from gateway.dubbo.jvm_types import (
    descriptor_for,
    descriptor_of,
    java_type_name,
    split_descriptors,
)
from gateway.dubbo.protocol import (
    Event,
    Frame,
    FrameDecoder,
    Heartbeat,
    Request,
    Response,
    ResponseKind,
    Status,
    encode_frame,
    encode_heartbeat,
    encode_request,
    encode_response,
)

GREETER = "org.apache.dubbo.samples.Greeter"


def header(frame: bytes) -> tuple[int, int, int, int, int]:
    magic, flags, status, request_id, length = struct.unpack(">HBBqi", frame[:16])
    return magic, flags, status, request_id, length


def only_frame(data: bytes) -> Frame:
    frames = FrameDecoder().feed(data)
    assert len(frames) == 1
    return frames[0]


# -- descriptors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("java", "descriptor"),
    [
        ("java.lang.String", "Ljava/lang/String;"),
        ("int", "I"),
        ("long", "J"),
        ("boolean", "Z"),
        ("byte", "B"),
        ("char", "C"),
        ("short", "S"),
        ("float", "F"),
        ("double", "D"),
        ("long[]", "[J"),
        ("java.lang.String[][]", "[[Ljava/lang/String;"),
        ("[Ljava.lang.Object;", "[Ljava/lang/Object;"),
        ("[I", "[I"),
        ("java.util.Map", "Ljava/util/Map;"),
        ("a.Outer$Inner", "La/Outer$Inner;"),
    ],
)
def test_descriptor_of_java_type(java: str, descriptor: str) -> None:
    assert descriptor_of(java) == descriptor
    assert split_descriptors(descriptor) == [descriptor]


def test_descriptor_for_a_parameter_list_round_trips() -> None:
    types = ["java.lang.String", "int", "long[]", "java.util.List", "java.lang.Object[]"]
    desc = descriptor_for(types)
    assert desc == "Ljava/lang/String;I[JLjava/util/List;[Ljava/lang/Object;"
    assert [java_type_name(d) for d in split_descriptors(desc)] == types
    assert split_descriptors("") == []


@pytest.mark.parametrize("bad", ["", "java.lang.String;", "a b", "[Ljava.lang.String", "[Q"])
def test_malformed_java_type_names_are_rejected(bad: str) -> None:
    with pytest.raises(DubboProtocolError):
        descriptor_of(bad)


@pytest.mark.parametrize("bad", ["Ljava/lang/String", "[", "Q", "L;", "V"])
def test_malformed_descriptors_are_rejected(bad: str) -> None:
    with pytest.raises(DubboProtocolError):
        split_descriptors(bad)


# -- requests ------------------------------------------------------------------------


def test_request_header_and_body_follow_dubbo_codec() -> None:
    call = invocation(
        GREETER, "sayHello", ["java.lang.String"], ["world"], version="1.0.0", timeout_ms=3000
    )
    frame = encode_request(Request(7, call))
    magic, flags, status, request_id, length = header(frame)
    assert (magic, flags, status, request_id) == (0xDABB, 0xC2, 0, 7)
    assert length == len(frame) - 16
    assert decode_all(frame[16:]) == [
        "2.0.2",
        GREETER,
        "1.0.0",
        "sayHello",
        "Ljava/lang/String;",
        "world",
        {"path": GREETER, "interface": GREETER, "version": "1.0.0", "timeout": "3000"},
    ]


def test_one_way_request_clears_the_two_way_bit() -> None:
    frame = encode_request(Request(1, invocation(GREETER, "ping", [], []), two_way=False))
    assert header(frame)[1] == 0x82


def test_request_decodes_to_the_same_invocation() -> None:
    call = invocation(
        GREETER,
        "save",
        ["a.User", "long", "java.util.List"],
        [JavaObject("a.User", {"name": "x"}), JavaLong(3), [1, 2]],
        group="g1",
    )
    assert only_frame(encode_request(Request(99, call))) == Request(99, call)


def test_generic_invocation_is_invoke_with_string_and_object_arrays() -> None:
    call = generic_invocation(
        GREETER, "sayHello", ["java.lang.String"], ["world"], attachments={"tenant": "t1"}
    )
    assert call.method_name == "$invoke"
    assert call.parameter_types == "Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;"
    assert call.args == (
        "sayHello",
        TypedList("[string", ["java.lang.String"]),
        TypedList("[object", ["world"]),
    )
    assert call.attachments["generic"] == "true"
    assert call.attachments["tenant"] == "t1"
    assert only_frame(encode_request(Request(5, call))) == Request(5, call)


def test_argument_count_must_match_the_descriptor() -> None:
    bad = Invocation(GREETER, "sayHello", "Ljava/lang/String;I", ("only one",))
    with pytest.raises(DubboProtocolError, match="1 arguments for 2 parameter types"):
        encode_request(Request(1, bad))


# -- responses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        Response(1, kind=ResponseKind.VALUE, value="hi"),
        Response(2, kind=ResponseKind.NULL_VALUE),
        Response(3, kind=ResponseKind.EXCEPTION, exception=JavaObject("a.Err", {"x": 1})),
        Response(4, kind=ResponseKind.VALUE_WITH_ATTACHMENTS, value=[1], attachments={"a": "b"}),
        Response(5, kind=ResponseKind.NULL_VALUE_WITH_ATTACHMENTS, attachments={"dubbo": "2.0.2"}),
        Response(
            6,
            kind=ResponseKind.EXCEPTION_WITH_ATTACHMENTS,
            exception=JavaObject("a.Err", {}),
            attachments={},
        ),
        Response(7, status=Status.SERVICE_NOT_FOUND, error_message="Not found exported service"),
        Response(8, status=Status.SERVER_TIMEOUT, error_message=None),
    ],
)
def test_every_response_kind_round_trips(response: Response) -> None:
    assert only_frame(encode_response(response)) == response


def test_response_body_starts_with_its_kind_as_a_hessian_int() -> None:
    frame = encode_response(Response(1, value="hi"))
    _, flags, status, request_id, _ = header(frame)
    assert (flags, status, request_id) == (0x02, 20, 1)
    assert frame[16:] == encode(4, "hi", {})


def test_error_status_carries_a_string_body() -> None:
    frame = encode_response(Response(3, status=Status.BAD_REQUEST, error_message="bad"))
    assert header(frame)[2] == 40
    assert frame[16:] == b"\x03bad"


def test_failure_message_of_exception_and_status() -> None:
    throwable = JavaObject("java.lang.IllegalStateException", {"detailMessage": "boom"})
    thrown = Response(1, kind=ResponseKind.EXCEPTION, exception=throwable)
    assert not thrown.ok
    assert thrown.failure_message() == "java.lang.IllegalStateException: boom"
    timed_out = Response(2, status=Status.SERVER_TIMEOUT, error_message="waited 3000 ms")
    assert timed_out.failure_message() == "SERVER_TIMEOUT: waited 3000 ms"
    assert Response(3, status=77).failure_message() == "status 77"
    assert Response(4, value=1).failure_message() is None


# -- heartbeats and events -------------------------------------------------------------


def test_heartbeat_bytes_match_java() -> None:
    ping = encode_heartbeat(9)
    assert ping.hex() == "dabbe200" + "0000000000000009" + "00000001" + "4e"
    pong = encode_heartbeat(9, is_request=False)
    assert pong.hex() == "dabb2214" + "0000000000000009" + "00000001" + "4e"
    assert only_frame(ping) == Heartbeat(9, is_request=True, two_way=True)
    assert only_frame(pong) == Heartbeat(9, is_request=False, two_way=False)


def test_event_with_a_payload_is_not_a_heartbeat() -> None:
    readonly = Event(4, is_request=True, data="R", two_way=False)
    assert only_frame(encode_frame(readonly)) == readonly


# -- the frame decoder ----------------------------------------------------------------


def test_partial_frames_wait_for_more_bytes() -> None:
    data = encode_response(Response(1, value="x" * 100))
    decoder = FrameDecoder()
    assert decoder.feed(data[:10]) == []
    assert decoder.feed(data[10:-1]) == []
    assert decoder.buffered == len(data) - 1
    assert decoder.feed(data[-1:]) == [
        Response(1, kind=ResponseKind.VALUE_WITH_ATTACHMENTS, value="x" * 100)
    ]
    assert decoder.buffered == 0


def test_bad_magic_is_fatal() -> None:
    with pytest.raises(DubboProtocolError, match="bad magic 0x4854"):
        FrameDecoder().feed(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def test_oversized_body_is_rejected_from_the_header() -> None:
    frame = encode_response(Response(1, value=b"\x00" * 2000))
    with pytest.raises(DubboProtocolError, match="exceeds the limit of 1024"):
        FrameDecoder(max_body_length=1024).feed(frame[:16])


def test_undecodable_response_fails_only_its_request() -> None:
    broken = struct.pack(">HBBqi", 0xDABB, 0x02, 20, 11, 2) + b"\x94\x40"
    wrong_serialization = struct.pack(">HBBqi", 0xDABB, 0x06, 20, 12, 1) + b"\x90"
    good = encode_response(Response(13, kind=ResponseKind.VALUE, value=1))
    responses = [
        f
        for f in FrameDecoder().feed(broken + wrong_serialization + good)
        if isinstance(f, Response)
    ]
    assert [(r.request_id, r.status) for r in responses] == [
        (11, Status.CLIENT_ERROR),
        (12, Status.CLIENT_ERROR),
        (13, Status.OK),
    ]
    assert "unexpected byte 0x40" in (responses[0].error_message or "")
    assert "serialization id 6" in (responses[1].error_message or "")


def test_undecodable_request_is_a_protocol_error() -> None:
    broken = struct.pack(">HBBqi", 0xDABB, 0xC2, 0, 1, 1) + b"\x40"
    with pytest.raises(DubboProtocolError, match="request 1: undecodable body"):
        FrameDecoder().feed(broken)


args = st.one_of(
    st.none(),
    st.integers(-(2**31), 2**31 - 1),
    st.text(max_size=20),
    st.lists(st.integers(0, 100), max_size=4),
)
request_ids = st.integers(-(2**63), 2**63 - 1)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    request_id = draw(request_ids)
    kind = draw(st.sampled_from(["request", "response", "error", "ping", "pong"]))
    if kind == "request":
        values = draw(st.lists(args, max_size=3))
        call = Invocation(
            service_path=draw(st.sampled_from([GREETER, "a.B"])),
            method_name=draw(st.sampled_from(["m", "sayHello"])),
            parameter_types="Ljava/lang/Object;" * len(values),
            args=tuple(values),
            attachments=draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5))),
            service_version=draw(st.none() | st.just("1.0.0")),
        )
        return Request(request_id, call, draw(st.booleans()))
    if kind == "response":
        value: Any = draw(args)
        return Response(request_id, kind=ResponseKind.VALUE_WITH_ATTACHMENTS, value=value)
    if kind == "error":
        return Response(request_id, status=Status.SERVICE_ERROR, error_message=draw(st.text()))
    return Heartbeat(request_id, is_request=kind == "ping", two_way=kind == "ping")


@settings(max_examples=150, deadline=None)
@given(st.lists(frames(), max_size=6), st.data())
def test_any_chunking_of_a_stream_yields_the_same_frames(
    originals: list[Frame], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(frame) for frame in originals)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = FrameDecoder()
    received: list[Frame] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        received += decoder.feed(stream[start:cut])
        start = cut
    assert received == originals
    assert decoder.buffered == 0
