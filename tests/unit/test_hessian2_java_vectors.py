"""Our hessian2 codec against hessian-lite, the serializer of Apache Dubbo.

Three checks per named value: the bytes Java writes decode to the value we
expect; our encoder writes the very same bytes; and Java decodes the bytes we
write (from our own value, and re-encoded from what we decoded) back to its
own value. Needs Maven and a JDK (skips without them, fails under CI).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.dubbo.hessian2 import (
    JavaLong,
    JavaObject,
    TypedList,
    TypedMap,
    decode,
    decode_all,
    encode,
    exception_summary,
)
from gateway.dubbo.invocation import generic_invocation
from gateway.dubbo.protocol import Request, encode_request
from tests.support import hessian_vectors
from tests.support.hessian_vectors import assert_same
from tests.support.toolchain import require_binary

POJO = "meshgate.vectors.HessianVectors$Pojo"
GREETER = "org.apache.dubbo.samples.Greeter"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def pojo(name: str, age: int, score: int = 0, tags: Any = None, nxt: Any = None) -> JavaObject:
    # hessian-lite writes a class's fields in reverse declaration order.
    return JavaObject(
        POJO, {"next": nxt, "tags": tags, "score": JavaLong(score), "age": age, "name": name}
    )


def pattern(length: int) -> bytes:
    return bytes(i % 251 for i in range(length))


def date(millis: int) -> datetime:
    return EPOCH + timedelta(milliseconds=millis)


def _expected() -> dict[str, Any]:
    v: dict[str, Any] = {"null": None, "true": True, "false": False}
    for i in (
        0,
        1,
        -1,
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
        -(2**31),
        2**31 - 1,
    ):
        v[f"int:{i}"] = i
    for n in (
        0,
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
        -(2**31),
        2**31 - 1,
        -(2**31) - 1,
        2**31,
        -(2**63),
        2**63 - 1,
    ):
        v[f"long:{n}"] = JavaLong(n)
    doubles = {
        "0.0": 0.0,
        "1.0": 1.0,
        "-1.0": -1.0,
        "127.0": 127.0,
        "-128.0": -128.0,
        "128.0": 128.0,
        "-129.0": -129.0,
        "32767.0": 32767.0,
        "-32768.0": -32768.0,
        "32768.0": 32768.0,
        "0.5": 0.5,
        "-2.5": -2.5,
        "12.25": 12.25,
        "0.001": 0.001,
        "0.1": 0.1,
        "2147483.647": 2147483.647,
        "2147483.648": 2147483.648,
        "-2147483.648": -2147483.648,
        "3.141592653589793": math.pi,
        "1.0E300": 1e300,
        "1.0E-300": 1e-300,
        "NaN": math.nan,
        "Infinity": math.inf,
        "-Infinity": -math.inf,
    }
    v.update({f"double:{name}": value for name, value in doubles.items()})
    v.update(
        {
            "string:empty": "",
            "string:a": "a",
            "string:31": "a" * 31,
            "string:32": "a" * 32,
            "string:1023": "b" * 1023,
            "string:1024": "b" * 1024,
            "string:32768": "c" * 32768,
            "string:32769": "c" * 32769,
            "string:70000": "d" * 70000,
            "string:latin": "héllo wörld",
            "string:cjk": "中文字符",
            "string:emoji": "😀",
            "string:mixed": "a😀bé中",
            "string:emoji-chunk-boundary": "a" + "😀" * 20000,
            "string:nul": "\0x\0",
            "string:lone-surrogate": "x\ud800y",
        }
    )
    for length in (0, 1, 15, 16, 1023, 1024, 70000):
        v[f"binary:{length}"] = pattern(length)
    for millis in (0, 1699999980000, 1700000000000, -60000, -1, 1234567890123):
        v[f"date:{millis}"] = date(millis)
    shared = {"k": 1}
    v.update(
        {
            "list:empty": [],
            "list:mixed": [1, "two", 3.5, None, True],
            "list:7": [1, 2, 3, 4, 5, 6, 7],
            "list:8": [1, 2, 3, 4, 5, 6, 7, 8],
            "list:nested": [[1, 2], [3]],
            "list:linked": TypedList("java.util.LinkedList", [1, 2]),
            "array:int": TypedList("[int", [1, 2, 3]),
            "array:int-empty": TypedList("[int", []),
            "array:int-10": TypedList("[int", list(range(10))),
            "array:long": TypedList("[long", [JavaLong(1), JavaLong(2)]),
            "array:double": TypedList("[double", [1.5, 2.0]),
            "array:boolean": TypedList("[boolean", [True, False]),
            "array:string": TypedList("[string", ["a", "b"]),
            "array:object": TypedList("[object", [1, "x", None]),
            "array:pojo": TypedList("[" + POJO, [pojo("a", 1), pojo("b", 1)]),
            "map:empty": {},
            "map:string": {"a": 1, "b": "x"},
            "map:int-keys": {1: "one", 2: "two"},
            "map:nested": {"list": [1, 2], "map": {"k": "v"}},
            "map:tree": TypedMap("java.util.TreeMap", {"k": "v"}),
            "object:pojo": pojo("alice", 30, 5, ["x", "y"]),
            "object:pojo-list": [pojo("a", 1), pojo("b", 1)],
            "object:pojo-nested": pojo("outer", 1, 2, None, pojo("inner", 5)),
            "ref:shared": [shared, shared],
            "object:enum": JavaObject("java.util.concurrent.TimeUnit", {"name": "SECONDS"}),
            "object:bigdecimal": JavaObject("java.math.BigDecimal", {"value": "12.34"}),
            "stream:pojo-twice": [pojo("a", 1), pojo("b", 1)],
            "stream:dubbo-response": [4, "hello", {"dubbo": "2.0.2"}],
            "stream:dubbo-generic-request": [
                "2.0.2",
                GREETER,
                "1.0.0",
                "$invoke",
                "Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;",
                "sayHello",
                TypedList("[string", ["java.lang.String"]),
                TypedList("[object", ["world"]),
                {"path": GREETER, "interface": GREETER, "version": "1.0.0", "generic": "true"},
            ],
        }
    )
    return v


EXPECTED = _expected()
# Values checked by hand below rather than by equality.
SPECIAL = ("ref:cycle", "exception")
# Java cuts long binaries into chunks sized by its output buffer, so only the
# value, not the byte layout, can match.
LAYOUT_DIFFERS = {"binary:70000"}


def encode_expected(name: str) -> bytes:
    value = EXPECTED[name]
    return encode(*value) if name.startswith("stream:") else encode(value)


def decode_named(name: str, data: bytes) -> Any:
    return decode_all(data) if name.startswith("stream:") else decode(data)


@pytest.fixture(scope="module")
def build_dir() -> Path:
    mvn = require_binary("mvn", "Maven builds the hessian-lite vector generator")
    require_binary("java", "a JDK runs the hessian-lite vector generator")
    return hessian_vectors.build(mvn)


@pytest.fixture(scope="module")
def java(build_dir: Path) -> dict[str, hessian_vectors.JavaVector]:
    return hessian_vectors.java_vectors(build_dir)


@pytest.fixture(scope="module")
def java_verdicts(
    build_dir: Path, java: dict[str, hessian_vectors.JavaVector]
) -> dict[str, list[hessian_vectors.JavaCheck]]:
    items: list[tuple[str, bytes]] = []
    for name in EXPECTED:
        items.append((name, encode_expected(name)))
    for name, vector in java.items():
        # What we decoded from Java, written back: the round trip through Python.
        decoded = decode_named(name, vector.data)
        items.append((name, encode(*decoded) if name.startswith("stream:") else encode(decoded)))
    verdicts: dict[str, list[hessian_vectors.JavaCheck]] = {}
    for check in hessian_vectors.java_check(build_dir, items):
        verdicts.setdefault(check.name, []).append(check)
    return verdicts


def test_python_and_java_tables_name_the_same_values(
    java: dict[str, hessian_vectors.JavaVector],
) -> None:
    assert set(java) == set(EXPECTED) | set(SPECIAL)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_java_bytes_decode_to_the_expected_value(
    name: str, java: dict[str, hessian_vectors.JavaVector]
) -> None:
    assert_same(decode_named(name, java[name].data), EXPECTED[name])


@pytest.mark.parametrize("name", [n for n in EXPECTED if n not in LAYOUT_DIFFERS])
def test_our_bytes_are_javas_bytes(name: str, java: dict[str, hessian_vectors.JavaVector]) -> None:
    assert encode_expected(name).hex() == java[name].data.hex()


@pytest.mark.parametrize("name", [*EXPECTED, *SPECIAL])
def test_java_decodes_our_bytes_to_its_own_value(
    name: str, java_verdicts: dict[str, list[hessian_vectors.JavaCheck]]
) -> None:
    checks = java_verdicts[name]
    assert checks, f"no verdict for {name}"
    for check in checks:
        assert check.error is None, check.error
        assert check.equal, f"java expected {check.expected}\n   java decoded {check.actual}"


def test_shared_reference_decodes_to_one_object(
    java: dict[str, hessian_vectors.JavaVector],
) -> None:
    first, second = decode(java["ref:shared"].data)
    assert first is second


def test_cycle_decodes_to_an_object_that_contains_itself(
    java: dict[str, hessian_vectors.JavaVector],
) -> None:
    value = decode(java["ref:cycle"].data)
    assert isinstance(value, JavaObject)
    assert value.fields["next"] is value
    assert value.fields["name"] == "self"
    assert encode(value) == java["ref:cycle"].data


def test_exception_message_is_extracted(java: dict[str, hessian_vectors.JavaVector]) -> None:
    value = decode(java["exception"].data)
    assert exception_summary(value) == "java.lang.IllegalStateException: boom"
    assert value.fields["cause"] is value  # Throwable.cause defaults to the throwable itself


def test_java_reads_our_generic_request_body(build_dir: Path) -> None:
    call = generic_invocation(GREETER, "sayHello", ["java.lang.String"], ["world"], version="1.0.0")
    body = encode_request(Request(1, call))[16:]
    [check] = hessian_vectors.java_check(build_dir, [("stream:dubbo-generic-request", body)])
    assert check.error is None, check.error
    assert check.equal, f"java expected {check.expected}\n   java decoded {check.actual}"
