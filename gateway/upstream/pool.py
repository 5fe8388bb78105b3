"""Every upstream client of one worker, created on first use, closed at shutdown."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from gateway.upstream.generic import GenericUpstream
from gateway.upstream.grpc import GrpcUpstream

if TYPE_CHECKING:
    from gateway.mesh_link import MeshLink

# protocol -> (module, class) of its generic (no-IDL) upstream
GENERIC_UPSTREAMS: dict[str, tuple[str, str]] = {
    "triple": ("gateway.upstream.triple_json", "TripleJsonUpstream"),
    "dubbo": ("gateway.upstream.dubbo", "DubboUpstream"),
}


class Upstreams:
    def __init__(self) -> None:
        self.grpc = GrpcUpstream()
        self._generic: dict[str, GenericUpstream] = {}
        # The worker's mesh core, when the config has mesh.xds.
        self.mesh: MeshLink | None = None

    def generic(self, protocol: str) -> GenericUpstream:
        upstream = self._generic.get(protocol)
        if upstream is None:
            module_name, class_name = GENERIC_UPSTREAMS[protocol]
            cls = getattr(importlib.import_module(module_name), class_name)
            upstream = cls()
            self._generic[protocol] = upstream
        return upstream

    async def close(self) -> None:
        await self.grpc.close()
        for upstream in self._generic.values():
            await upstream.close()
        self._generic.clear()
        if self.mesh is not None:
            await self.mesh.stop()
            self.mesh = None
