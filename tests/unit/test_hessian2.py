"""The hessian2 codec: spec vectors, error handling, and round-trip properties."""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dubbo.hessian2 import (
    Hessian2Decoder,
    Hessian2Encoder,
    HessianError,
    JavaLong,
    JavaObject,
    TypedList,
    TypedMap,
    decode,
    decode_all,
    encode,
    exception_summary,
    from_jsonable,
    to_jsonable,
)
from tests.support.hessian_vectors import assert_same

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def h(text: str) -> bytes:
    """Bytes written the way the spec writes them: hex pairs and 'quoted' ASCII."""
    out = bytearray()
    for token in text.split():
        if token.startswith("'"):
            out += token.strip("'").encode()
        else:
            out += bytes.fromhex(token)
    return bytes(out)


# -- vectors from the Hessian 2.0 serialization spec (hessian-lite where it differs) --

SPEC_VECTORS: list[tuple[str, Any]] = [
    ("4e", None),
    ("54", True),
    ("46", False),
    ("90", 0),
    ("80", -16),
    ("bf", 47),
    ("c8 00", 0),
    ("c0 00", -2048),
    ("c7 00", -256),
    ("cf ff", 2047),
    ("d4 00 00", 0),
    ("d0 00 00", -262144),
    ("d7 ff ff", 262143),
    ("49 00 00 00 00", 0),
    ("49 00 00 01 2c", 300),
    ("e0", JavaLong(0)),
    ("d8", JavaLong(-8)),
    ("ef", JavaLong(15)),
    ("f8 00", JavaLong(0)),
    ("f0 00", JavaLong(-2048)),
    ("f7 00", JavaLong(-256)),
    ("ff ff", JavaLong(2047)),
    ("3c 00 00", JavaLong(0)),
    ("38 00 00", JavaLong(-262144)),
    ("3f ff ff", JavaLong(262143)),
    ("59 00 00 00 00", JavaLong(0)),
    ("59 00 00 01 2c", JavaLong(300)),
    ("4c 00 00 00 00 00 00 01 2c", JavaLong(300)),
    ("5b", 0.0),
    ("5c", 1.0),
    ("5d 00", 0.0),
    ("5d 80", -128.0),
    ("5d 7f", 127.0),
    ("5e 00 00", 0.0),
    ("5e 80 00", -32768.0),
    ("5e 7f ff", 32767.0),
    # hessian-lite's 0x5f is an int32 count of thousandths (the spec's float32 form is unused).
    ("5f 00 00 2f da", 12.25),
    ("44 40 28 80 00 00 00 00 00", 12.25),
    ("4a 00 00 00 d0 4b 92 84 b8", EPOCH + timedelta(milliseconds=894621091000)),
    ("4b 00 e3 83 8f", EPOCH + timedelta(minutes=14910351)),
    ("00", ""),
    ("05 'hello'", "hello"),
    ("01 c3 83", "\u00c3"),
    ("53 00 05 'hello'", "hello"),
    ("52 00 02 'he' 03 'llo'", "hello"),
    ("52 00 01 'h' 30 04 'ello'", "hello"),
    ("20", b""),
    ("23 01 02 03", b"\x01\x02\x03"),
    ("42 00 03 01 02 03", b"\x01\x02\x03"),
    ("41 00 01 01 22 02 03", b"\x01\x02\x03"),
    ("56 04 '[int' 92 90 91", TypedList("[int", [0, 1])),
    ("55 04 '[int' 90 91 5a", TypedList("[int", [0, 1])),
    ("57 90 91 5a", [0, 1]),
    ("58 92 90 91", [0, 1]),
    ("72 04 '[int' 90 91", TypedList("[int", [0, 1])),
    ("7a 90 91", [0, 1]),
    ("48 91 03 'fee' a0 03 'fie' c9 00 03 'foe' 5a", {1: "fee", 16: "fie", 256: "foe"}),
    (
        "4d 13 'com.caucho.test.Car' 05 'color' 0a 'aquamarine' 05 'model' 06 'Beetle' 5a",
        TypedMap("com.caucho.test.Car", {"color": "aquamarine", "model": "Beetle"}),
    ),
    (
        "43 0b 'example.Car' 92 05 'color' 05 'model' 60 03 'red' 08 'corvette'",
        JavaObject("example.Car", {"color": "red", "model": "corvette"}),
    ),
]


