"""Routes with a ``dubbo:`` section: JSON straight to a Dubbo service, no IDL."""

from __future__ import annotations

from filters.http import HttpRequest, HttpResponse
from gateway.clusters import StaticCluster
from gateway.config import DubboRoute
from gateway.errors import MethodNotAllowed, RouteNotFound
from gateway.invoke import overloaded
from gateway.plan import CallPlan
from gateway.snapshot import CompiledRoute
from gateway.upstream.generic import GenericCall, parse_parameter_types
from gateway.upstream.metadata import deadline_from_headers, request_metadata
from gateway.upstream.pool import Upstreams
from gateway.upstream.triple import GROUP_HEADER, VERSION_HEADER

TYPES_HEADER = "x-dubbo-service-method-overloading"


def dubbo_target(config: DubboRoute, path: str) -> tuple[str, str]:
    """(interface, method): pinned by the route, or the last two path segments."""
    segments = [s for s in path.split("/") if s]
    method = config.method or (segments[-1] if segments else "")
    interface = config.interface or (segments[-2] if len(segments) >= 2 else "")
    if not interface or not method:
        raise RouteNotFound(f"expected POST /{{interface}}/{{method}}, got {path}")
    return interface, method


async def serve_generic(plan: CallPlan, upstreams: Upstreams, route: CompiledRoute,
                        request: HttpRequest, body: bytes, cluster: StaticCluster | None,
                        interface: str, method: str) -> HttpResponse:
    config = route.dubbo
    assert config is not None
    if request.method != "POST":
        raise MethodNotAllowed(f"{request.path} takes POST, not {request.method}",
                               headers=[("allow", "POST")])
    headers = request.headers
    attachments = {k: v for k, v in request_metadata(request.header_list)
                   if isinstance(v, str) and not k.startswith("x-dubbo-")}
    attachments.update(config.attachments)
    call = GenericCall(
        interface=interface,
        method=method,
        body=body,
        group=headers.get(GROUP_HEADER) or config.group or (cluster.group if cluster else None),
        version=(headers.get(VERSION_HEADER) or config.version
                 or (cluster.version if cluster else None)),
        parameter_types=(parse_parameter_types(headers.get(TYPES_HEADER))
                         or config.parameter_types.get(method)),
        attachments=attachments,
        application=cluster.application if cluster else "meshgate",
        timeout=deadline_from_headers(route.timeout, headers.get("grpc-timeout"),
                                      headers.get("x-request-timeout")),
    )
    upstream = upstreams.generic(plan.protocol)
    endpoint = plan.first
    if not plan.begin(endpoint):
        raise overloaded(plan)
    try:
        reply = await upstream.call(endpoint.address, call)
    finally:
        plan.end(endpoint)
    return HttpResponse(200, [("content-type", "application/json"), *reply.headers],
                        reply.body)
