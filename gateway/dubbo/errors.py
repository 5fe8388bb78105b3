"""The errors of the dubbo codecs, in one tree.

    DubboCodecError          base: bytes that cannot be encoded or decoded
    ├── HessianError         a Hessian 2.0 value is malformed, truncated or unencodable
    └── DubboProtocolError   a dubbo2 frame is malformed (magic, length, body layout)

The upstream invoker translates these into the gateway's error tree where they
enter it; the codecs themselves know nothing of HTTP or gRPC status codes.
"""

from __future__ import annotations


class DubboCodecError(ValueError):
    """Bytes that the dubbo codecs cannot encode or decode."""


class HessianError(DubboCodecError):
    """A Hessian 2.0 value is malformed, truncated, or cannot be encoded."""


class DubboProtocolError(DubboCodecError):
    """A dubbo2 frame is malformed."""
