"""Cluster (CDS): EDS clusters with their LB policy and resilience settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from google.protobuf.message import Message

from mesh.errors import ResourceError
from mesh.hashing_lb import MAGLEV_TABLE_SIZE
from mesh.xds.common import seconds

DEFAULT_MAX_REQUESTS = 1024
_LB_POLICIES = {
    cluster_pb2.Cluster.ROUND_ROBIN: "round_robin",
    cluster_pb2.Cluster.LEAST_REQUEST: "least_request",
    cluster_pb2.Cluster.RING_HASH: "ring_hash",
    cluster_pb2.Cluster.MAGLEV: "maglev",
    cluster_pb2.Cluster.RANDOM: "random",
}
# load_balancing_policy (typed extensions), by the message type's full name.
_TYPED_POLICIES = {
    "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin": "round_robin",
    "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest": "least_request",
    "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash": "ring_hash",
    "envoy.extensions.load_balancing_policies.maglev.v3.Maglev": "maglev",
    "envoy.extensions.load_balancing_policies.random.v3.Random": "random",
}
MAX_RING_SIZE = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Kept as sent; an outlier detector elsewhere acts on it."""

    interval_s: float = 10.0
    base_ejection_time_s: float = 30.0
    max_ejection_time_s: float = 300.0
    max_ejection_percent: int = 10
    consecutive_5xx: int | None = None
    success_rate_minimum_hosts: int = 5
    success_rate_request_volume: int = 100
    success_rate_stdev_factor: int = 1900
    enforcing_success_rate: int = 100
    enforcing_consecutive_5xx: int = 100


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    eds_service_name: str
    lb_policy: str
    max_requests: int = DEFAULT_MAX_REQUESTS
    outlier_detection: OutlierDetection | None = None
    ring_min_size: int = 1024
    ring_max_size: int = 8 * 1024 * 1024
    maglev_table_size: int = MAGLEV_TABLE_SIZE
    least_request_choices: int = 2
    tls: bool = False

    def references(self) -> tuple[str, ...]:
        return (self.eds_service_name,)


def cluster(proto: cluster_pb2.Cluster) -> Cluster:
    if (
        proto.WhichOneof("cluster_discovery_type") != "type"
        or proto.type != cluster_pb2.Cluster.EDS
    ):
        raise ResourceError("only EDS clusters are supported")
    eds = proto.eds_cluster_config
    source = eds.eds_config
    if not (source.HasField("ads") or source.HasField("self")):
        raise ResourceError("eds_cluster_config.eds_config must be ads or self")
    ring_min, ring_max = _ring_sizes(proto)
    return Cluster(
        name=proto.name,
        eds_service_name=eds.service_name or proto.name,
        lb_policy=_lb_policy(proto),
        max_requests=_max_requests(proto),
        outlier_detection=_outlier(proto) if proto.HasField("outlier_detection") else None,
        ring_min_size=ring_min,
        ring_max_size=ring_max,
        maglev_table_size=_maglev_table_size(proto),
        least_request_choices=_choices(proto),
        tls=proto.HasField("transport_socket"),
    )


def _lb_policy(proto: cluster_pb2.Cluster) -> str:
    if proto.HasField("load_balancing_policy"):
        for policy in proto.load_balancing_policy.policies:
            name = policy.typed_extension_config.typed_config.type_url.rpartition("/")[2]
            if name in _TYPED_POLICIES:
                return _TYPED_POLICIES[name]
        raise ResourceError("load_balancing_policy has no supported policy")
    try:
        return _LB_POLICIES[proto.lb_policy]
    except KeyError:
        name = cluster_pb2.Cluster.LbPolicy.Name(proto.lb_policy)
        raise ResourceError(f"unsupported lb_policy {name}") from None


def _max_requests(proto: cluster_pb2.Cluster) -> int:
    for threshold in proto.circuit_breakers.thresholds:
        if threshold.priority == base_pb2.DEFAULT and threshold.HasField("max_requests"):
            return int(threshold.max_requests.value)
    return DEFAULT_MAX_REQUESTS


