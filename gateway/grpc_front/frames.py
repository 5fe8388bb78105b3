"""Length-prefixed messages, the framing gRPC, gRPC-Web and Connect share.

Each message is one flags byte, a 4-byte big-endian length, then the payload
(gRPC's PROTOCOL-HTTP2.md "Length-Prefixed-Message"). The flag bits differ by
protocol: 0x01 is "compressed" for all three; gRPC-Web marks its trailers
frame with 0x80, Connect its end-of-stream message with 0x02.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

COMPRESSED = 0x01
CONNECT_END_STREAM = 0x02
GRPC_WEB_TRAILERS = 0x80
PREFIX_BYTES = 5


class FrameError(Exception):
    """A frame the receiver refuses; ``too_large`` tells a size limit from bad framing."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


@dataclass(frozen=True, slots=True)
class Frame:
    flags: int
    payload: bytes


def encode_frame(payload: bytes, flags: int = 0) -> bytes:
    return bytes((flags,)) + len(payload).to_bytes(4, "big") + payload


class FrameDecoder:
    """Bytes in, whole frames out; refuses a frame longer than ``limit`` as soon
    as its prefix arrives, before buffering its payload."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        while len(buffer) >= PREFIX_BYTES:
            length = int.from_bytes(buffer[1:PREFIX_BYTES], "big")
            if length > self._limit:
                raise FrameError(
                    f"message of {length} bytes exceeds the limit of {self._limit}", too_large=True
                )
            end = PREFIX_BYTES + length
            if len(buffer) < end:
                break
            frames.append(Frame(buffer[0], bytes(buffer[PREFIX_BYTES:end])))
            del buffer[:end]
        return frames

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished frame are left (an error at end of stream)."""
        return bool(self._buffer)


def decompress(payload: bytes, encoding: str | None, limit: int) -> bytes:
    """A compressed message's payload; gzip and deflate, within ``limit`` bytes."""
    if encoding == "gzip":
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    else:
        raise FrameError(f"compressed message with unsupported encoding {encoding!r}")
    try:
        out = decoder.decompress(payload, limit + 1)
    except zlib.error as exc:
        raise FrameError(f"bad {encoding} message: {exc}") from None
    if len(out) > limit:
        raise FrameError(f"message exceeds the limit of {limit} bytes", too_large=True)
    return out
