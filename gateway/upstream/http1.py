"""HTTP/1.1 client messages, sans-IO: a request to bytes, response bytes to a :class:`Response`.

Only what the Triple HTTP/JSON upstream needs: one request with a body
(``content-length``, never chunked), and any response framing a server may
choose (``content-length``, chunked, or read until the connection closes).
httptools (llhttp) does the parsing; this module owns the framing decisions
and never touches a socket, so the pool in ``http1_pool`` only moves bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import httptools

# A header name is an RFC 9110 token; a value must not hold the bytes that
# would end its line early (request splitting) or that llhttp refuses.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN = re.compile(rb"[\r\n\0]")


class ProtocolError(Exception):
    """The server's bytes are not a valid HTTP/1.1 response."""


class InvalidHeader(ValueError):
    """A header the request cannot carry (an illegal name or a value with CR, LF or NUL)."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    # False when the server will close (``connection: close``, HTTP/1.0, a
    # body read to the end of the connection): the connection is not reused.
    keep_alive: bool


def _header_bytes(value: str) -> bytes:
    # Values came in as HTTP header text (latin-1 on the wire); anything beyond
    # that range is sent as UTF-8 rather than refused.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def encode_request(
    method: str, target: str, host: str, headers: Iterable[tuple[str, str]], body: bytes
) -> bytes:
    """One request with a ``content-length`` body, as a single buffer (one write, one segment)."""
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {host}\r\n".encode("ascii")]
    for name, value in headers:
        raw_name, raw_value = name.encode("ascii", "replace"), _header_bytes(value)
        if _TOKEN.fullmatch(raw_name) is None or _FORBIDDEN.search(raw_value) is not None:
            raise InvalidHeader(f"header {name!r} cannot be sent upstream")
        lines.append(b"%s: %s\r\n" % (raw_name, raw_value.strip(b" \t")))
    lines.append(b"content-length: %d\r\n\r\n" % len(body))
    lines.append(body)
    return b"".join(lines)


class ResponseReader:
    """Feeds a connection's bytes to llhttp and hands back each complete final response.

    Informational (1xx) responses are skipped. A response with neither
    ``content-length`` nor chunking ends where the connection does: see
    :meth:`receive_eof`.
    """

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._headers_done = False
        self._framed = False  # content-length or chunked: llhttp knows where it ends
        self._done: Response | None = None

    # llhttp callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._framed = any(
            name == b"content-length"
            or (name == b"transfer-encoding" and b"chunked" in value.lower())
            for name, value in self._headers
        )

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            self._reset()  # 100 Continue and friends: the final answer follows
            return
        self._done = Response(
            status, tuple(self._headers), b"".join(self._body), self._parser.should_keep_alive()
        )

    def receive_data(self, data: bytes) -> Response | None:
        """The response, once ``data`` completes it; None while more is needed.

        Raises :class:`ProtocolError` on bytes that are not HTTP, and on bytes
        after a complete response (nothing was asked for them).
        """
        if self._done is not None:
            raise ProtocolError("data after the response")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ProtocolError(str(exc) or type(exc).__name__) from None
        return self._done

    def receive_eof(self) -> Response:
        """The connection closed: the response if it ends there, else :class:`ProtocolError`."""
        if self._done is not None:
            return self._done
        if self._headers_done and not self._framed:
            status = self._parser.get_status_code()
            return Response(status, tuple(self._headers), b"".join(self._body), False)
        raise ProtocolError("connection closed before the response was complete")
