"""Routes with a ``dubbo:`` section: JSON straight to a Dubbo service, no IDL."""

from __future__ import annotations

from filters.http import HttpRequest, HttpResponse
from gateway.errors import GatewayError, MethodNotAllowed, RouteNotFound, UpstreamUnavailable
from gateway.snapshot import CompiledRoute, Snapshot
from gateway.upstream.generic import GenericCall, parse_parameter_types
from gateway.upstream.metadata import deadline_from_headers, request_metadata
from gateway.upstream.pool import Upstreams
from gateway.upstream.triple import GROUP_HEADER, VERSION_HEADER
from mesh.lb import NoEndpointError

TYPES_HEADER = "x-dubbo-service-method-overloading"


async def serve_generic(snapshot: Snapshot, upstreams: Upstreams, route: CompiledRoute,
                        request: HttpRequest, body: bytes) -> HttpResponse:
    config = route.dubbo
    assert config is not None
    cluster = snapshot.clusters.get(route.cluster)
    if cluster is None:
        raise UpstreamUnavailable(f"cluster {route.cluster!r} is not available")
    if request.method != "POST":
        raise MethodNotAllowed(f"{request.path} takes POST, not {request.method}",
                               headers=[("allow", "POST")])
    segments = [s for s in request.path.split("/") if s]
    method = config.method or (segments[-1] if segments else "")
    interface = config.interface or (segments[-2] if len(segments) >= 2 else "")
    if not interface or not method:
        raise RouteNotFound(f"expected POST /{{interface}}/{{method}}, got {request.path}")
    headers = request.headers
    attachments = {k: v for k, v in request_metadata(request.header_list)
                   if isinstance(v, str) and not k.startswith("x-dubbo-")}
    attachments.update(config.attachments)
    call = GenericCall(
        interface=interface,
        method=method,
        body=body,
        group=headers.get(GROUP_HEADER) or config.group or cluster.group,
        version=headers.get(VERSION_HEADER) or config.version or cluster.version,
        parameter_types=(parse_parameter_types(headers.get(TYPES_HEADER))
                         or config.parameter_types.get(method)),
        attachments=attachments,
        application=cluster.application,
        timeout=deadline_from_headers(route.timeout, headers.get("grpc-timeout"),
                                      headers.get("x-request-timeout")),
    )
    try:
        address = cluster.picker.pick().address
    except NoEndpointError as exc:
        raise UpstreamUnavailable(f"cluster {cluster.name!r}: {exc}") from None
    cluster.acquire()
    try:
        reply = await upstreams.generic(cluster.protocol).call(address, call)
    except GatewayError:
        raise
    finally:
        cluster.release()
    return HttpResponse(200, [("content-type", "application/json"), *reply.headers],
                        reply.body)
