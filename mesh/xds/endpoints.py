"""ClusterLoadAssignment (EDS) -> localities of endpoints, by priority."""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec
from envoy.config.endpoint.v3 import endpoint_pb2

from mesh.endpoint import Endpoint, Health
from mesh.errors import ResourceError
from mesh.xds.common import fraction

_HEALTH = {
    health_check_pb2.UNKNOWN: Health.UNKNOWN,
    health_check_pb2.HEALTHY: Health.HEALTHY,
    health_check_pb2.UNHEALTHY: Health.UNHEALTHY,
    health_check_pb2.DRAINING: Health.DRAINING,
    health_check_pb2.TIMEOUT: Health.UNHEALTHY,
    health_check_pb2.DEGRADED: Health.UNHEALTHY,
}
MAX_WEIGHT = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class LocalityEndpoints:
    locality: str  # "region/zone/sub_zone"
    weight: int
    priority: int
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True)
class LoadAssignment:
    name: str
    localities: tuple[LocalityEndpoints, ...]
    drop_overloads: tuple[tuple[str, int, int], ...] = ()

    @property
    def priorities(self) -> int:
        return 1 + max((loc.priority for loc in self.localities), default=-1)

    def references(self) -> tuple[str, ...]:
        return ()


def load_assignment(proto: endpoint_pb2.ClusterLoadAssignment) -> LoadAssignment:
    localities = []
    seen_localities: set[tuple[str, int]] = set()
    seen_addresses: set[str] = set()
    for group in proto.endpoints:
        name = "/".join((group.locality.region, group.locality.zone, group.locality.sub_zone))
        weight = group.load_balancing_weight.value if group.HasField("load_balancing_weight") else 0
        if weight == 0:
            continue  # gRFC A27: a locality without weight takes no traffic
        if (name, group.priority) in seen_localities:
            raise ResourceError(f"locality {name!r} appears twice in priority {group.priority}")
        seen_localities.add((name, group.priority))
        endpoints = tuple(_endpoint(e, name, group.priority) for e in group.lb_endpoints)
        for endpoint in endpoints:
            if endpoint.address in seen_addresses:
                raise ResourceError(f"duplicate endpoint address {endpoint.address}")
            seen_addresses.add(endpoint.address)
        if sum(e.weight for e in endpoints) > MAX_WEIGHT:
            raise ResourceError(f"locality {name!r}: endpoint weights overflow uint32")
        localities.append(LocalityEndpoints(name, weight, group.priority, endpoints))
    priorities = sorted({loc.priority for loc in localities})
    if priorities != list(range(len(priorities))):
        raise ResourceError(f"priorities {priorities} are not contiguous from 0")
    drops = tuple((d.category, *_drop_fraction(d)) for d in proto.policy.drop_overloads)
    return LoadAssignment(proto.cluster_name, tuple(localities), drops)


def _endpoint(proto: ec.LbEndpoint, locality: str, priority: int) -> Endpoint:
    if proto.WhichOneof("host_identifier") != "endpoint":
        raise ResourceError("lb_endpoint without an endpoint")
    address = proto.endpoint.address
    if not address.HasField("socket_address"):
        raise ResourceError("endpoint address is not a socket address")
    socket = address.socket_address
    if socket.WhichOneof("port_specifier") != "port_value":
        raise ResourceError(f"endpoint {socket.address}: needs a port_value")
    weight = 1
    if proto.HasField("load_balancing_weight"):
        weight = proto.load_balancing_weight.value
        if weight == 0:
            raise ResourceError(f"endpoint {socket.address}: load_balancing_weight must be > 0")
    return Endpoint(
        host=socket.address,
        port=socket.port_value,
        weight=weight,
        health=_HEALTH.get(proto.health_status, Health.UNHEALTHY),
        locality=locality,
        priority=priority,
    )


def _drop_fraction(drop: endpoint_pb2.ClusterLoadAssignment.Policy.DropOverload) -> tuple[int, int]:
    return fraction(drop.drop_percentage)
