"""Static clusters at run time: a picker over endpoints and an in-flight cap."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config import Cluster, split_address
from mesh.endpoint import Endpoint
from mesh.lb import Picker, build_picker


@dataclass(slots=True)
class StaticCluster:
    name: str
    protocol: str
    endpoints: tuple[Endpoint, ...]
    picker: Picker
    max_requests: int
    group: str | None = None
    version: str | None = None
    application: str = "meshgate"
    in_flight: int = field(default=0)

    @classmethod
    def from_config(cls, config: Cluster) -> StaticCluster:
        endpoints = tuple(
            Endpoint(*split_address(e.address), weight=e.weight,
                     labels=tuple(sorted(e.labels.items())))
            for e in config.endpoints
        )
        return cls(config.name, config.protocol, endpoints, build_picker(config.lb, endpoints),
                   config.max_requests, config.group, config.version, config.application)
