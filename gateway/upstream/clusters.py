"""Clusters, one model: a route's ``cluster:`` compiled into a reference that
selects an endpoint and says how to call it (a :class:`CallPlan`).

A static YAML cluster is a degenerate mesh cluster: its endpoints form an
inline load assignment fed to the mesh core's own balancer and circuit
breaker (as Envoy's static cluster feeds the same priority set as EDS). So
static and ``xds:///`` clusters share the LB policies, hash policies, the
in-flight cap and the retry policy type; only where the decision comes from
differs.

    StaticClusterRef   the cluster's own balancer; the route's retry policy
    XdsClusterRef      the mesh core's decision for HOST:PORT (RDS, CDS, EDS)
    ByInterfaceRef     the same, with the target found by the service name
    RegistryClusterRef providers from a Dubbo registry (registry_cluster.py)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gateway.config import (
    ClusterConfig,
    ClusterTlsConfig,
    HashPolicyConfig,
    HealthCheckConfig,
    OutlierDetectionConfig,
    RetryConfig,
    split_address,
)
from gateway.errors import GRPC_CODES_BY_NAME, UpstreamUnavailable
from gateway.upstream.call import Call, DubboOptions
from gateway.upstream.health_events import report_health_event
from mesh.balancer import ClusterBalancer, RequestCounter, RetryLimiter
from mesh.cluster_health import ClusterHealth
from mesh.endpoint import Endpoint
from mesh.errors import NoEndpointError
from mesh.hashing import HashOn, HashPolicy, RequestAttributes, hash_key
from mesh.outlier import Outcome
from mesh.retry import RETRY_ON_CAUSES, RetryPolicy
from mesh.security import UpstreamTls, exact_names
from mesh.xds.cluster import (
    ENVOY_EXPECTED_STATUSES,
    Cluster,
    HealthCheck,
    OutlierDetection,
    RetryBudget,
)
from mesh.xds.endpoints import LoadAssignment, LocalityEndpoints

if TYPE_CHECKING:
    from gateway.upstream.registry import UpstreamName

Headers = Mapping[str, str]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class CallPlan:
    """One request's way to its cluster, whatever decided it (grpc-go's RPCConfig)."""

    cluster: str
    first: Endpoint
    balancer: ClusterBalancer
    requests: RequestCounter
    hash_key: int | None = None
    timeout: float | None = None  # the mesh's max_stream_duration; the route's is separate
    retry: RetryPolicy | None = None
    delay: float | None = None  # fault injection
    abort: int | None = None
    # The protocol client, when the cluster decides it per request (a registry
    # cluster, by the protocol of the providers it found); else the route's.
    upstream: UpstreamName | None = None
    health: ClusterHealth | None = None  # fed each attempt's outcome
    retries: RetryLimiter | None = None  # the retry budget / max_retries breaker
    # How the cluster's connections are secured (None: plaintext).
    security: UpstreamTls | None = None

    def pick(self, avoid: Collection[str] = ()) -> Endpoint:
        """Another endpoint of the same cluster for a retry attempt, one not in
        ``avoid`` (the addresses already tried) whenever there is one."""
        try:
            return self.balancer.pick(self.hash_key, avoid)
        except NoEndpointError as exc:
            raise UpstreamUnavailable(f"cluster {self.cluster!r}: {exc}") from None

    def may_retry(self) -> bool:
        """Take a retry slot; False when the cluster's retry budget is spent."""
        if self.retries is None:
            return True
        return self.retries.try_acquire(self.requests.in_flight)

    def retry_done(self) -> None:
        if self.retries is not None:
            self.retries.release()

    def begin(self, endpoint: Endpoint) -> bool:
        """Start an attempt; False when the cluster is at its in-flight cap."""
        if not self.requests.try_acquire():
            return False
        self.balancer.started(endpoint)
        return True

    def end(
        self, endpoint: Endpoint, outcome: Outcome | None = None, clock: Clock | None = None
    ) -> None:
        """Finish an attempt; its outcome (None: not the endpoint's doing) feeds
        outlier detection, at ``clock()``."""
        self.requests.release()
        self.balancer.finished(endpoint)
        health = self.health
        if outcome is not None and health is not None and health.detector is not None:
            health.record(endpoint.address, outcome, clock() if clock else time.monotonic())


