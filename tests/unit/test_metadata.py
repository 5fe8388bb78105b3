from __future__ import annotations

import pytest

from gateway.errors import BadRequest
from gateway.upstream.metadata import (
    deadline_from_headers,
    parse_grpc_timeout,
    parse_request_timeout,
    request_metadata,
    response_headers,
)


def test_request_headers_become_metadata_with_the_documented_exceptions() -> None:
    metadata = request_metadata(
        [
            ("x-tenant", "acme"),
            ("x-tenant", "other"),
            ("connection", "close"),
            ("host", "gw"),
            ("content-type", "application/json"),
            ("content-length", "3"),
            ("te", "trailers"),
            ("grpc-timeout", "1S"),
            ("grpc-encoding", "gzip"),
            ("user-agent", "curl"),
            ("x-request-timeout", "5"),
            (":authority", "x"),
            ("authorization", "Bearer t"),
            ("x-accent", "caf\u00e9"),
        ]
    )
    assert metadata == (("x-tenant", "acme"), ("x-tenant", "other"), ("authorization", "Bearer t"))


@pytest.mark.parametrize("value", ["AQL+", "AQL-", "AQL+/w==", "AQL+/w"])
def test_binary_headers_are_base64_padded_or_not(value: str) -> None:
    [(name, decoded)] = request_metadata([("x-b-bin", value)])
    assert name == "x-b-bin"
    assert isinstance(decoded, bytes)


def test_undecodable_binary_header_is_400() -> None:
    with pytest.raises(BadRequest, match="x-b-bin"):
        request_metadata([("x-b-bin", "!!")])


def test_response_metadata_becomes_headers() -> None:
    headers = response_headers(
        (("x-a", "1"), ("x-b-bin", b"\x00\x01")),
        (("x-c", "3"), ("grpc-status-details-bin", b"..."), ("grpc-message", "m")),
    )
    assert headers == [("x-a", "1"), ("x-b-bin", "AAE="), ("x-c", "3")]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1H", 3600.0),
        ("2M", 120.0),
        ("3S", 3.0),
        ("250m", 0.25),
        ("10u", 1e-5),
        ("5n", 5e-9),
        ("123456789S", None),
        ("1s", None),
        ("S", None),
        ("-1S", None),
    ],
)
def test_grpc_timeout_grammar(value: str, seconds: float | None) -> None:
    result = parse_grpc_timeout(value)
    assert result == (pytest.approx(seconds) if seconds is not None else None)


def test_deadline_is_the_shortest_and_never_longer_than_the_route() -> None:
    assert deadline_from_headers(5.0, None, None) == 5.0
    assert deadline_from_headers(5.0, "1S", None) == 1.0
    assert deadline_from_headers(5.0, "10S", None) == 5.0
    assert deadline_from_headers(5.0, None, "200") == 0.2
    assert deadline_from_headers(5.0, None, "250ms") == 0.25
    assert deadline_from_headers(5.0, "2S", "1s") == 1.0
    assert deadline_from_headers(None, "2S", None) == 2.0


@pytest.mark.parametrize(
    ("grpc_timeout", "request_timeout", "problem"),
    [
        # Zero once read as "no deadline": the client lifted the route's.
        ("0n", None, "greater than zero"),
        ("0S", None, "greater than zero"),
        (None, "0", "greater than zero"),
        (None, "0ms", "greater than zero"),
        ("garbage", None, "not a valid timeout"),
        (None, "garbage", "not a valid timeout"),
        (None, "1" + " " * 24_000 + "x", "longer than"),
        ("1" * 40 + "S", None, "longer than"),
        (None, "1 x", "not a valid timeout"),
    ],
)
def test_zero_malformed_or_overlong_client_timeouts_are_400(
    grpc_timeout: str | None, request_timeout: str | None, problem: str
) -> None:
    with pytest.raises(BadRequest, match=problem):
        deadline_from_headers(5.0, grpc_timeout, request_timeout)


def test_timeout_parsing_is_linear_in_the_value() -> None:
    # The regex this replaced took seconds on this value (quadratic
    # backtracking over the spaces); a scan is done in one pass.
    assert parse_request_timeout("1" + " " * 30_000 + "x") is None
    assert parse_request_timeout("  250ms ") == 0.25
    assert parse_request_timeout("1.5s") == 1.5
    assert parse_request_timeout("1.s") is None


def test_headers_grpc_cannot_carry_are_dropped_from_metadata() -> None:
    assert request_metadata([("x-a!b", "1"), ("x-ok", "2"), ("X-Up", "3")]) == (("x-ok", "2"),)


def test_response_headers_with_control_bytes_are_dropped() -> None:
    headers = response_headers((("x-bad", "a\x7fb"), ("x-good", "ok"), ("bad name", "v")))
    assert headers == [("x-good", "ok")]
