"""The router: the last handler of a listener's filter chain.

Matches the route, binds the method, turns the JSON body into protobuf,
calls the cluster with the route's deadline and retry policy, and renders
the reply. Every failure becomes a JSON error response here, innermost, so
the filters around the router see errors as ordinary responses.
"""

from __future__ import annotations

import asyncio
import random
import time

from filters.http import BodyTooLarge, HttpRequest, HttpResponse
from gateway.errors import (
    GatewayError,
    MethodNotAllowed,
    PayloadTooLarge,
    RouteNotFound,
    UpstreamUnavailable,
)
from gateway.retry import backoff_delay, retryable_codes
from gateway.snapshot import CompiledListener, CompiledRoute, MethodBinding, Snapshot
from gateway.upstream.grpc import GrpcUpstream, UnaryReply
from gateway.upstream.metadata import (
    Metadata,
    deadline_from_headers,
    request_metadata,
    response_headers,
)
from mesh.lb import NoEndpointError

JSON_HEADERS = [("content-type", "application/json")]


def error_response(error: GatewayError) -> HttpResponse:
    return HttpResponse(error.status, [*JSON_HEADERS, *error.headers], error.body())


class Router:
    def __init__(self, snapshot: Snapshot, listener: CompiledListener, grpc: GrpcUpstream,
                 rng: random.Random | None = None) -> None:
        self._snapshot = snapshot
        self._routes = listener.routes
        self._grpc = grpc
        self._rng = rng or random.Random()

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self._handle(request)
        except GatewayError as error:
            return error_response(error)

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        route = self._routes.find(request.method, request.path, request.headers,
                                  request.query_string)
        if route is None:
            raise RouteNotFound(f"no route for {request.method} {request.path}")
        binding = route.methods.get(request.path)
        if binding is None:
            raise RouteNotFound(f"unknown service or method: {request.path}")
        if request.method != "POST":
            raise MethodNotAllowed(f"{request.path} takes POST, not {request.method}",
                                   headers=[("allow", "POST")])
        if binding.client_streaming or binding.server_streaming:
            raise GatewayError("streaming methods are not served by auto mapping yet",
                               grpc_code=12)
        try:
            body = await request.read_body(route.max_request_bytes)
        except BodyTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        message = binding.input.parse_json(body)
        headers = request.headers
        timeout = deadline_from_headers(route.timeout, headers.get("grpc-timeout"),
                                        headers.get("x-request-timeout"))
        metadata = request_metadata(request.header_list)
        reply = await self._call(route, binding, message.SerializeToString(), metadata, timeout)
        try:
            out = binding.output.parse_bytes(reply.body)
        except Exception as exc:
            raise GatewayError(f"backend sent an invalid {binding.output.full_name}: {exc}",
                               grpc_code=13) from None
        return HttpResponse(
            200,
            [*JSON_HEADERS, *response_headers(reply.initial_metadata, reply.trailing_metadata)],
            binding.output.render(out),
        )

    async def _call(self, route: CompiledRoute, binding: MethodBinding, payload: bytes,
                    metadata: Metadata, timeout: float | None) -> UnaryReply:
        cluster = self._snapshot.clusters.get(route.cluster)
        if cluster is None:
            raise UpstreamUnavailable(f"cluster {route.cluster!r} is not available")
        policy = route.retry
        retries_left = policy.attempts if policy else 0
        codes = retryable_codes(policy) if policy else frozenset()
        deadline = time.monotonic() + timeout if timeout else None
        retry_number = 0
        while True:
            try:
                address = cluster.picker.pick().address
            except NoEndpointError as exc:
                raise UpstreamUnavailable(f"cluster {cluster.name!r}: {exc}") from None
            try_timeout = _remaining(deadline)
            if policy and policy.per_try_timeout:
                try_timeout = min(try_timeout or policy.per_try_timeout, policy.per_try_timeout)
            cluster.acquire()
            try:
                return await self._grpc.unary(address, binding.path, payload, metadata,
                                              try_timeout)
            except GatewayError as error:
                out_of_time = deadline is not None and time.monotonic() >= deadline
                if retries_left <= 0 or error.grpc_code not in codes or out_of_time:
                    raise
            finally:
                cluster.release()
            retries_left -= 1
            retry_number += 1
            assert policy is not None
            await asyncio.sleep(min(backoff_delay(policy, retry_number, self._rng),
                                    _remaining(deadline) or policy.max_backoff))


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(deadline - time.monotonic(), 0.001)
