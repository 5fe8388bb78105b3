"""The HTTP/1.1 client messages of the Triple HTTP/JSON upstream, without sockets."""

from __future__ import annotations

import pytest

from gateway.upstream.http1 import (
    InvalidHeader,
    ProtocolError,
    Response,
    ResponseReader,
    encode_request,
)

OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n"hello"'


def test_a_request_is_one_buffer_with_host_headers_length_and_body() -> None:
    data = encode_request(
        "POST",
        "/org.example.Greeter/greet",
        "127.0.0.1:50052",
        [("content-type", "application/json"), ("tri-service-group", "g1")],
        b'["ada"]',
    )
    assert data == (
        b"POST /org.example.Greeter/greet HTTP/1.1\r\n"
        b"host: 127.0.0.1:50052\r\n"
        b"content-type: application/json\r\n"
        b"tri-service-group: g1\r\n"
        b"content-length: 7\r\n"
        b"\r\n"
        b'["ada"]'
    )


def test_an_empty_body_still_says_its_length() -> None:
    assert encode_request("POST", "/s/m", "h:1", [], b"").endswith(b"content-length: 0\r\n\r\n")


def test_header_values_go_as_latin1_and_beyond_it_as_utf8() -> None:
    data = encode_request("POST", "/s/m", "h:1", [("x-a", "caf\u00e9"), ("x-b", "\u4e16")], b"")
    assert b"x-a: caf\xe9\r\n" in data
    assert b"x-b: \xe4\xb8\x96\r\n" in data


@pytest.mark.parametrize(
    "header",
    [
        ("x-split", "a\r\nx-injected: 1"),
        ("x-lf", "a\nb"),
        ("x-nul", "a\0b"),
        ("bad name", "v"),
        ("x:colon", "v"),
        ("", "v"),
    ],
)
def test_a_header_that_would_break_the_message_is_refused(header: tuple[str, str]) -> None:
    with pytest.raises(InvalidHeader):
        encode_request("POST", "/s/m", "h:1", [header], b"")


def test_a_response_with_content_length_arrives_in_pieces() -> None:
    reader = ResponseReader()
    assert reader.receive_data(OK[:10]) is None
    assert reader.receive_data(OK[10:-3]) is None
    response = reader.receive_data(OK[-3:])
    assert response == Response(
        200,
        ((b"content-type", b"application/json"), (b"content-length", b"7")),
        b'"hello"',
        keep_alive=True,
    )


def test_a_chunked_response_is_decoded() -> None:
    reader = ResponseReader()
    response = reader.receive_data(
        b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n"he\r\n4\r\nllo"\r\n0\r\n\r\n'
    )
    assert response is not None
    assert response.body == b'"hello"'
    assert response.keep_alive


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n",
        b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n",
    ],
)
def test_a_response_that_announces_the_close_is_not_kept_alive(head: bytes) -> None:
    response = ResponseReader().receive_data(head + b"{}")
    assert response is not None
    assert not response.keep_alive


def test_a_body_without_framing_ends_with_the_connection() -> None:
    reader = ResponseReader()
    assert reader.receive_data(b"HTTP/1.1 500 Internal Server Error\r\n\r\noops, ") is None
    assert reader.receive_data(b"broken") is None
    response = reader.receive_eof()
    assert (response.status, response.body, response.keep_alive) == (500, b"oops, broken", False)


def test_an_informational_response_is_skipped() -> None:
    reader = ResponseReader()
    assert reader.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n") is None
    response = reader.receive_data(OK)
    assert response is not None
    assert (response.status, response.body) == (200, b'"hello"')


def test_a_no_content_response_is_complete_at_its_headers() -> None:
    response = ResponseReader().receive_data(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert response is not None
    assert (response.status, response.body, response.keep_alive) == (204, b"", True)


def test_header_names_are_lower_cased() -> None:
    response = ResponseReader().receive_data(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n"
    )
    assert response is not None
    assert response.headers[0] == (b"content-type", b"text/plain")


@pytest.mark.parametrize(
    "data",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
    ],
)
def test_bytes_that_are_not_a_response_are_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        ResponseReader().receive_data(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"HTTP/1.1 200 OK\r\ncont",
        OK[:-2],
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n",
    ],
)
def test_a_close_before_the_response_is_complete_is_a_protocol_error(data: bytes) -> None:
    reader = ResponseReader()
    assert reader.receive_data(data) is None
    with pytest.raises(ProtocolError):
        reader.receive_eof()


def test_a_complete_response_survives_the_close_that_follows_it() -> None:
    reader = ResponseReader()
    response = reader.receive_data(OK)
    assert reader.receive_eof() == response


def test_bytes_after_the_response_are_a_protocol_error() -> None:
    reader = ResponseReader()
    assert reader.receive_data(OK) is not None
    with pytest.raises(ProtocolError):
        reader.receive_data(b"HTTP/1.1 200 OK\r\n")
