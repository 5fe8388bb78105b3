"""The gRPC passthrough route kind: gRPC, gRPC-Web and Connect requests
forwarded to a gRPC cluster without transcoding.

``decode`` tells the protocol apart (``protocols.wire_of``), names the method
from the path (``/pkg.Service/Method``), turns the headers into metadata and
wraps the body in a :class:`RequestPump`; the router hands the pump to
``Invoker.duplex``, and ``encode_duplex`` writes the reply back in the
client's protocol: frames and HTTP/2 trailers for gRPC, a trailers frame for
gRPC-Web, envelopes and an end-of-stream message (or a bare message and an
HTTP status, for unary) for Connect. Messages are passed on as they arrive.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass

from google.protobuf.descriptor_pool import DescriptorPool

from filters.http import HttpRequest, HttpResponse
from gateway.errors import BadRequest, Code, GatewayError, PayloadTooLarge
from gateway.grpc_front import connect, grpc_web
from gateway.grpc_front.frames import FrameError, decompress, encode_frame
from gateway.grpc_front.json_messages import JsonMessages, json_messages
from gateway.grpc_front.protocols import (
    Protocol,
    RpcResponse,
    Wire,
    codec_of_request,
    content_type_of,
    status_response,
    wire_of,
)
from gateway.grpc_front.requests import RequestPump
from gateway.grpc_front.status import (
    Status,
    metadata_fields,
    status_fields,
    status_of_error_response,
)
from gateway.transcode.protobuf_kind import Limits, read_body
from gateway.transcode.route_kind import Encoding
from gateway.upstream.call import Call, DubboOptions, DuplexReply, Metadata, Reply, ReplyStream
from gateway.upstream.metadata import request_metadata

log = logging.getLogger(f"meshgate.{__name__}")

# The ASGI extension an HTTP/2 server offers for response trailers.
TRAILERS = "http.response.trailers"
# Request headers of the RPC protocols themselves, not metadata for the backend.
_PROTOCOL_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "content-encoding",
        "origin",
        "x-grpc-web",
        "x-user-agent",
        "connect-protocol-version",
        connect.TIMEOUT_HEADER,
        "connect-content-encoding",
        "connect-accept-encoding",
    }
)


class UnsupportedRpc(GatewayError):
    grpc_code = Code.INVALID_ARGUMENT
    http_status = 415


class GrpcPassthrough:
    """The route kind (``grpc:`` on a route, the default on a ``protocol: grpc`` listener)."""

    encoding: Encoding = "proto"

    def __init__(
        self,
        protocols: Collection[Protocol],
        limits: Limits,
        pool: DescriptorPool | None,
        triple: DubboOptions | None = None,
    ) -> None:
        self._protocols = frozenset(protocols)
        # A Triple cluster's group and version, added when the client sends none.
        self._triple_defaults: Metadata = ()
        if triple is not None:
            self._triple_defaults = tuple(
                (name, value)
                for name, value in (
                    ("tri-service-group", triple.group),
                    ("tri-service-version", triple.version),
                )
                if value
            )
        self._limits = limits
        self._pool = pool
        self._json: dict[str, JsonMessages] = {}

    async def decode(self, request: HttpRequest) -> Passthrough:
        wire = wire_of(request, connect_unary=True)
        if wire is None or wire.protocol not in self._protocols:
            accepted = ", ".join(sorted(self._protocols))
            raise UnsupportedRpc(f"this route takes {accepted} requests")
        service, method = _method(request.path)
        headers = request.headers
        codec = codec_of_request(wire, request)
        messages = self._json_messages(service, method) if codec == "json" else None
        metadata = request_metadata(
            (n, v) for n, v in request.header_list if n not in _PROTOCOL_HEADERS
        )
        if self._triple_defaults:
            metadata = (
                *metadata,
                *((n, v) for n, v in self._triple_defaults if n not in headers),
            )
        call = Call(service, method, (), metadata, max_reply_bytes=self._limits.max_response_bytes)
        try:
            timeout = connect.parse_timeout(headers.get(connect.TIMEOUT_HEADER))
        except connect.ConnectRequestError as exc:
            raise BadRequest(str(exc)) from None
        if wire is Wire.GRPC and not request.attributes.get(TRAILERS):
            raise GatewayError(
                "gRPC needs HTTP/2 with trailers; use gRPC-Web or Connect over HTTP/1.1",
                grpc_code=Code.UNIMPLEMENTED,
            )
        pump = await self._pump(wire, request, messages)
        return Passthrough(call, pump, wire, codec, messages, timeout)

    def _json_messages(self, service: str, method: str) -> JsonMessages:
        key = f"{service}/{method}"
        found = self._json.get(key)
        if found is None:
            found = self._json[key] = json_messages(self._pool, service, method)
        return found

    async def _pump(
        self, wire: Wire, request: HttpRequest, messages: JsonMessages | None
    ) -> RequestPump:
        limit = self._limits.max_request_bytes
        headers = request.headers
        to_proto = messages.to_proto if messages is not None else None
        if wire is Wire.CONNECT_UNARY:
            body = await read_body(request, self._limits)
            body = _decompressed(body, headers.get("content-encoding"), limit)
            return RequestPump(None, limit, messages=[to_proto(body) if to_proto else body])
        if wire is Wire.CONNECT_GET:
            try:
                got = connect.parse_get(request.query_string)
            except connect.ConnectRequestError as exc:
                raise BadRequest(str(exc)) from None
            body = _decompressed(got.message, got.compression, limit)
            return RequestPump(None, limit, messages=[to_proto(body) if to_proto else body])
        compression = headers.get(
            "connect-content-encoding" if wire is Wire.CONNECT_STREAM else "grpc-encoding"
        )
        return RequestPump(
            request.receive,
            limit,
            text=wire is Wire.GRPC_WEB_TEXT,
            compression=compression,
            transform=to_proto,
        )


def _method(path: str) -> tuple[str, str]:
    parts = path.split("/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        raise GatewayError(
            f"not an RPC path (/package.Service/Method): {path}",
            grpc_code=Code.UNIMPLEMENTED,
            http_status=404,
        )
    return parts[1], parts[2]


def _decompressed(body: bytes, encoding: str | None, limit: int) -> bytes:
    """A Connect unary body as sent (Content-Encoding), inflated within ``limit``."""
    if encoding in (None, "", "identity"):
        return body
    try:
        return decompress(body, encoding, limit)
    except FrameError as exc:
        if exc.too_large:
            raise PayloadTooLarge(f"request: {exc}") from None
        raise BadRequest(f"request: {exc}") from None


@dataclass(slots=True)
class Passthrough:
    """One decoded RPC: the call, its request stream, and the client's protocol."""

    call: Call
    requests: RequestPump
    wire: Wire
    codec: str  # proto | json
    json: JsonMessages | None
    # connect-timeout-ms (grpc-timeout is read by the router for every kind).
    client_timeout: float | None
    # The gateway's own failure while streaming the reply (gRPC's trailers say it).
    _failed: Status | None = None

    def encode(self, reply: Reply) -> HttpResponse:
        raise NotImplementedError("passthrough replies go through encode_duplex")

    async def encode_stream(self, stream: ReplyStream) -> HttpResponse:
        raise NotImplementedError("passthrough replies go through encode_duplex")

    async def encode_duplex(self, reply: DuplexReply) -> HttpResponse:
        wire = self.wire
        headers = [
            ("content-type", content_type_of(wire, self.codec)),
            *metadata_fields(reply.initial_metadata),
        ]
        if wire in (Wire.CONNECT_UNARY, Wire.CONNECT_GET):
            return await self._unary(reply, headers[1:])
        if wire is Wire.GRPC:
            return RpcResponse(
                200,
                headers,
                stream=self._frames(reply),
                trailers=lambda: self._trailers(reply),
            )
        return RpcResponse(200, headers, stream=self._body(reply))

    async def _status(self, reply: DuplexReply) -> Status:
        """The call's end: the gateway's own failure reading the request, if
        any (the upstream then only saw a cancel), else the backend's status."""
        failure = self.requests.failure
        if failure is not None:
            return Status(failure.grpc_code, failure.public_message or failure.message)
        ended = await reply.status()
        if ended.cause is not None:
            # grpc's words name the endpoint's address: the log keeps them.
            log.warning("passthrough upstream unavailable: %s", ended.message)
            return Status(ended.code, "upstream unavailable", ended.trailing_metadata)
        return Status(ended.code, ended.message, ended.trailing_metadata)

    async def _trailers(self, reply: DuplexReply) -> list[tuple[str, str]]:
        status = self._failed or await self._status(reply)
        return status_fields(status)

    async def _frames(self, reply: DuplexReply) -> AsyncIterator[bytes]:
        """gRPC: the messages as frames (the status goes in the trailers)."""
        to_json = self.json.to_json if self.json is not None else None
        try:
            async for message in reply.messages:
                yield encode_frame(to_json(message) if to_json is not None else message)
        except GatewayError as error:  # a reply the JSON codec cannot render
            self._failed = Status(error.grpc_code, error.public_message or error.message)

    async def _body(self, reply: DuplexReply) -> AsyncIterator[bytes]:
        """gRPC-Web and Connect streaming: messages, then the status in the body."""
        wire = self.wire
        text = wire is Wire.GRPC_WEB_TEXT
        to_json = self.json.to_json if self.json is not None else None
        status: Status | None = None
        try:
            async for message in reply.messages:
                if to_json is not None:
                    message = to_json(message)
                frame = encode_frame(message)
                yield grpc_web.encode_text(frame) if text else frame
        except GatewayError as error:
            status = Status(error.grpc_code, error.public_message or error.message)
        if status is None:
            status = await self._status(reply)
        if wire is Wire.CONNECT_STREAM:
            yield connect.end_stream(status)
        else:
            frame = grpc_web.trailer_frame(status)
            yield grpc_web.encode_text(frame) if text else frame

    async def _unary(self, reply: DuplexReply, headers: list[tuple[str, str]]) -> HttpResponse:
        """Connect unary: the one message and the status decide the HTTP answer."""
        messages: list[bytes] = []
        async for message in reply.messages:
            messages.append(message)
            if len(messages) > 1:
                break  # a streaming method called as unary: no need to read on
        if len(messages) > 1:
            await _close(reply.messages)
            status = Status(Code.UNIMPLEMENTED, "a unary call got more than one reply message")
        else:
            status = await self._status(reply)
        if status.code == Code.OK and not messages:
            status = Status(Code.UNIMPLEMENTED, "a unary call got no reply message")
        if status.code != Code.OK:
            return status_response(self.wire, status, headers, self.codec)
        body = messages[0]
        if self.json is not None:
            body = self.json.to_json(body)
        return RpcResponse(
            200,
            [
                ("content-type", f"application/{self.codec}"),
                *headers,
                *connect.trailer_fields(status.trailing),
            ],
            body,
        )


async def _close(messages: AsyncIterator[bytes]) -> None:
    """End the upstream call of a reply not read to its end (the backend sees a cancel)."""
    aclose = getattr(messages, "aclose", None)
    if aclose is not None:
        await aclose()


def rpc_error_response(
    request: HttpRequest, response: HttpResponse, *, connect_unary: bool
) -> HttpResponse:
    """An HTTP error answer (no route, a filter's refusal, a gateway error) to an
    RPC client, rewritten as a status in its protocol; anything else unchanged."""
    if response.status < 400 or isinstance(response, RpcResponse):
        return response
    wire = wire_of(request, connect_unary=connect_unary)
    if wire is None:
        return response
    status = status_of_error_response(response.status, response.body)
    if response.status == 404 and status.code == Code.NOT_FOUND:
        # No route here: what a gRPC server says of a method it does not have.
        status = Status(Code.UNIMPLEMENTED, status.message)
    if request.exchange is not None:
        request.exchange.grpc_status = status.code
    kept = _without_body_fields(response.headers)
    return status_response(wire, status, kept, codec_of_request(wire, request))


def _without_body_fields(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(n, v) for n, v in headers if n.lower() not in ("content-type", "content-length")]
