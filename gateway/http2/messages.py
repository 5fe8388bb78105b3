"""HTTP/2 header blocks to and from ASGI messages (pure functions).

A request's pseudo-headers become the scope's method, path and query; its
regular fields, the scope's headers, with ``:authority`` as ``host`` when
the client sent no ``host`` (RFC 9113 8.3.1). The listener's limits on
header count, header bytes and target length apply as on HTTP/1.1, and the
answer to a request past them is the same status (431, 414).

Response fields lose what HTTP/2 forbids (connection-specific fields,
RFC 9113 8.2.2), so an app written for HTTP/1.1 (a ``connection: close``
on a 408) serves HTTP/2 unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from gateway.config import ListenerLimitsConfig
from gateway.errors import BadRequest, GatewayError, HeadersTooLarge, UriTooLong

Fields = list[tuple[bytes, bytes]]

CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


@dataclass(slots=True)
class RequestHead:
    method: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: Fields


def request_head(
    fields: Iterable[tuple[bytes, bytes]], limits: ListenerLimitsConfig
) -> RequestHead:
    """The scope fields of a request (h2 has checked the pseudo-headers' form);
    raises :class:`GatewayError` for a request to answer with an error."""
    method = target = authority = b""
    headers: Fields = []
    count = size = 0
    has_host = False
    for name, value in fields:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                target = value
            elif name == b":authority":
                authority = value
            continue
        count += 1
        size += len(name) + len(value)
        if name == b"host":
            has_host = True
        headers.append((name, value))
    if count > limits.max_request_headers:
        raise HeadersTooLarge(f"more than {limits.max_request_headers} headers")
    if size > limits.max_request_header_bytes:
        raise HeadersTooLarge(f"request headers over {limits.max_request_header_bytes} bytes")
    if len(target) > limits.max_url_bytes:
        raise UriTooLong(f"request target over {limits.max_url_bytes} bytes")
    if not target:
        # CONNECT (and extended CONNECT) carry no :path; nothing here serves them.
        raise BadRequest(f"{method.decode('latin-1')} without a :path is not served")
    if authority and not has_host:
        headers.insert(0, (b"host", authority))
    raw_path, _, query = target.partition(b"?")
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadRequest("the request target is not ASCII") from exc
    if "%" in path:
        path = unquote(path)
    return RequestHead(method.decode("ascii"), path, raw_path, query, headers)


def response_fields(status: int, headers: Iterable[tuple[bytes, bytes]], extra: Fields) -> Fields:
    """``:status`` and the app's headers (lower-cased, connection-specific
    ones dropped), then ``extra`` (the server's Date)."""
    out: Fields = [(b":status", b"%d" % status)]
    out.extend(trailer_fields(headers))
    out.extend(extra)
    return out


def trailer_fields(headers: Iterable[tuple[bytes, bytes]]) -> Fields:
    out: Fields = []
    for name, value in headers:
        name = bytes(name).lower()
        if name not in CONNECTION_SPECIFIC:
            out.append((name, bytes(value)))
    return out


def is_grpc(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """A gRPC request (not gRPC-Web): its errors are answered as gRPC statuses."""
    for name, value in headers:
        if name == b"content-type":
            return value == b"application/grpc" or value.startswith(
                (b"application/grpc+", b"application/grpc;")
            )
    return False


def grpc_error_fields(error: GatewayError) -> Fields:
    """A Trailers-Only gRPC answer: HTTP 200 with the status in the one header block."""
    message = (error.public_message or error.message).encode()
    return [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-status", b"%d" % error.grpc_code),
        (b"grpc-message", percent_encode(message)),
    ]


def percent_encode(message: bytes) -> bytes:
    """grpc-message's encoding: printable ASCII but '%' as is, the rest %XX."""
    return b"".join(
        bytes([c]) if 0x20 <= c <= 0x7E and c != 0x25 else b"%%%02X" % c for c in message
    )


def error_fields(error: GatewayError) -> tuple[Fields, bytes]:
    """An error the protocol answers itself (the app never saw the request)."""
    body = error.body()
    fields: Fields = [
        (b":status", b"%d" % error.status),
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
    ]
    return fields, body