class MeshPlanner(Protocol):
    """What an xds:/// reference asks of the worker's mesh client (upstream/mesh.py)."""

    def target_for(self, service: str) -> str: ...

    def plan(
        self,
        target: str,
        rpc_path: str,
        headers: Headers,
        attributes: RequestAttributes,
        retry: RetryPolicy | None,
    ) -> CallPlan: ...


class ClusterRef(Protocol):
    """What a route's ``cluster:`` compiles to."""

    @property
    def name(self) -> str: ...

    def select(
        self, call: Call, headers: Headers, attributes: RequestAttributes, mesh: MeshPlanner | None
    ) -> CallPlan: ...


class StaticCluster:
    """A YAML cluster at run time: the mesh balancer over its inline endpoints."""

    def __init__(
        self,
        config: ClusterConfig,
        rng: random.Random | None = None,
        resolve: Callable[[Path], Path] = Path,
    ) -> None:
        self.config = config
        self.name = config.name
        self.protocol = config.protocol
        self.endpoints = tuple(
            Endpoint(
                *split_address(e.address), weight=e.weight, labels=tuple(sorted(e.labels.items()))
            )
            for e in config.endpoints
        )
        budget = config.retry_budget
        self.cluster = Cluster(
            config.name,
            config.name,
            config.lb,
            max_requests=config.max_requests,
            outlier_detection=outlier_detection(config.outlier_detection),
            health_check=health_check(config.health_check),
            panic_threshold=config.panic_threshold,
            max_retries=config.max_retries,
            retry_budget=(
                RetryBudget(budget.budget_percent, budget.min_retry_concurrency) if budget else None
            ),
            ring_min_size=config.ring_hash.minimum_ring_size,
            ring_max_size=config.ring_hash.maximum_ring_size,
            maglev_table_size=config.maglev.table_size,
        )
        assignment = LoadAssignment(config.name, (LocalityEndpoints("", 1, 0, self.endpoints),))
        self.balancer = ClusterBalancer(self.cluster, assignment, rng)
        self.requests = RequestCounter(config.max_requests)
        self.retries = RetryLimiter(
            config.max_retries,
            budget.budget_percent if budget else None,
            budget.min_retry_concurrency if budget else 3,
        )
        self.health = ClusterHealth(
            config.name,
            self.cluster.outlier_detection,
            self.cluster.health_check,
            time.monotonic(),
            rng,
            report_health_event,
        )
        self.health.attach(self.balancer)
        self.hash_policies = tuple(hash_policy(p) for p in config.hash_policy)
        self.dubbo = DubboOptions(config.group, config.version, config.application)
        self.security = cluster_security(config.tls, resolve) if config.tls else None


@dataclass(frozen=True, slots=True)
class StaticClusterRef:
    cluster: StaticCluster
    retry: RetryPolicy | None = None

    @property
    def name(self) -> str:
        return self.cluster.name

    def select(
        self, call: Call, headers: Headers, attributes: RequestAttributes, mesh: MeshPlanner | None
    ) -> CallPlan:
        cluster = self.cluster
        key = hash_key(cluster.hash_policies, headers, 0, attributes)
        try:
            first = cluster.balancer.pick(key)
        except NoEndpointError as exc:
            raise UpstreamUnavailable(f"cluster {cluster.name!r}: {exc}") from None
        return CallPlan(
            cluster.name,
            first,
            cluster.balancer,
            cluster.requests,
            key,
            retry=self.retry,
            health=cluster.health,
            retries=cluster.retries,
            security=cluster.security,
        )


@dataclass(frozen=True, slots=True)
class XdsClusterRef:
    target: str  # HOST:PORT
    retry: RetryPolicy | None = None  # the route's, over the mesh's

    @property
    def name(self) -> str:
        return f"xds:///{self.target}"

    def select(
        self, call: Call, headers: Headers, attributes: RequestAttributes, mesh: MeshPlanner | None
    ) -> CallPlan:
        return _mesh(mesh).plan(self.target, call.path, headers, attributes, self.retry)


