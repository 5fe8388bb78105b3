"""Which RPC protocol a request speaks, and a status answered in it, sans-IO.

Told apart by content type (and, for Connect's GET, by method and query):

    application/grpc[+proto]           gRPC (HTTP/2, status in trailers)
    application/grpc-web[+proto]       gRPC-Web, status in the last body frame
    application/grpc-web-text[+proto]  the same, base64
    application/connect+proto|json     Connect streaming
    application/proto|json             Connect unary (POST)
    GET ?encoding=...&message=...      Connect unary (GET)

``status_response`` is how the gateway answers its own errors (no route, no
healthy upstream, a filter's refusal) to an RPC client: a gRPC status, never
an HTTP error page.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from filters.http import HttpRequest, HttpResponse
from gateway.grpc_front import connect, grpc_web
from gateway.grpc_front.status import Status, status_fields

Protocol = Literal["grpc", "grpc-web", "connect"]


class Wire(Enum):
    GRPC = "grpc"
    GRPC_WEB = "grpc-web"
    GRPC_WEB_TEXT = "grpc-web-text"
    CONNECT_STREAM = "connect-stream"
    CONNECT_UNARY = "connect-unary"
    CONNECT_GET = "connect-get"

    @property
    def protocol(self) -> Protocol:
        if self in (Wire.GRPC_WEB, Wire.GRPC_WEB_TEXT):
            return "grpc-web"
        return "grpc" if self is Wire.GRPC else "connect"


@dataclass(slots=True)
class RpcResponse(HttpResponse):
    """A response already in the client's RPC protocol (left as it is by the
    error translation around the filters)."""


def wire_of(request: HttpRequest, *, connect_unary: bool) -> Wire | None:
    """The RPC protocol of a request, or None for plain HTTP.

    ``connect_unary``: take bare ``application/proto|json`` POSTs and GETs
    with ``encoding=`` as Connect (on passthrough routes); elsewhere only when
    the request says so (``connect-protocol-version``, ``connect=v1``)."""
    headers = request.headers
    content_type = headers.get("content-type", "")
    if content_type.startswith("application/grpc"):
        if content_type.startswith(grpc_web.TEXT):
            return Wire.GRPC_WEB_TEXT
        if content_type.startswith("application/grpc-web"):
            return Wire.GRPC_WEB
        return Wire.GRPC
    if connect.is_streaming(content_type):
        return Wire.CONNECT_STREAM
    declared = "connect-protocol-version" in headers
    if request.method == "GET":
        query = request.query_string
        if (connect_unary and b"encoding=" in query) or b"connect=v1" in query:
            return Wire.CONNECT_GET
        return None
    if connect.codec_of(content_type) is not None and (connect_unary or declared):
        return Wire.CONNECT_UNARY
    return None


def content_type_of(wire: Wire, codec: str) -> str:
    if wire is Wire.GRPC:
        return "application/grpc" if codec == "proto" else f"application/grpc+{codec}"
    if wire is Wire.GRPC_WEB_TEXT:
        return f"application/grpc-web-text+{codec}"
    if wire is Wire.GRPC_WEB:
        return f"application/grpc-web+{codec}"
    if wire is Wire.CONNECT_STREAM:
        return f"application/connect+{codec}"
    return f"application/{codec}"


def status_response(
    wire: Wire, status: Status, headers: list[tuple[str, str]], codec: str = "proto"
) -> RpcResponse:
    """A call that ends with ``status`` and no message, in the client's protocol."""
    if wire in (Wire.GRPC, Wire.GRPC_WEB, Wire.GRPC_WEB_TEXT):
        # Trailers-only: the status rides in the headers (both gRPC and gRPC-Web).
        content_type = content_type_of(wire, codec)
        return RpcResponse(200, [("content-type", content_type), *headers, *status_fields(status)])
    if wire is Wire.CONNECT_STREAM:
        return RpcResponse(
            200,
            [("content-type", f"application/connect+{codec}"), *headers],
            connect.end_stream(status),
        )
    return RpcResponse(
        connect.http_status(status.code),
        [("content-type", "application/json"), *headers, *connect.trailer_fields(status.trailing)],
        connect.error_body(status),
    )


def codec_of_request(wire: Wire, request: HttpRequest) -> str:
    """proto or json: what the client's messages are encoded as."""
    if wire is Wire.CONNECT_GET:
        return "json" if b"encoding=json" in request.query_string else "proto"
    content_type = request.headers.get("content-type", "")
    if wire in (Wire.CONNECT_STREAM, Wire.CONNECT_UNARY):
        return connect.codec_of(content_type) or "proto"
    # gRPC and gRPC-Web: application/grpc[-web[-text]][+proto|+json]
    return "json" if content_type.split(";", 1)[0].strip().endswith("+json") else "proto"