def _typed_policy(proto: cluster_pb2.Cluster, message: type[Message]) -> Message | None:
    """The first load_balancing_policy entry of ``message``'s type, unpacked."""
    if not proto.HasField("load_balancing_policy"):
        return None
    for policy in proto.load_balancing_policy.policies:
        typed = policy.typed_extension_config.typed_config
        if typed.type_url.rpartition("/")[2] in _TYPED_POLICIES:
            if typed.type_url.rpartition("/")[2] != message.DESCRIPTOR.full_name:
                return None  # the first supported policy is another one
            unpacked = message()
            typed.Unpack(unpacked)
            return unpacked
    return None


def _ring_sizes(proto: cluster_pb2.Cluster) -> tuple[int, int]:
    typed = _typed_policy(proto, ring_hash_pb2.RingHash)
    if typed is not None:
        # gRPC's and Envoy's typed ring_hash: the same sizes, another message.
        config: Any = typed
        xx_hash: tuple[int, ...] = (
            ring_hash_pb2.RingHash.DEFAULT_HASH,
            ring_hash_pb2.RingHash.XX_HASH,
        )
        ring_hash = True
    else:
        config = proto.ring_hash_lb_config
        xx_hash = (cluster_pb2.Cluster.RingHashLbConfig.XX_HASH,)
        ring_hash = proto.lb_policy == cluster_pb2.Cluster.RING_HASH
    minimum = config.minimum_ring_size.value if config.HasField("minimum_ring_size") else 1024
    maximum = (
        config.maximum_ring_size.value if config.HasField("maximum_ring_size") else MAX_RING_SIZE
    )
    if ring_hash:
        if config.hash_function not in xx_hash:
            raise ResourceError("ring hash: hash_function must be XX_HASH")
        if not 0 < minimum <= maximum <= MAX_RING_SIZE:
            raise ResourceError(f"ring sizes min {minimum} max {maximum} are out of range")
    return minimum, maximum


def _maglev_table_size(proto: cluster_pb2.Cluster) -> int:
    typed = _typed_policy(proto, maglev_pb2.Maglev)
    config: Any = typed if typed is not None else proto.maglev_lb_config
    size = config.table_size.value if config.HasField("table_size") else MAGLEV_TABLE_SIZE
    maglev = typed is not None or proto.lb_policy == cluster_pb2.Cluster.MAGLEV
    if maglev and not _is_prime(size):
        # Envoy's rule: the table is only a permutation when its size is prime.
        raise ResourceError(f"maglev_lb_config.table_size {size} is not prime")
    return size


def _is_prime(number: int) -> bool:
    return number >= 2 and all(number % d for d in range(2, int(number**0.5) + 1))


def _choices(proto: cluster_pb2.Cluster) -> int:
    config = proto.least_request_lb_config
    choices = config.choice_count.value if config.HasField("choice_count") else 2
    if choices < 2:
        raise ResourceError("least_request_lb_config.choice_count must be at least 2")
    return choices


def _outlier(proto: cluster_pb2.Cluster) -> OutlierDetection:
    od = proto.outlier_detection
    defaults = OutlierDetection()

    def wrapped(field: str, default: int) -> int:
        return int(getattr(od, field).value) if od.HasField(field) else default

    percent = wrapped("max_ejection_percent", defaults.max_ejection_percent)
    if percent > 100:
        raise ResourceError("outlier_detection.max_ejection_percent exceeds 100")
    return OutlierDetection(
        interval_s=seconds(od.interval) if od.HasField("interval") else defaults.interval_s,
        base_ejection_time_s=(
            seconds(od.base_ejection_time)
            if od.HasField("base_ejection_time")
            else defaults.base_ejection_time_s
        ),
        max_ejection_time_s=(
            seconds(od.max_ejection_time)
            if od.HasField("max_ejection_time")
            else defaults.max_ejection_time_s
        ),
        max_ejection_percent=percent,
        consecutive_5xx=od.consecutive_5xx.value if od.HasField("consecutive_5xx") else None,
        success_rate_minimum_hosts=wrapped("success_rate_minimum_hosts", 5),
        success_rate_request_volume=wrapped("success_rate_request_volume", 100),
        success_rate_stdev_factor=wrapped("success_rate_stdev_factor", 1900),
        enforcing_success_rate=wrapped("enforcing_success_rate", 100),
        enforcing_consecutive_5xx=wrapped("enforcing_consecutive_5xx", 100),
    )
