"""The router: the last handler of a listener's filter chain.

    route  = table.find(request)            first match wins (route_table)
    call   = route.kind.decode(request)     transcode/: protobuf or Dubbo JSON
    plan   = route.cluster.select(call)     upstream/clusters: endpoint, policies
    reply  = invoker.unary(plan, call)      upstream/invoker: deadline, fault, cap, retries
    return call.encode(reply)               back through the route kind

Every failure becomes a JSON error response here, innermost, so the filters
around the router see errors as ordinary responses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from filters.http import HttpRequest, HttpResponse
from gateway.errors import GatewayError, RouteNotFound, UnknownService, error_response
from gateway.route_table import RouteTable
from gateway.snapshot import CompiledRoute
from gateway.upstream.invoker import Invoker
from gateway.upstream.mesh import MeshClient
from gateway.upstream.metadata import deadline_from_headers
from gateway.upstream.registry import UpstreamClients
from mesh.hashing import RequestAttributes


@dataclass(slots=True)
class Upstreams:
    """What every router of a worker shares to reach upstreams."""

    clients: UpstreamClients = field(default_factory=UpstreamClients)
    invoker: Invoker = field(default_factory=Invoker)
    # The worker's mesh core, once started (configs with mesh.xds).
    mesh: MeshClient | None = None


# Fetches descriptors by reflection again and returns the router of the
# resulting snapshot for the same listener, or None if nothing changed.
Refresh = Callable[[], Awaitable["Router | None"]]


class Router:
    def __init__(
        self,
        routes: RouteTable[CompiledRoute],
        upstreams: Upstreams,
        refresh: Refresh | None = None,
    ) -> None:
        self._routes = routes
        self._upstreams = upstreams
        self._refresh = refresh

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            try:
                return await self.serve(request)
            except UnknownService as missing:
                fresh = await self._refresh() if self._refresh is not None else None
                if fresh is None:
                    raise RouteNotFound(missing.message) from None
                # The new snapshot's router, once; the filters have run already.
                return await fresh.serve(request)
        except GatewayError as error:
            return error_response(error)

    async def serve(self, request: HttpRequest) -> HttpResponse:
        headers = request.headers
        route = self._routes.find(request.method, request.path, headers, request.query_string)
        if route is None:
            raise RouteNotFound(f"no route for {request.method} {request.path}")
        decoded = await route.kind.decode(request)
        call = decoded.call
        timeout = deadline_from_headers(
            route.timeout, headers.get("grpc-timeout"), headers.get("x-request-timeout")
        )
        attributes = RequestAttributes(
            request.client[0] if request.client else None,
            request.query_string,
            request.header_list,
        )
        upstreams = self._upstreams
        plan = route.cluster.select(call, headers, attributes, upstreams.mesh)
        upstream = upstreams.clients.get(route.upstream)
        if call.server_streaming:
            stream = await upstreams.invoker.stream(plan, upstream, call, timeout)
            return await decoded.encode_stream(stream)
        return decoded.encode(await upstreams.invoker.unary(plan, upstream, call, timeout))
