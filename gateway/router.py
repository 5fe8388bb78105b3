"""The router: finds the route, then runs the route's filter chain around the call.

    route  = table.find(request)            first match wins (route_table)
    (route.filters wrap the rest)           filter_chain: per route, after matching
    call   = route.kind.decode(request)     transcode/: protobuf or Dubbo JSON
    plan   = route.cluster.select(call)     upstream/clusters: endpoint, policies
    reply  = invoker.unary(plan, call)      upstream/invoker: deadline, fault, cap, retries
    return call.encode(reply)               back through the route kind

Every failure becomes a JSON error response here, innermost, so the filters
around the call see errors as ordinary responses. A request that matches no
route runs the listener's filters around the 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from filters.http import Filter, Handler, HttpRequest, HttpResponse
from gateway.errors import GatewayError, RouteNotFound, UnknownService, error_response
from gateway.exposure import Exposure
from gateway.filter_chain import wrap
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


# (is this request for a document?, wrap(next handler) -> the handler serving it)
Documents = tuple[Callable[[HttpRequest], bool], Callable[[Handler], Handler]]

# Fetches descriptors by reflection again and returns the router of the
# resulting snapshot for the same listener, or None if nothing changed.
Refresh = Callable[[], Awaitable["Router | None"]]


@dataclass(frozen=True, slots=True)
class _Entry:
    route: CompiledRoute
    # The route's filters around the call, built once per router.
    handler: Handler


class Router:
    def __init__(
        self,
        routes: RouteTable[CompiledRoute],
        upstreams: Upstreams,
        refresh: Refresh | None = None,
        listener_filters: Sequence[Filter] = (),
        exposures: Sequence[Exposure] = (),
        documents: Documents | None = None,
    ) -> None:
        self._routes = routes
        self._exposures = tuple(exposures)
        self._upstreams = upstreams
        self._refresh = refresh
        self._entries = RouteTable(
            tuple((match, self._entry(route)) for match, route in routes.entries)
        )
        # Requests no listed route takes: routes exposed from a registry, or 404,
        # behind the listener's own filters.
        self._unmatched = wrap(listener_filters, self._exposed_or_not_found)
        # Documents of the listener (OpenAPI) answer before the routes, behind the
        # listener's filters like any request no route takes.
        self._documents: tuple[Callable[[HttpRequest], bool], Handler] | None = None
        if documents is not None:
            claims, serve = documents
            self._documents = (claims, wrap(listener_filters, serve(self._exposed_or_not_found)))

    def _entry(self, route: CompiledRoute) -> _Entry:
        async def call(request: HttpRequest) -> HttpResponse:
            return await self._call(route, request)

        return _Entry(route, wrap(route.filters, call))

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._documents is not None and self._documents[0](request):
            return await self._documents[1](request)
        entry = self._entries.find(
            request.method, request.path, request.headers, request.query_string
        )
        if entry is None:
            return await self._unmatched(request)
        return await entry.handler(request)

    async def _call(self, route: CompiledRoute, request: HttpRequest) -> HttpResponse:
        try:
            try:
                return await self.invoke(route, request)
            except UnknownService as missing:
                fresh = await self._refresh() if self._refresh is not None else None
                if fresh is None:
                    raise RouteNotFound(missing.message) from None
                # The new snapshot's router, once; the filters have run already.
                return await fresh.serve(request)
        except GatewayError as error:
            return error_response(error)

    async def serve(self, request: HttpRequest) -> HttpResponse:
        """Match and call, without the filters (they ran before a reflection refresh)."""
        headers = request.headers
        # The path as sent, as Envoy matches it: %2F is not a segment separator.
        route = self._routes.find(
            request.method, request.target_path, headers, request.query_string
        )
        if route is None:
            route = self._exposed(request.path)
        if route is None:
            raise RouteNotFound(f"no route for {request.method} {request.path}")
        return await self.invoke(route, request)

    async def invoke(self, route: CompiledRoute, request: HttpRequest) -> HttpResponse:
        headers = request.headers
        exchange = request.exchange
        if exchange is not None:
            # Before decoding, so a request refused there (400, 413) names its route too.
            exchange.route = route.name
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
        upstream_name = plan.upstream or route.upstream
        upstream = upstreams.clients.get(upstream_name)
        if exchange is not None:
            exchange.cluster = plan.cluster
            exchange.upstream = upstream_name
        invoker = upstreams.invoker
        if call.server_streaming:
            stream = await invoker.stream(plan, upstream, call, timeout, exchange)
            return await decoded.encode_stream(stream)
        return decoded.encode(await invoker.unary(plan, upstream, call, timeout, exchange))

    async def _exposed_or_not_found(self, request: HttpRequest) -> HttpResponse:
        route = self._exposed(request.path)
        if route is None:
            return error_response(RouteNotFound(f"no route for {request.method} {request.path}"))
        return await self._call(route, request)

    def _exposed(self, path: str) -> CompiledRoute | None:
        """A route an exposure made from a registry (after the listed routes)."""
        for exposure in self._exposures:
            found = exposure.find(path)
            if found is not None:
                return found
        return None
