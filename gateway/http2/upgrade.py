"""h2c by Upgrade (RFC 7540 3.2): an HTTP/1.1 request that asks to go on in HTTP/2.

``curl --http2 http://...`` sends its first request with ``Connection:
Upgrade, HTTP2-Settings``, ``Upgrade: h2c`` and the client's SETTINGS. The
HTTP/1.1 parser ends such a request at its headers and leaves the body
alone, so the edge protocol hands the head here; the body (Content-Length
only, up to MAX_UPGRADE_BODY, which the client must send before any HTTP/2
frame) is collected, then 101 is answered and the connection goes to
:class:`~gateway.http2.protocol.H2Protocol` with the request as stream 1.
A request this cannot take is answered over HTTP/1.1 with the reason.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from gateway.errors import BadRequest, PayloadTooLarge
from gateway.http2.messages import CONNECTION_SPECIFIC, Fields

# The body of an upgrading request is held whole before the switch.
MAX_UPGRADE_BODY = 1 << 20
DROPPED = CONNECTION_SPECIFIC | {b"http2-settings", b"te"}


def asks_for_h2c(headers: Fields) -> bool:
    """``Upgrade: h2c`` with ``Connection: upgrade`` (whatever else it says)."""
    upgrade = connection = False
    for name, value in headers:
        if name == b"upgrade":
            upgrade = b"h2c" in (token.strip().lower() for token in value.split(b","))
        elif name == b"connection":
            connection = connection or b"upgrade" in (
                token.strip().lower() for token in value.split(b",")
            )
    return upgrade and connection


@dataclass
class H2cRequest:
    """An upgrading request, its body arriving."""

    fields: Fields
    settings: bytes
    length: int
    body: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> bytes | None:
        """Take body bytes; once the body is whole, what came after it (the
        client's HTTP/2 preface), else None."""
        need = self.length - len(self.body)
        self.body += data[:need]
        return data[need:] if len(self.body) == self.length else None


def h2c_request(method: bytes, target: bytes, headers: Fields) -> H2cRequest:
    """The request as HTTP/2 fields; raises a GatewayError if it cannot be upgraded."""
    settings = length = None
    fields: Fields = [(b":method", method), (b":scheme", b"http"), (b":path", target)]
    for name, value in headers:
        if name == b"http2-settings":
            settings = value.strip()
        elif name == b"content-length":
            length = int(value) if value.strip().isdigit() else -1
        elif name == b"transfer-encoding":
            raise BadRequest("an h2c upgrade needs a content-length body, not a chunked one")
        if name not in DROPPED:
            fields.append((name, value))
    if settings is None:
        raise BadRequest("an h2c upgrade needs exactly one HTTP2-Settings header")
    try:
        decoded = base64.urlsafe_b64decode(settings + b"=" * (-len(settings) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("HTTP2-Settings is not base64url") from exc
    if len(decoded) % 6:
        raise BadRequest("HTTP2-Settings is not a SETTINGS payload")
    if length is not None and length < 0:
        raise BadRequest("malformed content-length")
    if (length or 0) > MAX_UPGRADE_BODY:
        raise PayloadTooLarge(
            f"an h2c upgrade body is limited to {MAX_UPGRADE_BODY} bytes; "
            "send it with HTTP/2 prior knowledge or without Upgrade"
        )
    return H2cRequest(fields, base64.urlsafe_b64encode(decoded), length or 0)
