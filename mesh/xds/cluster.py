"""Cluster (CDS): EDS clusters with their LB policy and resilience settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf.message import Message

from mesh.errors import ResourceError
from mesh.hashing_lb import MAGLEV_TABLE_SIZE
from mesh.xds.common import seconds
from mesh.xds.tls import ClusterTls, cluster_tls

DEFAULT_MAX_REQUESTS = 1024
# Envoy's default max_retries circuit breaker: concurrent retries per cluster.
DEFAULT_MAX_RETRIES = 3
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
# Envoy's HTTP health check passes 200 alone unless told otherwise.
ENVOY_EXPECTED_STATUSES = ((200, 201),)


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Envoy's OutlierDetection with Envoy's defaults; ``mesh.outlier`` acts on it.

    ``consecutive_*`` eject as soon as the count is reached; success rate and
    failure percentage (gRFC A50) are judged once per ``interval_s``. The
    ``enforcing_*`` fields are the percent chance that a detected outlier is
    actually ejected (0 turns that check off).
    """

    interval_s: float = 10.0
    base_ejection_time_s: float = 30.0
    max_ejection_time_s: float = 300.0
    max_ejection_percent: int = 10
    consecutive_5xx: int = 5
    enforcing_consecutive_5xx: int = 100
    consecutive_gateway_failure: int = 5
    enforcing_consecutive_gateway_failure: int = 0
    success_rate_minimum_hosts: int = 5
    success_rate_request_volume: int = 100
    success_rate_stdev_factor: int = 1900
    enforcing_success_rate: int = 100
    failure_percentage_threshold: int = 85
    failure_percentage_minimum_hosts: int = 5
    failure_percentage_request_volume: int = 50
    enforcing_failure_percentage: int = 0


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """An active health check (Envoy's HealthCheck, the kinds meshgate runs)."""

    kind: str  # grpc | http | tcp
    interval_s: float = 5.0
    jitter_s: float = 0.0
    timeout_s: float = 1.0
    unhealthy_threshold: int = 3
    healthy_threshold: int = 1
    grpc_service: str = ""
    http_path: str = "/"
    # HTTP answers that pass, as half-open [start, end) ranges.
    http_expected_statuses: tuple[tuple[int, int], ...] = ENVOY_EXPECTED_STATUSES

    def http_passes(self, status: int) -> bool:
        return any(start <= status < end for start, end in self.http_expected_statuses)


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """Envoy's retry budget: concurrent retries allowed as a share of active requests."""

    budget_percent: float = 20.0
    min_retry_concurrency: int = 3


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
    health_check: HealthCheck | None = None
    # Envoy's healthy_panic_threshold: below this percent of healthy endpoints,
    # route to all of them rather than overload the few (0 turns it off).
    panic_threshold: float = 50.0
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_budget: RetryBudget | None = None
    # The UpstreamTlsContext (gRFC A29); None: plaintext.
    tls: ClusterTls | None = None
    # HTTP/2 PING keepalive (seconds: interval, then timeout for the ack), from the
    # cluster's http2_protocol_options.connection_keepalive; None: the default.
    keepalive: tuple[float, float] | None = None

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
        tls=cluster_tls(proto),
        health_check=_health_check(proto),
        panic_threshold=_panic_threshold(proto),
        max_retries=_max_retries(proto),
        retry_budget=_retry_budget(proto),
        keepalive=_keepalive(proto),
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


def _default_thresholds(
    proto: cluster_pb2.Cluster,
) -> cluster_pb2.CircuitBreakers.Thresholds | None:
    for threshold in proto.circuit_breakers.thresholds:
        if threshold.priority == base_pb2.DEFAULT:
            return threshold
    return None


def _max_retries(proto: cluster_pb2.Cluster) -> int:
    threshold = _default_thresholds(proto)
    if threshold is not None and threshold.HasField("max_retries"):
        return int(threshold.max_retries.value)
    return DEFAULT_MAX_RETRIES


def _retry_budget(proto: cluster_pb2.Cluster) -> RetryBudget | None:
    threshold = _default_thresholds(proto)
    if threshold is None or not threshold.HasField("retry_budget"):
        return None
    budget = threshold.retry_budget
    defaults = RetryBudget()
    return RetryBudget(
        budget_percent=(
            budget.budget_percent.value
            if budget.HasField("budget_percent")
            else defaults.budget_percent
        ),
        min_retry_concurrency=(
            budget.min_retry_concurrency.value
            if budget.HasField("min_retry_concurrency")
            else defaults.min_retry_concurrency
        ),
    )