@pytest.mark.parametrize(("spec", "value"), SPEC_VECTORS, ids=[s for s, _ in SPEC_VECTORS])
def test_spec_vector_decodes(spec: str, value: Any) -> None:
    assert_same(decode(h(spec)), value)


def test_objects_reuse_their_class_definition() -> None:
    data = h(
        "43 0b 'example.Car' 92 05 'color' 05 'model'"
        " 4f 90 03 'red' 08 'corvette' 60 05 'green' 05 'civic'"
    )
    assert decode_all(data) == [
        JavaObject("example.Car", {"color": "red", "model": "corvette"}),
        JavaObject("example.Car", {"color": "green", "model": "civic"}),
    ]


def test_circular_list_from_the_spec() -> None:
    # LinkedList head=1, tail=(head=2, tail=<ref 0>)
    data = h("43 0a 'LinkedList' 92 04 'head' 04 'tail' 60 91 60 92 51 90")
    first = decode(data)
    assert first.fields["head"] == 1
    assert first.fields["tail"].fields["head"] == 2
    assert first.fields["tail"].fields["tail"] is first
    assert encode(first) == data


def test_type_references_reuse_earlier_type_names() -> None:
    data = h("7a 72 04 '[int' 92 93 72 90 94 95")
    first, second = decode(data)
    assert first == TypedList("[int", [2, 3])
    assert second == TypedList("[int", [4, 5])
    assert encode([first, second]) == data


# -- encoder choices ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        (0, "90"),
        (-17, "c7 ef"),
        (262144, "49 00 04 00 00"),
        (2**31, "4c 00 00 00 00 80 00 00 00"),
        (JavaLong(5), "e5"),
        (JavaLong(-(2**31)), "59 80 00 00 00"),
        (-0.0, "5b"),
        (0.5, "5f 00 00 01 f4"),
        (2147483.648, "44 41 40 62 4d d2 f1 a9 fc"),
        ("😀", "02 ed a0 bd ed b8 80"),
        (EPOCH + timedelta(minutes=-1), "4b ff ff ff ff"),
        (EPOCH - timedelta(milliseconds=1), "4a ff ff ff ff ff ff ff ff"),
        (datetime(1970, 1, 1, 1, 0), "4b 00 00 00 3c"),
        ((1, 2), "7a 91 92"),
        ({"a": 1}, "48 01 'a' 91 5a"),
        (TypedMap("java.util.TreeMap", {}), "4d 11 'java.util.TreeMap' 5a"),
        (TypedList("[string", ["a"] * 8), "56 07 '[string' 98" + " 01 'a'" * 8),
    ],
)
def test_encoder_picks_the_compact_form_java_picks(value: Any, spec: str) -> None:
    assert encode(value).hex(" ") == h(spec).hex(" ")


def test_datetime_with_an_offset_is_converted_to_utc_millis() -> None:
    moment = datetime(2024, 1, 1, 1, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert decode(encode(moment)) == datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)


def test_long_string_chunks_never_split_a_surrogate_pair() -> None:
    text = "a" + "😀" * 20000
    data = encode(text)
    assert data[0] == 0x52
    assert int.from_bytes(data[1:3], "big") == 0x7FFF  # 0x8000 would end on a high surrogate
    assert decode(data) == text


def test_four_byte_utf8_from_non_java_peers_is_accepted() -> None:
    assert decode(b"\x03a" + "😀".encode()) == "a😀"


def test_lone_surrogates_survive() -> None:
    for text in ("\ud800", "x\udc00y", "\udbff"):
        assert decode(encode(text)) == text


def test_shared_containers_are_written_once_then_referenced() -> None:
    shared = {"k": 1}
    data = encode([shared, shared, (1,), shared])
    assert data == h("7c 48 01 'k' 91 5a 51 91 79 91 51 91")
    decoded = decode(data)
    assert decoded[0] is decoded[1] is decoded[3]


