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
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gateway.config import ClusterConfig, HashPolicyConfig, RetryConfig, split_address
from gateway.errors import GRPC_CODES_BY_NAME, UpstreamUnavailable
from gateway.upstream.call import Call, DubboOptions
from mesh.balancer import ClusterBalancer, RequestCounter
from mesh.endpoint import Endpoint
from mesh.errors import NoEndpointError
from mesh.hashing import HashOn, HashPolicy, RequestAttributes, hash_key
from mesh.retry import RetryPolicy
from mesh.xds.cluster import Cluster
from mesh.xds.endpoints import LoadAssignment, LocalityEndpoints

if TYPE_CHECKING:
    from gateway.upstream.mesh import MeshClient

Headers = Mapping[str, str]


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

    def pick(self) -> Endpoint:
        """Another endpoint of the same cluster, for a retry attempt."""
        try:
            return self.balancer.pick(self.hash_key)
        except NoEndpointError as exc:
            raise UpstreamUnavailable(f"cluster {self.cluster!r}: {exc}") from None

    def begin(self, endpoint: Endpoint) -> bool:
        """Start an attempt; False when the cluster is at its in-flight cap."""
        if not self.requests.try_acquire():
            return False
        self.balancer.started(endpoint)
        return True

    def end(self, endpoint: Endpoint) -> None:
        self.requests.release()
        self.balancer.finished(endpoint)


class ClusterRef(Protocol):
    """What a route's ``cluster:`` compiles to."""

    @property
    def name(self) -> str: ...

    def select(
        self, call: Call, headers: Headers, attributes: RequestAttributes, mesh: MeshClient | None
    ) -> CallPlan: ...


class StaticCluster:
    """A YAML cluster at run time: the mesh balancer over its inline endpoints."""

    def __init__(self, config: ClusterConfig, rng: random.Random | None = None) -> None:
        self.name = config.name
        self.protocol = config.protocol
        self.endpoints = tuple(
            Endpoint(
                *split_address(e.address), weight=e.weight, labels=tuple(sorted(e.labels.items()))
            )
            for e in config.endpoints
        )
        self.cluster = Cluster(
            config.name,
            config.name,
            config.lb,
            max_requests=config.max_requests,
            ring_min_size=config.ring_hash.minimum_ring_size,
            ring_max_size=config.ring_hash.maximum_ring_size,
            maglev_table_size=config.maglev.table_size,
        )
        assignment = LoadAssignment(config.name, (LocalityEndpoints("", 1, 0, self.endpoints),))
        self.balancer = ClusterBalancer(self.cluster, assignment, rng)
        self.requests = RequestCounter(config.max_requests)
        self.hash_policies = tuple(hash_policy(p) for p in config.hash_policy)
        self.dubbo = DubboOptions(config.group, config.version, config.application)


@dataclass(frozen=True, slots=True)
class StaticClusterRef:
    cluster: StaticCluster
    retry: RetryPolicy | None = None

    @property
    def name(self) -> str:
        return self.cluster.name

    def select(
        self, call: Call, headers: Headers, attributes: RequestAttributes, mesh: MeshClient | None
    ) -> CallPlan:
        cluster = self.cluster
        key = hash_key(cluster.hash_policies, headers, 0, attributes)
        try:
            first = cluster.balancer.pick(key)
        except NoEndpointError as exc:
            raise UpstreamUnavailable(f"cluster {cluster.name!r}: {exc}") from None
        return CallPlan(
            cluster.name, first, cluster.balancer, cluster.requests, key, retry=self.retry
        )


@dataclass(frozen=True, slots=True)
class XdsClusterRef:
    target: str  # HOST:PORT
    retry: RetryPolicy | None = None  # the route's, over the mesh's

    @property
    def name(self) -> str:
        return f"xds:///{self.target}"

    def select(
        self, call: Call, headers: Headers, attributes: RequestAttributes, mesh: MeshClient | None
    ) -> CallPlan:
        return _mesh(mesh).plan(self.target, call.path, headers, attributes, self.retry)


@dataclass(frozen=True, slots=True)
class ByInterfaceRef:
    retry: RetryPolicy | None = None

    @property
    def name(self) -> str:
        return "xds:///*"

    def select(
        self, call: Call, headers: Headers, attributes: RequestAttributes, mesh: MeshClient | None
    ) -> CallPlan:
        client = _mesh(mesh)
        return client.plan(
            client.target_for(call.service), call.path, headers, attributes, self.retry
        )


def _mesh(mesh: MeshClient | None) -> MeshClient:
    if mesh is None:
        raise UpstreamUnavailable("the mesh core is not running in this worker")
    return mesh


def retry_policy(config: RetryConfig) -> RetryPolicy:
    """A route's ``retry:`` as the mesh's policy type; ``attempts`` counts retries."""
    return RetryPolicy(
        retry_on=frozenset(GRPC_CODES_BY_NAME[name] for name in config.on),
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
