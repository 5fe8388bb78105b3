"""The router: the last handler of a listener's filter chain.

Matches the route, finds the RPC (auto-mapped path or ``google.api.http``
binding), builds the request message, calls the cluster with the route's
deadline and retry policy, and renders the reply. Every failure becomes a
JSON error response here, innermost, so the filters around the router see
errors as ordinary responses.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

from google.protobuf.message import Message

from filters.http import BodyTooLarge, HttpRequest, HttpResponse
from gateway.errors import (
    GatewayError,
    MethodNotAllowed,
    PayloadTooLarge,
    RouteNotFound,
    UnknownService,
    UpstreamUnavailable,
)
from gateway.generic_route import dubbo_target, serve_generic
from gateway.invoke import Invoker
from gateway.plan import CallPlan, static_plan
from gateway.snapshot import CompiledListener, CompiledRoute, Snapshot
from gateway.transcode.bindings import MethodBinding, RestTarget, Transcoding
from gateway.transcode.path_matcher import VariableBinding
from gateway.transcode.requests import stream_messages
from gateway.transcode.rest import bindings_into, body_into, response_payload
from gateway.transcode.streaming import StreamEncoder
from gateway.upstream.metadata import deadline_from_headers, request_metadata, response_headers
from gateway.upstream.pool import Upstreams
from gateway.upstream.triple import normalize_triple_error, triple_headers

JSON_HEADERS = [("content-type", "application/json")]


def error_response(error: GatewayError) -> HttpResponse:
    return HttpResponse(error.status, [*JSON_HEADERS, *error.headers], error.body())


class Router:
    def __init__(self, snapshot: Snapshot, listener: CompiledListener, upstreams: Upstreams,
                 rng: random.Random | None = None) -> None:
        self._snapshot = snapshot
        self._routes = listener.routes
        self._upstreams = upstreams
        self._invoker = Invoker(upstreams.grpc, rng or random.Random())

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self._handle(request)
        except UnknownService:
            raise
        except GatewayError as error:
            return error_response(error)

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        route = self._routes.find(request.method, request.path, request.headers,
                                  request.query_string)
        if route is None:
            raise RouteNotFound(f"no route for {request.method} {request.path}")
        if route.dubbo is not None:
            interface, method = dubbo_target(route.dubbo, request.path)
            body = await _read(request, route)
            plan = self._plan(route, request, f"/{interface}/{method}", interface)
            return await serve_generic(plan, self._upstreams, route, request, body,
                                       self._snapshot.clusters.get(route.cluster),
                                       interface, method)
        if route.transcoding is None:
            raise RouteNotFound(f"route {route.name!r} has nothing to serve {request.path}")
        binding, messages, response_body = await self._request_messages(
            route, route.transcoding, request)
        headers = request.headers
        timeout = deadline_from_headers(route.timeout, headers.get("grpc-timeout"),
                                        headers.get("x-request-timeout"))
        metadata = request_metadata(request.header_list)
        plan = self._plan(route, request, binding.path, binding.path.split("/")[1])
        cluster = self._snapshot.clusters.get(route.cluster)
        if cluster is not None and cluster.protocol == "triple":
            metadata = (*metadata, *triple_headers(cluster, request.headers, timeout))
        payloads = [m.SerializeToString() for m in messages]
        if binding.server_streaming:
            return await self._stream(plan, binding, payloads, metadata, timeout,
                                      route.transcoding, response_body)
        try:
            reply = await self._invoker.unary(plan, binding, payloads, metadata, timeout)
        except GatewayError as error:
            raise (normalize_triple_error(error) if plan.protocol == "triple" else error) from None
        try:
            out = binding.output.parse_bytes(reply.body)
        except Exception as exc:
            raise GatewayError(f"backend sent an invalid {binding.output.full_name}: {exc}",
                               grpc_code=13) from None
        content_type, body = response_payload(binding.output, out, response_body)
        if len(body) > route.max_response_bytes:
            raise GatewayError(f"response exceeds max_response_bytes "
                               f"({route.max_response_bytes})", grpc_code=13)
        return HttpResponse(
            200,
            [("content-type", content_type),
             *response_headers(reply.initial_metadata, reply.trailing_metadata)],
            body,
        )

    async def _request_messages(self, route: CompiledRoute, transcoding: Transcoding,
                                request: HttpRequest
                                ) -> tuple[MethodBinding, list[Message], str]:
        """The RPC, its request message(s), and the reply field to answer with."""
        auto = transcoding.methods.get(request.path)
        if auto is not None and request.method == "POST":
            body = await _read(request, route)
            return auto, _messages_from_body(auto, body, request), ""
        target = self._rest_match(transcoding, request)
        if target is None:
            allowed = _allowed_methods(transcoding, request)
            if auto is not None:
                allowed.append("POST")
            if allowed:
                raise MethodNotAllowed(f"{request.path} takes {', '.join(allowed)}, "
                                       f"not {request.method}",
                                       headers=[("allow", ", ".join(allowed))])
            message = f"unknown service or method: {request.method} {request.path}"
            if self._snapshot.reflection_clusters:
                raise UnknownService(message)
            raise RouteNotFound(message)
        rest, match_bindings = target
        binding = rest.method
        body = await _read(request, route)
        content_type = request.headers.get("content-type", "")
        if binding.client_streaming:
            messages = _messages_from_body(binding, body, request) if rest.body else []
            for message in messages:
                bindings_into(binding.input, message, match_bindings, transcoding.query,
                              rest.path_variables)
            return binding, messages, rest.response_body
        # Envoy's precedence: the body beats path variables, query parameters
        # beat both.
        message = binding.input.new()
        path_count = rest.path_variables
        bindings_into(binding.input, message, match_bindings[:path_count], transcoding.query,
                      path_count)
        body_into(binding.input, message, rest.body, body, content_type)
        bindings_into(binding.input, message, match_bindings[path_count:], transcoding.query, 0)
        return binding, [message], rest.response_body

    def _rest_match(self, transcoding: Transcoding, request: HttpRequest
                    ) -> tuple[RestTarget, tuple[VariableBinding, ...]] | None:
        if transcoding.rest is None:
            return None
        match = transcoding.rest.lookup(request.method, _raw_path(request),
                                        request.query_string.decode("latin-1"))
        if match is None:
            return None
        return match.payload, match.bindings

    def _plan(self, route: CompiledRoute, request: HttpRequest, rpc_path: str,
              service: str) -> CallPlan:
        if route.xds_target is not None:
            mesh = self._upstreams.mesh
            if mesh is None:
                raise UpstreamUnavailable("the mesh core is not running in this worker")
            target = mesh.target_for(route.cluster, service)
            return mesh.plan(target, rpc_path, request.headers, "grpc")
        cluster = self._snapshot.clusters.get(route.cluster)
        if cluster is None:
            raise UpstreamUnavailable(f"cluster {route.cluster!r} is not available")
        return static_plan(cluster, None, route.retry)

    async def _stream(self, plan: CallPlan, binding: MethodBinding,
                      payloads: list[bytes], metadata: tuple[tuple[str, str | bytes], ...],
                      timeout: float | None, transcoding: Transcoding,
                      response_body: str) -> HttpResponse:
        initial, messages = await self._invoker.stream(plan, binding, payloads, metadata,
                                                       timeout)
        encoder = StreamEncoder(transcoding.stream_format)
        # Wait for the first message (or the status) before answering, so a
        # call that fails at once still gets its own HTTP status.
        first: bytes | None
        try:
            first = await anext(messages)
        except StopAsyncIteration:
            first = None
        http_body = binding.output.new().DESCRIPTOR.full_name == "google.api.HttpBody"

        def render(raw: bytes) -> bytes:
            message = binding.output.parse_bytes(raw)
            _, body = response_payload(binding.output, message, response_body)
            return body if http_body else encoder.message(body)

        async def body() -> AsyncIterator[bytes]:
            if first is None:
                if not http_body:
                    yield encoder.end()
                return
            yield render(first)
            try:
                async for raw in messages:
                    yield render(raw)
            except GatewayError as error:
                yield encoder.error(error.body())
                return
            if not http_body:
                yield encoder.end()

        content_type = "application/octet-stream" if http_body else encoder.content_type
        return HttpResponse(200, [("content-type", content_type),
                                  *response_headers(initial)], stream=body())


async def _read(request: HttpRequest, route: CompiledRoute) -> bytes:
    try:
        return await request.read_body(route.max_request_bytes)
    except BodyTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None


def _messages_from_body(binding: MethodBinding, body: bytes,
                        request: HttpRequest) -> list[Message]:
    if not binding.client_streaming:
        return [binding.input.parse_json(body)]
    return stream_messages(binding.input, body, request.headers.get("content-type", ""))


def _raw_path(request: HttpRequest) -> str:
    raw = request.attributes.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1")
    return request.path


def _allowed_methods(transcoding: Transcoding, request: HttpRequest) -> list[str]:
    if transcoding.rest is None:
        return []
    path = _raw_path(request)
    return [m for m in transcoding.rest_http_methods
            if m != request.method and transcoding.rest.lookup(m, path) is not None]