def test_encoder_never_mistakes_a_dead_object_for_a_live_one() -> None:
    encoder = Hessian2Encoder()
    for i in range(50):
        encoder.write([i])  # each list dies after the call; ids may be recycled
    assert decode_all(encoder.getvalue()) == [[i] for i in range(50)]


def test_unencodable_values_are_rejected() -> None:
    with pytest.raises(HessianError, match="set"):
        encode({1, 2})
    with pytest.raises(HessianError, match="Java long"):
        encode(2**63)
    with pytest.raises(HessianError, match="Java long"):
        encode(JavaLong(-(2**63) - 1))


# -- decoding errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated input: need 1 byte at offset 0"),
        (b"\x40", "unexpected byte 0x40 at offset 0"),
        (b"\x5a", "unexpected byte 0x5a at offset 0"),
        (b"\x49\x00\x00", "need 4 bytes at offset 1"),
        (b"\x05abc", "truncated string"),
        (b"\x52\x00\x01a\x20", "unexpected byte 0x20 at offset 4, expected a string chunk"),
        (b"\x57\x90", "never ends"),
        (b"\x51\x90", "reference 0 .* is undefined"),
        (b"\x60", "class definition 0"),
        (b"\x72\x90", "type reference 0 .* is undefined"),
        (b"\x02\xff\xff", "invalid UTF-8 lead byte 0xff at offset 1"),
        (b"\x01\xc3\x28", "invalid UTF-8"),
        (b"\x48\x7a\x91\x92\x93\x5a", "cannot hash"),
        (b"\x4a\x7f\xff\xff\xff\xff\xff\xff\xff", "outside the years"),
        (b"\x90\x90", "1 unexpected trailing bytes at offset 1"),
    ],
)
def test_malformed_input_names_the_offset(data: bytes, message: str) -> None:
    with pytest.raises(HessianError, match=message):
        decode(data)


def test_nesting_is_bounded() -> None:
    deep = b"\x79" * 1000 + b"\x4e"
    with pytest.raises(HessianError, match="nested deeper than 200"):
        decode(deep)
    assert Hessian2Decoder(b"\x79\x79\x4e", max_depth=2).read() == [[None]]


# -- properties ------------------------------------------------------------------

INT_BOUNDARIES = [
    -16,
    47,
    -17,
    48,
    -2048,
    2047,
    -2049,
    2048,
    -262144,
    262143,
    -262145,
    262144,
    *INT32,
]
LONG_BOUNDARIES = [
    -8,
    15,
    -9,
    16,
    -2048,
    2047,
    -2049,
    2048,
    -262144,
    262143,
    -262145,
    262144,
    *INT32,
    INT32[0] - 1,
    INT32[1] + 1,
    *INT64,
]


def _no_split_pair(text: str) -> bool:
    # Two lone surrogates that happen to form a pair are one character to Java.
    return not any(
        "\ud800" <= a <= "\udbff" and "\udc00" <= b <= "\udfff" for a, b in itertools.pairwise(text)
    )


texts = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40).filter(
    _no_split_pair
)
ints = st.sampled_from(INT_BOUNDARIES) | st.integers(*INT32)
longs = st.builds(JavaLong, st.sampled_from(LONG_BOUNDARIES) | st.integers(*INT64))
doubles = st.floats(allow_nan=False) | st.sampled_from([0.5, -2.5, 12.25, 0.001, 2147483.647])
dates = st.integers(-62135596800000, 253402300799999).map(
    lambda ms: EPOCH + timedelta(milliseconds=ms)
)
leaves = st.none() | st.booleans() | ints | longs | doubles | texts | st.binary(max_size=40) | dates
type_names = st.sampled_from(["[int", "[object", "java.util.LinkedList", "x.Y"])
class_names = st.sampled_from(["a.Pojo", "b.Other", "c.Third"])
field_names = st.lists(st.sampled_from(["id", "name", "next", "tags"]), unique=True, max_size=4)
keys = texts | ints | longs


