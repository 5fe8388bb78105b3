"""gRPC-Web (grpc/doc/PROTOCOL-WEB.md), sans-IO.

The body framing is gRPC's; the status and trailing metadata travel as the
last frame of the body, flag 0x80, holding an HTTP/1-style header block
(``name: value\\r\\n`` each, lower-case names, no terminating blank line).
``application/grpc-web-text`` base64-encodes the body; a sender may flush
padded base64 chunks at any point, so the decoder takes concatenated padded
chunks and the encoder writes one padded chunk per flush.
"""

from __future__ import annotations

import base64
import binascii

from gateway.grpc_front.frames import GRPC_WEB_TRAILERS, FrameError, encode_frame
from gateway.grpc_front.status import Status, status_fields

TEXT = "application/grpc-web-text"


def is_text(content_type: str) -> bool:
    return content_type.startswith(TEXT)


def trailer_block(status: Status) -> bytes:
    lines = (f"{name.lower()}: {value}\r\n" for name, value in status_fields(status))
    return "".join(lines).encode("latin-1")


def trailer_frame(status: Status) -> bytes:
    return encode_frame(trailer_block(status), GRPC_WEB_TRAILERS)


def encode_text(chunk: bytes) -> bytes:
    return base64.b64encode(chunk)


class TextDecoder:
    """Base64 text in, bytes out, across arbitrary chunk boundaries and padded
    chunks concatenated (``QUI=Qw==``): each 4-character quantum is decoded as
    soon as it is whole."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        text = self._pending + data.translate(None, b" \t\r\n")
        whole = len(text) - len(text) % 4
        self._pending = text[whole:]
        text = text[:whole]
        if not text:
            return b""
        try:
            if b"=" not in text[:-4]:
                return base64.b64decode(text, validate=True)
            # Padding inside: decode quantum by quantum.
            return b"".join(
                base64.b64decode(text[i : i + 4], validate=True) for i in range(0, whole, 4)
            )
        except (binascii.Error, ValueError):
            raise FrameError("grpc-web-text body is not base64") from None

    @property
    def pending(self) -> bool:
        return bool(self._pending)
