"""gRPC status and metadata as HTTP fields, sans-IO.

Passthrough keeps metadata as the backend sent it: every name but the
transport's own (pseudo headers, content-type, te), ``-bin`` values base64
encoded (gRPC's PROTOCOL-HTTP2.md: the receiver takes padded or unpadded),
``grpc-status-details-bin`` included. ``grpc-message`` is percent-encoded as
the spec asks: bytes outside 0x20..0x7E, and ``%`` itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.errors import GRPC_TO_HTTP, Code
from gateway.upstream.call import Metadata

HeaderList = list[tuple[str, str]]

# What the gateway's own transport says; never copied from backend metadata.
_TRANSPORT_FIELDS = frozenset(
    {"content-type", "content-length", "te", "trailer", "transfer-encoding", "connection"}
)
# The status fields the gateway writes itself from the call's status.
STATUS_FIELDS = frozenset({"grpc-status", "grpc-message"})
_UNRESERVED = frozenset(range(0x20, 0x7F)) - {ord("%")}

# gRPC's doc/http-grpc-status-mapping.md: the code a gRPC client reports for
# an HTTP status that carries no grpc-status.
HTTP_TO_GRPC: dict[int, int] = {
    400: Code.INTERNAL,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.UNIMPLEMENTED,
    429: Code.UNAVAILABLE,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class Status:
    """How a call ended: the code, its message, and the trailing metadata."""

    code: int
    message: str = ""
    trailing: Metadata = ()


def encode_grpc_message(message: str) -> str:
    raw = message.encode("utf-8")
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in raw)


def metadata_fields(metadata: Iterable[tuple[str, str | bytes]]) -> HeaderList:
    """Metadata as HTTP fields, byte for byte: ``-bin`` values as base64."""
    out: HeaderList = []
    for name, value in metadata:
        if not name or name[0] == ":" or name in _TRANSPORT_FIELDS or name in STATUS_FIELDS:
            continue
        if isinstance(value, bytes):
            out.append((name, base64.b64encode(value).decode("ascii")))
        else:
            out.append((name, value))
    return out


def status_fields(status: Status) -> HeaderList:
    """grpc-status, grpc-message (when there is one) and the trailing metadata."""
    out: HeaderList = [("grpc-status", str(status.code))]
    if status.message:
        out.append(("grpc-message", encode_grpc_message(status.message)))
    out.extend(metadata_fields(status.trailing))
    return out


def grpc_code_for_http(status: int) -> int:
    return HTTP_TO_GRPC.get(status, Code.UNKNOWN)


def status_of_error_response(status: int, body: bytes) -> Status:
    """The status an HTTP error answer stands for: the gateway's (and filters')
    google.rpc.Status JSON says its code; any other body maps by HTTP status."""
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), int):
        code = parsed["code"]
        message = parsed.get("message")
        if code in GRPC_TO_HTTP and code != Code.OK:
            return Status(code, message if isinstance(message, str) else "")
    text = body.decode("utf-8", "replace")[:1024] if body else f"HTTP status {status}"
    return Status(grpc_code_for_http(status), text)