def _objects(children: st.SearchStrategy[Any]) -> st.SearchStrategy[JavaObject]:
    def build(draw: st.DrawFn) -> JavaObject:
        names = draw(field_names)
        values = draw(st.lists(children, min_size=len(names), max_size=len(names)))
        return JavaObject(draw(class_names), dict(zip(names, values, strict=True)))

    return st.composite(build)()


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    lists = st.lists(children, max_size=9)
    maps = st.dictionaries(keys, children, max_size=5)
    plain = (
        lists
        | maps
        | st.builds(TypedList, type_names, lists)
        | st.builds(TypedMap, type_names, maps)
        | _objects(children)
    )
    # A container that appears twice exercises back-references.
    return plain | plain.map(lambda shared: [shared, "between", shared])


values = st.recursive(leaves, _containers, max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(values)
def test_round_trip(value: Any) -> None:
    assert_same(decode(encode(value)), value)


@settings(max_examples=100, deadline=None)
@given(st.lists(values, max_size=4))
def test_round_trip_of_a_stream_sharing_definitions(stream: list[Any]) -> None:
    decoded = decode_all(encode(*stream))
    assert_same(decoded, stream)


@settings(max_examples=100, deadline=None)
@given(values)
def test_encoding_is_deterministic(value: Any) -> None:
    assert encode(value) == encode(copy.deepcopy(value))


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_doubles_keep_their_bits(value: float) -> None:
    decoded = decode(encode(value))
    if math.isnan(value):
        assert math.isnan(decoded)
    elif value == 0:
        assert decoded == 0.0  # Java too writes -0.0 as the one-byte zero
    else:
        assert struct.pack(">d", decoded) == struct.pack(">d", value)


@settings(max_examples=150, deadline=None)
@given(values)
def test_every_truncation_raises(value: Any) -> None:
    data = encode(value)
    for end in range(len(data)):
        with pytest.raises(HessianError):
            decode(data[:end])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_hessian_error(data: bytes) -> None:
    with contextlib.suppress(HessianError):
        decode(data)


# -- JSON ------------------------------------------------------------------------


def test_to_jsonable_shapes_results_for_http() -> None:
    throwable = JavaObject("java.lang.IllegalStateException", {"detailMessage": "boom"})
    throwable.fields["cause"] = throwable
    value = {
        "user": JavaObject("a.User", {"id": JavaLong(7), "avatar": b"\x00\xff"}),
        "when": EPOCH + timedelta(milliseconds=1500),
        "tags": TypedList("[string", ["x"]),
        "scores": TypedMap("java.util.TreeMap", {1: 2.5, None: 3}),
        "price": JavaObject("java.math.BigDecimal", {"value": "12.34"}),
        "error": throwable,
    }
    assert to_jsonable(value, class_key="class") == {
        "user": {"class": "a.User", "id": 7, "avatar": "AP8="},
        "when": "1970-01-01T00:00:01.500Z",
        "tags": ["x"],
        "scores": {"1": 2.5, "null": 3},
        "price": "12.34",
        "error": {
            "class": "java.lang.IllegalStateException",
            "detailMessage": "boom",
            "cause": None,
        },
    }
    assert to_jsonable(EPOCH + timedelta(milliseconds=1500), dates="millis") == 1500
    assert exception_summary(throwable) == "java.lang.IllegalStateException: boom"


def test_from_jsonable_builds_java_objects_from_class_maps() -> None:
    args = from_jsonable([{"class": "a.User", "id": 7, "tags": [{"k": "v"}]}, 3, "x"])
    assert args == [JavaObject("a.User", {"id": 7, "tags": [{"k": "v"}]}), 3, "x"]
    assert from_jsonable({"class": 5}) == {"class": 5}
    assert to_jsonable(from_jsonable({"class": "a.B", "x": 1}), class_key="class") == {
        "class": "a.B",
        "x": 1,
    }


def test_to_jsonable_bounds_the_expansion_of_shared_references() -> None:
    value: Any = [1]
    for _ in range(40):
        value = [value, value]  # a few hundred bytes on the wire, 2**40 leaves as JSON
    assert len(encode(value)) < 300
    with pytest.raises(HessianError, match="more JSON nodes"):
        to_jsonable(decode(encode(value)), max_nodes=10_000)
