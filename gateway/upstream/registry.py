"""The protocol clients of one worker, by name, created on first use.

A route is compiled to one of these names (its cluster's protocol and its
kind's encoding, see :func:`upstream_name`), so the router asks for a client
by a name it already knows to exist.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Literal

from gateway.tls.transport import TlsTransports
from gateway.upstream.call import Upstream
from gateway.upstream.dubbo import DubboUpstream
from gateway.upstream.grpc import GrpcUpstream
from gateway.upstream.triple import TripleUpstream
from gateway.upstream.triple_json import TripleJsonUpstream

UpstreamName = Literal["grpc", "triple", "triple-json", "dubbo2"]
Encoding = Literal["proto", "json"]

# (cluster protocol, what the route kind sends) -> the client that speaks it.
UPSTREAMS: dict[tuple[str, Encoding], UpstreamName] = {
    ("grpc", "proto"): "grpc",
    ("triple", "proto"): "triple",
    ("triple", "json"): "triple-json",
    ("dubbo", "json"): "dubbo2",
}


def upstream_name(protocol: str, encoding: Encoding) -> UpstreamName | None:
    """None when no client carries that encoding over that protocol."""
    return UPSTREAMS.get((protocol, encoding))


class UpstreamClients:
    def __init__(self, factories: dict[UpstreamName, Callable[[], Upstream]] | None = None) -> None:
        # One TLS transport for every protocol client of the worker.
        self.tls = TlsTransports()
        self._grpc = GrpcUpstream(self.tls)
        self._factories: dict[UpstreamName, Callable[[], Upstream]] = factories or {
            "grpc": lambda: self._grpc,
            "triple": lambda: TripleUpstream(self._grpc),
            "triple-json": lambda: TripleJsonUpstream(tls=self.tls),
            "dubbo2": lambda: DubboUpstream(tls=self.tls),
        }
        self._clients: dict[UpstreamName, Upstream] = {}

    def get(self, name: UpstreamName) -> Upstream:
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self._factories[name]()
        return client

    async def retain(self, addresses: Collection[str]) -> None:
        """Close connections to endpoints that left every cluster (EDS or the config)."""
        self._grpc.retain(addresses)
        for name in ("dubbo2", "triple-json"):
            client = self._clients.get(name)
            if isinstance(client, DubboUpstream | TripleJsonUpstream):
                await client.retain(addresses)

    @property
    def grpc(self) -> GrpcUpstream:
        """The gRPC (and Triple) channels, which follow the clusters' endpoints."""
        return self._grpc

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
        await self._grpc.close()
        await self.tls.close()
