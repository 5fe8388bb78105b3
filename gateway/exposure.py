"""Auto-exposure: every interface a registry holds becomes HTTP routes.

One :class:`Exposure` per ``listeners[].expose`` entry. When its registry
changes, it groups the selected providers by service (interface, group,
version), keeps one registry cluster per service, and renders one route per
method at the configured path. The route table is swapped whole, so a
request sees either the old routes or the new ones; routes come and go with
the providers. A route is a Dubbo JSON route: ``POST`` a JSON array of
arguments, with the parameter types the provider's metadata publishes, or
``~sig``/explicit types from the request otherwise.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.compiled_route import CompiledRoute
from gateway.config import DubboRouteConfig, ExposeConfig, RouteMatchConfig
from gateway.registry.providers import Provider, Selection, select
from gateway.route_table import compile_match
from gateway.transcode.dubbo_kind import DubboJson
from gateway.transcode.protobuf_kind import Limits
from gateway.upstream.call import DubboOptions
from gateway.upstream.registry_cluster import RegistryCluster, RegistryClusterRef

log = logging.getLogger(f"meshgate.{__name__}")

ServiceKey = tuple[str, str, str, str]  # application, interface, group, version


def render_path(template: str, provider: Provider, method: str) -> str:
    """The route's path; empty segments (no group, no version) are dropped."""
    values = {
        "application": provider.application,
        "interface": provider.interface,
        "group": provider.group,
        "version": provider.version,
        "method": method,
    }
    filled = template
    for name, value in values.items():
        filled = filled.replace("{" + name + "}", value)
    return "/" + "/".join(s for s in filled.split("/") if s)


class Exposure:
    def __init__(
        self, config: ExposeConfig, listener: str, rng: random.Random | None = None
    ) -> None:
        registry = config.registry
        self.config = config
        self.listener = listener
        self.selection = Selection(
            registry.interface,
            registry.group,
            registry.version,
            registry.application,
            tuple(config.include),
            tuple(config.exclude),
        )
        self._limits = Limits(config.max_request_bytes, config.max_response_bytes)
        self._rng = rng
        self._clusters: dict[ServiceKey, RegistryCluster] = {}
        self.routes: Mapping[str, CompiledRoute] = {}
        self._described: list[dict[str, Any]] = []

    def find(self, path: str) -> CompiledRoute | None:
        return self.routes.get(path)

    def update(self, providers: Sequence[Provider]) -> None:
        chosen = select(providers, self.selection)
        by_service: dict[ServiceKey, list[Provider]] = {}
        for provider in chosen:
            key = (provider.application, *provider.service_key)
            by_service.setdefault(key, []).append(provider)
        clusters: dict[ServiceKey, RegistryCluster] = {}
        routes: dict[str, CompiledRoute] = {}
        described: list[dict[str, Any]] = []
        for key, members in sorted(by_service.items()):
            cluster = self._clusters.get(key) or self._cluster(key)
            cluster.update(members)
            clusters[key] = cluster
            for provider in members:
                for method in provider.methods:
                    path = render_path(self.config.path, provider, method)
                    if path not in routes:
                        routes[path] = self._route(path, provider, method, cluster)
                        described.append(
                            {
                                "path": path,
                                "interface": provider.interface,
                                "method": method,
                                "group": provider.group,
                                "version": provider.version,
                                "application": provider.application,
                                "parameter_types": provider.parameter_types.get(method),
                                "cluster": cluster.name,
                            }
                        )
        self._clusters = clusters
        added = set(routes) - set(self.routes)
        removed = set(self.routes) - set(routes)
        self.routes = routes
        self._described = sorted(described, key=lambda d: str(d["path"]))
        if added or removed:
            log.info(
                "listener %s exposes %d routes (+%d -%d)",
                self.listener,
                len(routes),
                len(added),
                len(removed),
            )

    def _cluster(self, key: ServiceKey) -> RegistryCluster:
        application, interface, group, version = key
        registry = self.config.registry
        return RegistryCluster(
            f"expose:{application}:{interface}:{group}:{version}",
            Selection(interface, group, version, application),
            registry.protocols,
            dubbo=DubboOptions(group or None, version or None),
            rng=self._rng,
        )

    def _route(
        self, path: str, provider: Provider, method: str, cluster: RegistryCluster
    ) -> CompiledRoute:
        config = DubboRouteConfig(
            interface=provider.interface,
            method=method,
            group=provider.group or None,
            version=provider.version or None,
        )
        kind = DubboJson(config, self._limits, cluster.dubbo, cluster.parameter_types)
        upstream = cluster.first_upstream("json")
        assert upstream is not None  # tri and dubbo both carry JSON
        return CompiledRoute(
            name=f"{self.listener}/expose{path}",
            match=compile_match(RouteMatchConfig(path=path, methods=["POST"])),
            kind=kind,
            cluster=RegistryClusterRef(cluster, "json"),
            upstream=upstream,
            timeout=self.config.timeout or None,
        )

    def clusters(self) -> Sequence[RegistryCluster]:
        return tuple(self._clusters.values())

    def describe(self) -> list[dict[str, Any]]:
        """The exposed routes, for the admin's /routes."""
        return self._described
