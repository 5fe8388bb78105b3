"""A cluster whose endpoints are the providers a Dubbo registry holds.

One more endpoint source for the single cluster model, like EDS: the
providers selected from the registry become a load assignment fed to the
mesh core's own balancer, rebuilt whenever the registry changes. Providers
are kept apart by protocol (a Java provider registers the same service over
tri and dubbo); a request goes to the first protocol of the cluster's
preference that has providers, and retries stay within it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.config import ClusterConfig
from gateway.errors import UpstreamUnavailable
from gateway.registry.providers import CLUSTER_PROTOCOLS, Provider, Selection, select
from gateway.upstream.call import Call, DubboOptions
from gateway.upstream.clusters import CallPlan, Headers, hash_policy
from gateway.upstream.registry import Encoding, UpstreamName, upstream_name
from mesh.balancer import ClusterBalancer, RequestCounter
from mesh.endpoint import Endpoint
from mesh.errors import NoEndpointError
from mesh.hashing import HashPolicy, RequestAttributes, hash_key
from mesh.retry import RetryPolicy
from mesh.xds.cluster import Cluster
from mesh.xds.endpoints import LoadAssignment, LocalityEndpoints

if TYPE_CHECKING:
    from gateway.upstream.clusters import MeshPlanner


class RegistryCluster:
    """Providers of one service from a registry, as a balanced cluster per protocol."""

    protocol = "registry"

    def __init__(
        self,
        name: str,
        selection: Selection,
        protocols: Sequence[str],
        *,
        lb: str = "round_robin",
        max_requests: int = 1024,
        dubbo: DubboOptions | None = None,
        hash_policies: tuple[HashPolicy, ...] = (),
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.selection = selection
        # URL protocols (tri, dubbo) in order of preference.
        self.protocols = tuple(protocols)
        self.cluster = Cluster(name, name, lb, max_requests=max_requests)
        self.requests = RequestCounter(max_requests)
        self.hash_policies = hash_policies
        self.dubbo = dubbo or DubboOptions()
        self._rng = rng
        self.providers: tuple[Provider, ...] = ()
        self.balancers: dict[str, ClusterBalancer] = {}
        self.endpoints: tuple[Endpoint, ...] = ()
        ClusterBalancer(self.cluster, LoadAssignment(name, ()), rng)  # checks the LB policy

    @classmethod
    def from_config(
        cls, config: ClusterConfig, rng: random.Random | None = None
    ) -> RegistryCluster:
        registry = config.registry
        assert registry is not None
        selection = Selection(
            registry.interface, registry.group, registry.version, registry.application
        )
        return cls(
            config.name,
            selection,
            registry.protocols,
            lb=config.lb,
            max_requests=config.max_requests,
            dubbo=DubboOptions(
                config.group or registry.group,
                config.version or registry.version,
                config.application,
            ),
            hash_policies=tuple(hash_policy(p) for p in config.hash_policy),
            rng=rng,
        )

    def update(self, providers: Sequence[Provider]) -> None:
        """Take the registry's current providers; requests already planned keep theirs."""
        chosen = select(providers, self.selection)
        balancers: dict[str, ClusterBalancer] = {}
        endpoints: list[Endpoint] = []
        for protocol in self.protocols:
            mine = tuple(_endpoint(p) for p in chosen if p.protocol == protocol)
            if mine:
                assignment = LoadAssignment(self.name, (LocalityEndpoints("", 1, 0, mine),))
                balancers[protocol] = ClusterBalancer(self.cluster, assignment, self._rng)
                endpoints.extend(mine)
        self.providers = chosen
        self.endpoints = tuple(endpoints)
        self.balancers = balancers

    def parameter_types(self, interface: str, method: str) -> Sequence[str] | None:
        """The Java parameter types a provider's metadata gives for the method, if any."""
        for provider in self.providers:
            if provider.interface == interface:
                types = provider.parameter_types.get(method)
                if types is not None:
                    return types
        return None

    def first_upstream(self, encoding: Encoding) -> UpstreamName | None:
        for protocol in self.protocols:
            found = upstream_name(CLUSTER_PROTOCOLS[protocol], encoding)
            if found is not None:
                return found
        return None


def _endpoint(provider: Provider) -> Endpoint:
    labels = (
        ("application", provider.application),
        ("group", provider.group),
        ("protocol", provider.protocol),
        ("version", provider.version),
    )
    return Endpoint(provider.host, provider.port, weight=provider.weight, labels=labels)


@dataclass(frozen=True, slots=True)
class RegistryClusterRef:
    cluster: RegistryCluster
    encoding: Encoding
    retry: RetryPolicy | None = None

    @property
    def name(self) -> str:
        return self.cluster.name

    def select(
        self, call: Call, headers: Headers, attributes: RequestAttributes, mesh: MeshPlanner | None
    ) -> CallPlan:
        cluster = self.cluster
        key = hash_key(cluster.hash_policies, headers, 0, attributes)
        balancers = cluster.balancers
        for protocol in cluster.protocols:
            balancer = balancers.get(protocol)
            upstream = upstream_name(CLUSTER_PROTOCOLS[protocol], self.encoding)
            if balancer is None or upstream is None:
                continue
            try:
                first = balancer.pick(key)
            except NoEndpointError:
                continue
            return CallPlan(
                cluster.name,
                first,
                balancer,
                cluster.requests,
                key,
                retry=self.retry,
                upstream=upstream,
            )
        raise UpstreamUnavailable(
            f"cluster {cluster.name!r}: no provider of {call.service} in the registry"
            f" over {'/'.join(cluster.protocols)}"
        )
