"""Parsing what ``meshgate call`` and ``list`` are pointed at."""

from __future__ import annotations

import pytest

from gateway.cli_target import Target, TargetError, parse_method, parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:50051", Target("grpc", "127.0.0.1:50051")),
        ("[::1]:50051", Target("grpc", "[::1]:50051")),
        ("grpc://localhost:50051", Target("grpc", "localhost:50051")),
        ("xds:///greeter.default.svc:50051", Target("xds", "greeter.default.svc:50051")),
        ("tri://127.0.0.1:50052", Target("tri", "127.0.0.1:50052")),
        (
            "tri://127.0.0.1:50052?group=g1&version=1.0.0",
            Target("tri", "127.0.0.1:50052", "g1", "1.0.0"),
        ),
        ("dubbo://127.0.0.1:20880?version=2.0", Target("dubbo", "127.0.0.1:20880", None, "2.0")),
    ],
)
def test_targets(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


def test_each_scheme_reaches_its_protocol() -> None:
    assert parse_target("1.2.3.4:5").protocol == "grpc"
    assert parse_target("xds:///a:1").protocol == "grpc"
    assert parse_target("tri://a:1").protocol == "triple"
    assert parse_target("dubbo://a:1").protocol == "dubbo"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("localhost", "expected host:port"),
        ("http://a:1", "unknown scheme"),
        ("xds://authority/a:1", "no authority"),
        ("tri://a:1/org.Greeter", "has no path"),
        ("dubbo://a:1?grup=x", "unknown parameters"),
        ("tri://a:99999", "expected host:port"),
    ],
)
def test_bad_targets_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(TargetError, match=problem):
        parse_target(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pkg.Service/Method", ("pkg.Service", "Method")),
        ("/pkg.Service/Method", ("pkg.Service", "Method")),
        ("pkg.Service.Method", ("pkg.Service", "Method")),
        ("org.apache.dubbo.Greeter/greet", ("org.apache.dubbo.Greeter", "greet")),
    ],
)
def test_methods(text: str, expected: tuple[str, str]) -> None:
    assert parse_method(text) == expected


@pytest.mark.parametrize("text", ["Method", "pkg.Service/", "/Method"])
def test_bad_methods(text: str) -> None:
    with pytest.raises(TargetError):
        parse_method(text)
