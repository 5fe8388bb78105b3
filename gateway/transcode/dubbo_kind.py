"""The Dubbo JSON route kind: JSON arguments straight to a Dubbo service, no IDL.

``POST /{interface}/{method}`` with a JSON array of arguments (or one value,
or an object by parameter name, where the peer accepts it). The interface and
method come from the path unless the route pins them. The call goes out over
Triple's HTTP/JSON mode or dubbo2 generic invocation, whichever the cluster
speaks; the result comes back as JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from filters.http import HttpRequest, HttpResponse
from gateway.config import DubboRouteConfig
from gateway.errors import MethodNotAllowed, RouteNotFound
from gateway.transcode.protobuf_kind import Limits, read_body
from gateway.transcode.route_kind import Encoding
from gateway.upstream.call import Call, DubboOptions, Metadata, Reply, ReplyStream
from gateway.upstream.generic import no_streaming, parse_parameter_types
from gateway.upstream.metadata import request_metadata, response_headers

TYPES_HEADER = "x-dubbo-service-method-overloading"
JSON = "application/json"
# (interface, method) -> Java parameter types, from a registry's provider metadata.
TypesLookup = Callable[[str, str], Sequence[str] | None]


def dubbo_target(config: DubboRouteConfig, path: str) -> tuple[str, str]:
    """(interface, method): pinned by the route, or the last two path segments."""
    segments = [s for s in path.split("/") if s]
    method = config.method or (segments[-1] if segments else "")
    interface = config.interface or (segments[-2] if len(segments) >= 2 else "")
    if not interface or not method:
        raise RouteNotFound(f"expected POST /{{interface}}/{{method}}, got {path}")
    return interface, method


class DubboJson:
    encoding: Encoding = "json"

    def __init__(
        self,
        config: DubboRouteConfig,
        limits: Limits,
        cluster: DubboOptions,
        published_types: TypesLookup | None = None,
    ) -> None:
        self._config = config
        self._published_types = published_types
        self._limits = limits
        # The route's group and version win over the cluster's.
        self._dubbo = DubboOptions(
            config.group or cluster.group, config.version or cluster.version, cluster.application
        )
        self._attachments: Metadata = tuple(config.attachments.items())

    async def decode(self, request: HttpRequest) -> DubboCall:
        if request.method != "POST":
            raise MethodNotAllowed(
                f"{request.path} takes POST, not {request.method}", headers=[("allow", "POST")]
            )
        interface, method = dubbo_target(self._config, request.target_path)
        body = await read_body(request, self._limits)
        headers = request.headers
        attachments = tuple(
            (k, v)
            for k, v in request_metadata(request.header_list)
            if isinstance(v, str) and not k.startswith("x-dubbo-")
        )
        options = self._dubbo.for_request(headers)
        types: Sequence[str] | None = parse_parameter_types(
            headers.get(TYPES_HEADER)
        ) or self._config.parameter_types.get(method)
        if types is None and self._published_types is not None:
            types = self._published_types(interface, method)
        options = DubboOptions(options.group, options.version, options.application, types)
        return DubboCall(
            Call(interface, method, [body], (*attachments, *self._attachments), dubbo=options)
        )


@dataclass(frozen=True, slots=True)
class DubboCall:
    call: Call
    headers: tuple[tuple[str, str], ...] = field(default=(("content-type", JSON),))

    def encode(self, reply: Reply) -> HttpResponse:
        return HttpResponse(
            200, [*self.headers, *response_headers(reply.initial_metadata)], reply.body
        )

    async def encode_stream(self, stream: ReplyStream) -> HttpResponse:
        raise no_streaming(self.call)