@dataclass(frozen=True, slots=True)
class ByInterfaceRef:
    retry: RetryPolicy | None = None

    @property
    def name(self) -> str:
        return "xds:///*"

    def select(
        self, call: Call, headers: Headers, attributes: RequestAttributes, mesh: MeshPlanner | None
    ) -> CallPlan:
        client = _mesh(mesh)
        return client.plan(
            client.target_for(call.service), call.path, headers, attributes, self.retry
        )


def _mesh(mesh: MeshPlanner | None) -> MeshPlanner:
    if mesh is None:
        raise UpstreamUnavailable("the mesh core is not running in this worker")
    return mesh


def cluster_security(config: ClusterTlsConfig, resolve: Callable[[Path], Path]) -> UpstreamTls:
    """A YAML cluster's ``tls:``, paths resolved against the config file's directory."""

    def path(value: Path | None) -> str | None:
        return None if value is None else str(resolve(value))

    return UpstreamTls(
        ca_file=path(config.ca),
        cert_file=path(config.cert),
        key_file=path(config.key),
        sni=config.sni,
        subject_alt_names=exact_names(config.verify_subject_alt_names),
        refresh_interval_s=config.reload_interval,
    )


def retry_policy(config: RetryConfig) -> RetryPolicy:
    """A route's ``retry:`` as the mesh's policy type; ``attempts`` counts retries."""
    causes = {name.replace("-", "_") for name in RETRY_ON_CAUSES}
    return RetryPolicy(
        retry_on=frozenset(GRPC_CODES_BY_NAME[name] for name in config.on if name not in causes),
        retry_on_causes=frozenset(name for name in config.on if name in causes),
        max_attempts=config.attempts + 1,
        per_try_timeout_s=config.per_try_timeout,
        backoff_base_s=config.backoff,
        backoff_max_s=config.max_backoff,
    )


def hash_policy(config: HashPolicyConfig) -> HashPolicy:
    if config.header is not None:
        return HashPolicy(HashOn.HEADER, config.header.lower(), config.terminal)
    if config.cookie is not None:
        return HashPolicy(HashOn.COOKIE, config.cookie, config.terminal)
    if config.query_parameter is not None:
        return HashPolicy(HashOn.QUERY_PARAMETER, config.query_parameter, config.terminal)
    return HashPolicy(HashOn.SOURCE_IP, "", config.terminal)


def health_check(config: HealthCheckConfig | None) -> HealthCheck | None:
    if config is None:
        return None
    kind = "grpc" if config.grpc is not None else "http" if config.http is not None else "tcp"
    return HealthCheck(
        kind=kind,
        interval_s=config.interval,
        jitter_s=config.jitter,
        timeout_s=config.timeout,
        unhealthy_threshold=config.unhealthy_threshold,
        healthy_threshold=config.healthy_threshold,
        grpc_service=config.grpc.service if config.grpc is not None else "",
        http_path=config.http.path if config.http is not None else "/",
        http_expected_statuses=(
            tuple((r.start, r.end) for r in config.http.expected_statuses)
            if config.http is not None
            else ENVOY_EXPECTED_STATUSES
        ),
    )


def outlier_detection(config: OutlierDetectionConfig | None) -> OutlierDetection | None:
    if config is None:
        return None
    return OutlierDetection(
        interval_s=config.interval,
        base_ejection_time_s=config.base_ejection_time,
        max_ejection_time_s=config.max_ejection_time,
        max_ejection_percent=config.max_ejection_percent,
        consecutive_5xx=config.consecutive_5xx,
        enforcing_consecutive_5xx=config.enforcing_consecutive_5xx,
        consecutive_gateway_failure=config.consecutive_gateway_failure,
        enforcing_consecutive_gateway_failure=config.enforcing_consecutive_gateway_failure,
        success_rate_minimum_hosts=config.success_rate_minimum_hosts,
        success_rate_request_volume=config.success_rate_request_volume,
        success_rate_stdev_factor=config.success_rate_stdev_factor,
        enforcing_success_rate=config.enforcing_success_rate,
        failure_percentage_threshold=config.failure_percentage_threshold,
        failure_percentage_minimum_hosts=config.failure_percentage_minimum_hosts,
        failure_percentage_request_volume=config.failure_percentage_request_volume,
        enforcing_failure_percentage=config.enforcing_failure_percentage,
    )