def _panic_threshold(proto: cluster_pb2.Cluster) -> float:
    config = proto.common_lb_config
    if config.HasField("healthy_panic_threshold"):
        return float(config.healthy_panic_threshold.value)
    return 50.0


def _health_check(proto: cluster_pb2.Cluster) -> HealthCheck | None:
    """The first health check of a kind meshgate runs (gRPC, HTTP, TCP)."""
    for check in proto.health_checks:
        kind = check.WhichOneof("health_checker")
        if kind not in ("grpc_health_check", "http_health_check", "tcp_health_check"):
            continue
        if not check.HasField("interval") or not check.HasField("timeout"):
            raise ResourceError("health_checks: interval and timeout are required")
        unhealthy = check.unhealthy_threshold.value if check.HasField("unhealthy_threshold") else 3
        healthy = check.healthy_threshold.value if check.HasField("healthy_threshold") else 1
        if unhealthy < 1 or healthy < 1:
            raise ResourceError("health_checks: thresholds must be at least 1")
        return HealthCheck(
            kind=kind.removesuffix("_health_check"),
            interval_s=seconds(check.interval),
            jitter_s=seconds(check.interval_jitter) if check.HasField("interval_jitter") else 0.0,
            timeout_s=seconds(check.timeout),
            unhealthy_threshold=unhealthy,
            healthy_threshold=healthy,
            grpc_service=check.grpc_health_check.service_name,
            http_path=check.http_health_check.path or "/",
            http_expected_statuses=_expected_statuses(check.http_health_check),
        )
    return None


# Where a cluster's HTTP/2 options live since Envoy 1.17 (the field on the
# Cluster itself is the deprecated place, still read).
_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
# Envoy's default PING timeout when connection_keepalive gives only the interval.
DEFAULT_KEEPALIVE_TIMEOUT = 15.0


def _keepalive(proto: cluster_pb2.Cluster) -> tuple[float, float] | None:
    options = None
    typed = proto.typed_extension_protocol_options.get(_HTTP_PROTOCOL_OPTIONS)
    if typed is not None:
        unpacked = http_protocol_options_pb2.HttpProtocolOptions()
        if not typed.Unpack(unpacked):
            raise ResourceError(f"{_HTTP_PROTOCOL_OPTIONS}: cannot unpack {typed.type_url}")
        config = unpacked.WhichOneof("upstream_protocol_options")
        if config == "explicit_http_config":
            options = unpacked.explicit_http_config.http2_protocol_options
        elif config == "use_downstream_protocol_config":
            options = unpacked.use_downstream_protocol_config.http2_protocol_options
        elif config == "auto_config":
            options = unpacked.auto_config.http2_protocol_options
    elif proto.HasField("http2_protocol_options"):
        options = proto.http2_protocol_options
    if options is None or not options.HasField("connection_keepalive"):
        return None
    keepalive = options.connection_keepalive
    if not keepalive.HasField("interval"):
        return None  # Envoy sends no PINGs without an interval
    interval = seconds(keepalive.interval)
    timeout = (
        seconds(keepalive.timeout) if keepalive.HasField("timeout") else DEFAULT_KEEPALIVE_TIMEOUT
    )
    if interval <= 0 or timeout <= 0:
        raise ResourceError("connection_keepalive: interval and timeout must be positive")
    return (interval, timeout)


def _expected_statuses(check: Any) -> tuple[tuple[int, int], ...]:
    ranges = tuple((int(r.start), int(r.end)) for r in check.expected_statuses)
    if any(not 100 <= start < end <= 600 for start, end in ranges):
        raise ResourceError("http_health_check.expected_statuses must be within [100, 600)")
    return ranges or ENVOY_EXPECTED_STATUSES


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
    defaults_fields = {
        name: wrapped(name, getattr(defaults, name))
        for name in (
            "consecutive_5xx",
            "enforcing_consecutive_5xx",
            "consecutive_gateway_failure",
            "enforcing_consecutive_gateway_failure",
            "success_rate_minimum_hosts",
            "success_rate_request_volume",
            "success_rate_stdev_factor",
            "enforcing_success_rate",
            "failure_percentage_threshold",
            "failure_percentage_minimum_hosts",
            "failure_percentage_request_volume",
            "enforcing_failure_percentage",
        )
    }
    for name, value in defaults_fields.items():
        if (name.startswith("enforcing_") or name == "failure_percentage_threshold") and (
            value > 100
        ):
            raise ResourceError(f"outlier_detection.{name} exceeds 100")
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
        **defaults_fields,
    )
