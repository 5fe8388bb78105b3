"""Triple's gRPC-compatible mode: a gRPC call plus Dubbo's own headers.

Group and version select one of several providers of the same interface;
Java and Go providers read them from ``tri-service-group`` and
``tri-service-version``. The request headers ``x-dubbo-service-group`` and
``x-dubbo-service-version`` (Pixiu's names) override the route's and the
cluster's values (see :class:`gateway.upstream.call.DubboOptions`).
"""

from __future__ import annotations

from dataclasses import replace

from gateway.errors import Code, GatewayError
from gateway.upstream.call import Call, DubboOptions, Reply, ReplyStream
from gateway.upstream.grpc import GrpcUpstream
from mesh.security import UpstreamTls


def triple_headers(dubbo: DubboOptions, timeout: float | None) -> tuple[tuple[str, str], ...]:
    out = [("tri-consumer-appname", dubbo.application)]
    if dubbo.group:
        out.append(("tri-service-group", dubbo.group))
    if dubbo.version:
        out.append(("tri-service-version", dubbo.version))
    if timeout is not None:
        # Dubbo reads its own timeout header in milliseconds besides grpc-timeout.
        out.append(("tri-service-timeout", str(max(1, int(timeout * 1000)))))
    return tuple(out)


def normalize_triple_error(error: GatewayError) -> GatewayError:
    """dubbo-go answers UNKNOWN "context deadline exceeded" when its own copy of
    the deadline fires before the client's; it is the same timeout."""
    if error.grpc_code == Code.UNKNOWN and "deadline exceeded" in error.message:
        error.grpc_code = Code.DEADLINE_EXCEEDED
    return error


class TripleUpstream:
    """Triple in gRPC mode over the worker's gRPC channels."""

    def __init__(self, grpc: GrpcUpstream) -> None:
        self._grpc = grpc

    async def unary(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> Reply:
        try:
            return await self._grpc.unary(address, _with_headers(call, timeout), timeout, security)
        except GatewayError as error:
            raise normalize_triple_error(error) from None

    async def stream(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> ReplyStream:
        try:
            return await self._grpc.stream(address, _with_headers(call, timeout), timeout, security)
        except GatewayError as error:
            raise normalize_triple_error(error) from None

    async def close(self) -> None:
        """The channels belong to the gRPC upstream, which closes them."""


def _with_headers(call: Call, timeout: float | None) -> Call:
    return replace(call, metadata=(*call.metadata, *triple_headers(call.dubbo, timeout)))
