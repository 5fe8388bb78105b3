from __future__ import annotations

import pytest

from gateway.errors import BadRequest
from gateway.upstream.metadata import (
    deadline_from_headers,
    parse_grpc_timeout,
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
    assert deadline_from_headers(5.0, "garbage", "garbage") == 5.0
