"""The protobuf transcoding route kind: HTTP/JSON in, protobuf RPC out, JSON back.

Finds the RPC (an auto-mapped ``POST /pkg.Service/Method``, or a
``google.api.http`` binding), builds the request message(s) with Envoy's
precedence, and renders the reply: one JSON document, or a stream of them
(array, NDJSON or SSE) written as messages arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from google.protobuf.message import Message

from filters.http import BodyTooLarge, HttpRequest, HttpResponse
from gateway.errors import (
    BadUpstreamResponse,
    Code,
    GatewayError,
    MethodNotAllowed,
    PayloadTooLarge,
    RouteNotFound,
    UnknownService,
)
from gateway.transcode.client_stream import stream_messages
from gateway.transcode.compile import RpcMethod, Transcoding
from gateway.transcode.json_codec import MessageCodec
from gateway.transcode.rest import bindings_into, response_payload, rest_request
from gateway.transcode.route_kind import Encoding
from gateway.transcode.streaming import StreamEncoder
from gateway.upstream.call import Call, DubboOptions, Reply, ReplyStream
from gateway.upstream.metadata import request_metadata, response_headers
from gateway.upstream.read_ahead import ReadAhead

HTTP_BODY = "google.api.HttpBody"


@dataclass(frozen=True, slots=True)
class Limits:
    max_request_bytes: int
    max_response_bytes: int


async def read_body(request: HttpRequest, limits: Limits) -> bytes:
    try:
        return await request.read_body(limits.max_request_bytes)
    except BodyTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None


class ProtobufTranscoding:
    encoding: Encoding = "proto"

    def __init__(
        self,
        transcoding: Transcoding,
        limits: Limits,
        *,
        services_may_arrive: bool = False,
        dubbo: DubboOptions | None = None,
    ) -> None:
        self.transcoding = transcoding
        self._limits = limits
        # Descriptors come by server reflection: an unknown service may be
        # fetched and the request tried again (UnknownService, not a plain 404).
        self._services_may_arrive = services_may_arrive
        # For Triple clusters: the provider's group and version.
        self._dubbo = dubbo or DubboOptions()

    async def decode(self, request: HttpRequest) -> TranscodedCall:
        binding, messages, response_body = await self._messages(request)
        call = Call(
            service=binding.service,
            method=binding.method,
            messages=[m.SerializeToString() for m in messages],
            metadata=request_metadata(request.header_list),
            client_streaming=binding.client_streaming,
            server_streaming=binding.server_streaming,
            dubbo=self._dubbo.for_request(request.headers),
            max_reply_bytes=self._limits.max_response_bytes,
        )
        return TranscodedCall(call, binding, response_body, self.transcoding, self._limits)

    async def _messages(self, request: HttpRequest) -> tuple[RpcMethod, list[Message], str]:
        """The RPC, its request message(s), and the reply field to answer with."""
        transcoding = self.transcoding
        # The raw path: `/pkg.Service%2FMethod` is not `/pkg.Service/Method` (Envoy).
        auto = transcoding.methods.get(request.target_path)
        if auto is not None and request.method == "POST":
            body = await read_body(request, self._limits)
            return auto, _body_messages(auto, body, request), ""
        match = (
            transcoding.rest.lookup(
                request.method, request.target_path, request.query_string.decode("latin-1")
            )
            if transcoding.rest is not None
            else None
        )
        if match is None:
            raise self._not_found(request, also_post=auto is not None)
        rest, bindings = match.payload, match.bindings
        binding = rest.method
        body = await read_body(request, self._limits)
        if binding.client_streaming:
            messages = _body_messages(binding, body, request) if rest.body else []
            for message in messages:
                bindings_into(
                    binding.input, message, bindings, transcoding.query, rest.path_variables
                )
            return binding, messages, rest.response_body
        message = rest_request(
            binding.input,
            bindings,
            rest.path_variables,
            rest.body,
            body,
            request.headers.get("content-type", ""),
            transcoding.query,
        )
        return binding, [message], rest.response_body

    def _not_found(self, request: HttpRequest, also_post: bool) -> GatewayError:
        allowed = self._allowed_methods(request)
        if also_post:
            allowed.append("POST")
        if allowed:
            return MethodNotAllowed(
                f"{request.path} takes {', '.join(allowed)}, not {request.method}",
                headers=[("allow", ", ".join(allowed))],
            )
        message = f"unknown service or method: {request.method} {request.path}"
        return UnknownService(message) if self._services_may_arrive else RouteNotFound(message)

    def _allowed_methods(self, request: HttpRequest) -> list[str]:
        rest = self.transcoding.rest
        if rest is None:
            return []
        return [
            m
            for m in self.transcoding.rest_http_methods
            if m != request.method and rest.lookup(m, request.target_path) is not None
        ]


def _body_messages(binding: RpcMethod, body: bytes, request: HttpRequest) -> list[Message]:
    if not binding.client_streaming:
        return [binding.input.parse_json(body)]
    return stream_messages(binding.input, body, request.headers.get("content-type", ""))


@dataclass(frozen=True, slots=True)
class TranscodedCall:
    call: Call
    binding: RpcMethod
    response_body: str
    transcoding: Transcoding
    limits: Limits

    def encode(self, reply: Reply) -> HttpResponse:
        output = self.binding.output
        try:
            message = output.parse_bytes(reply.body)
        except Exception as exc:
            raise GatewayError(
                f"backend sent an invalid {output.full_name}: {exc}", grpc_code=Code.INTERNAL
            ) from None
        content_type, body = response_payload(output, message, self.response_body)
        if len(body) > self.limits.max_response_bytes:
            # The wire reply fitted (the channel's receive limit), its JSON did not.
            raise BadUpstreamResponse(
                f"response exceeds max_response_bytes ({self.limits.max_response_bytes})"
            )
        return HttpResponse(
            200,
            [
                ("content-type", content_type),
                *response_headers(reply.initial_metadata, reply.trailing_metadata),
            ],
            body,
        )

    async def encode_stream(self, stream: ReplyStream) -> HttpResponse:
        encoder = StreamEncoder(self.transcoding.stream_format)
        reader = ReadAhead(stream.messages)
        # Wait for the first message (or the status) before answering, so a
        # call that fails at once still gets its own HTTP status.
        try:
            first = await reader.take()
        except BaseException:
            await reader.aclose()
            raise
        output = self.binding.output
        http_body = output.full_name == HTTP_BODY
        render = _renderer(output, self.response_body, None if http_body else encoder)
        limit = self.limits.max_response_bytes

        async def body() -> AsyncIterator[bytes]:
            batch = first
            sent = 0
            try:
                while batch:
                    # The messages read while the last chunk was written go
                    # out together: one chunk, one write.
                    chunks: list[bytes] = []
                    for raw in batch:
                        chunk = render(raw)
                        sent += len(chunk)
                        if sent > limit:
                            if chunks:
                                yield b"".join(chunks)
                            # Cut here: the status is sent already, so the
                            # error goes as the stream's last record.
                            raise BadUpstreamResponse(
                                f"response stream exceeds max_response_bytes ({limit})"
                            )
                        chunks.append(chunk)
                    yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    batch = await reader.take()
            except GatewayError as error:
                yield encoder.error(error.body())
                return
            finally:
                # Ends the backend call at once (the client left, or the cut).
                await reader.aclose()
            if not http_body:
                yield encoder.end()

        content_type = "application/octet-stream" if http_body else encoder.content_type
        return HttpResponse(
            200,
            [("content-type", content_type), *response_headers(stream.initial_metadata)],
            stream=body(),
        )


def _renderer(
    output: MessageCodec, response_body: str, encoder: StreamEncoder | None
) -> Callable[[bytes], bytes]:
    """One stream message's bytes as sent: its JSON framed by ``encoder``, or
    (None: an ``HttpBody`` stream) the body's raw data."""
    parse = output.parse_bytes
    if encoder is None:
        return lambda raw: response_payload(output, parse(raw), response_body)[1]
    frame = encoder.message
    if not response_body:
        # The whole message: no field walk, no HttpBody check per message.
        to_json = output.wire_to_json()
        return lambda raw: frame(to_json(raw))
    return lambda raw: frame(response_payload(output, parse(raw), response_body)[1])
