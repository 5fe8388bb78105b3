"""MeshCore: what the gateway uses to resolve ``xds:///HOST:PORT`` clusters.

    core = MeshCore(bootstrap.load())
    await core.start()
    core.watch("shop.default.svc.cluster.local:50051")
    await core.wait_ready("shop.default.svc.cluster.local:50051", timeout=10)
    decision = core.route(target, "/pkg.Service/Method", headers)

Each watched target has an immutable TargetView, rebuilt whenever a resource
of its chain changes and swapped in only once the chain is complete.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from envoy.config.core.v3 import base_pb2
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from mesh.backoff import Backoff
from mesh.balancer import ClusterBalancer, RequestCounter, RetryLimiter
from mesh.bootstrap import Bootstrap
from mesh.certificate_providers import upstream_tls
from mesh.cluster_health import ClusterHealth, OnEvent
from mesh.decision import RouteDecision
from mesh.discovery import services_of
from mesh.errors import ResourceError, TargetNotReady
from mesh.hashing import RequestAttributes
from mesh.route_match import Headers
from mesh.views import ClusterView, Incomplete, TargetView, build_view
from mesh.xds import type_urls
from mesh.xds.ads import DOES_NOT_EXIST_TIMEOUT_S, AdsClient, Key
from mesh.xds.cluster import Cluster
from mesh.xds.decode import Resource
from mesh.xds.endpoints import LoadAssignment
from mesh.xds.listener import Listener
from mesh.xds.resource_state import ResourceState
from mesh.xds.stream import AdsStream


def node_proto(bootstrap: Bootstrap) -> base_pb2.Node:
    node = bootstrap.node
    metadata = struct_pb2.Struct()
    metadata.update(dict(node.metadata))
    return base_pb2.Node(
        id=node.id,
        cluster=node.cluster,
        metadata=metadata,
        locality=base_pb2.Locality(
            region=node.locality.region, zone=node.locality.zone, sub_zone=node.locality.sub_zone
        ),
        user_agent_name="meshgate",
        client_features=["envoy.lb.does_not_support_overprovisioning"],
    )


class MeshCore:
    def __init__(
        self,
        bootstrap: Bootstrap,
        *,
        rng: random.Random | None = None,
        backoff: Backoff | None = None,
        does_not_exist_timeout_s: float = DOES_NOT_EXIST_TIMEOUT_S,
        on_health_event: OnEvent | None = None,
        on_xds_update: Callable[[str, bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bootstrap = bootstrap
        self._on_health_event = on_health_event
        self._clock = clock
        self._rng = rng or random.Random()
        # One stable key per MeshCore, as gRPC's channel id for hash policies.
        self._channel_key = self._rng.getrandbits(64)
        self.ads = AdsClient(
            node_proto(bootstrap),
            timeout_s=does_not_exist_timeout_s,
            ignore_resource_deletion=bootstrap.server.ignore_resource_deletion,
            on_update=on_xds_update,
        )
        self._stream = AdsStream(bootstrap.server, self.ads, self._changed, backoff)
        self._views: dict[str, TargetView] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._cluster_views: dict[str, ClusterView] = {}
        self._counters: dict[str, RequestCounter] = {}
        # Per cluster, kept across CDS/EDS updates as the counters are.
        self._health: dict[str, ClusterHealth] = {}
        self._retries: dict[str, RetryLimiter] = {}
        self._wildcard_mark = 0

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self._stream.start()

    async def stop(self) -> None:
        await self._stream.stop()

    @property
    def streams_opened(self) -> int:
        return self._stream.streams_opened

    def drop_stream(self) -> None:
        """Cancel the ADS stream (tests, admin): it reconnects after backoff."""
        self._stream.drop()

    # -- targets -------------------------------------------------------------

    def watch(self, target: str) -> None:
        """Resolve ``target`` (``HOST:PORT`` of ``xds:///HOST:PORT``) from now on."""
        if target in self._ready:
            return
        self._ready[target] = asyncio.Event()
        self.ads.watch(type_urls.LISTENER, target)
        self._changed(set())  # the chain may already be cached (shared resources)
        self._stream.wake()

    def unwatch(self, target: str) -> None:
        self._ready.pop(target, None)
        self._views.pop(target, None)
        self.ads.unwatch(type_urls.LISTENER, target)
        self._stream.wake()

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self._ready)

    async def wait_ready(self, target: str, timeout: float) -> TargetView:
        event = self._ready.get(target)
        if event is None:
            raise TargetNotReady(f"{target} is not watched")
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            raise TargetNotReady(f"{target}: xDS chain not resolved in {timeout}s") from None
        return self._views[target]

    def view(self, target: str) -> TargetView | None:
        return self._views.get(target)

    def route(
        self,
        target: str,
        path: str,
        headers: Headers | None = None,
        attributes: RequestAttributes | None = None,
    ) -> RouteDecision | None:
        """The route for one request, or None when no route matches (fail UNAVAILABLE)."""
        view = self._views.get(target)
        if view is None:
            raise TargetNotReady(f"{target} is not resolved")
        return view.decide(path, headers or {}, self._rng, self._channel_key, attributes)

    # -- discovery of every listener ---------------------------------------

    def watch_all_listeners(self) -> None:
        self._wildcard_mark = self.ads.responses[type_urls.LISTENER]
        self.ads.watch_all(type_urls.LISTENER)
        self._stream.wake()

    async def listener_names(self, timeout: float) -> tuple[str, ...]:
        """Names of every client listener the server sent to the wildcard subscription."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.ads.responses[type_urls.LISTENER] <= self._wildcard_mark:
            if asyncio.get_running_loop().time() > deadline:
                raise TargetNotReady(f"no answer to the wildcard listener request in {timeout}s")
            await asyncio.sleep(0.02)
        return tuple(
            sorted(
                e.name
                for e in self.ads.entries()
                if e.type_url == type_urls.LISTENER
                and isinstance(e.resource, Listener)
                and e.resource.hcm is not None
            )
        )

    async def discover_interfaces(self, timeout: float) -> dict[str, str]:
        """``service name -> target`` for every listener's services (wildcard LDS +
        server reflection on one endpoint of each). The first target (by name)
        serving a service wins; unreachable targets are skipped."""
        self.watch_all_listeners()
        names = await self.listener_names(timeout)
        found: dict[str, str] = {}
        for target in names:
            self.watch(target)
            try:
                view = await self.wait_ready(target, timeout)
            except TargetNotReady:
                continue
            address = _any_endpoint(view)
            if address is None:
                continue
            for service in await services_of(address, timeout):
                found.setdefault(service, target)
        return found

    # -- dumps ---------------------------------------------------------------

    def config_dump(self) -> dict[str, Any]:
        resources = []
        for entry in sorted(self.ads.entries(), key=_dump_order):
            item: dict[str, Any] = {
                "type": type_urls.SHORT_NAMES[entry.type_url],
                "type_url": entry.type_url,
                "name": entry.name,
                "version": entry.version,
                "state": entry.state.value,
            }
            if entry.error is not None:
                item["error"] = entry.error
                item["rejected_version"] = entry.rejected_version
            if entry.value is not None:
                item["resource"] = _as_json(entry.value.message)
            resources.append(item)
        acks = {
            type_urls.SHORT_NAMES[t]: {"version": a.version, "nonce": a.nonce, "error": a.error}
            for t, a in self.ads.last_acks.items()
        }
        return {"connected": self.ads.connected, "resources": resources, "acks": acks}

    def clusters_dump(self) -> dict[str, Any]:
        dump: dict[str, Any] = {}
        for name, view in sorted(self._cluster_views.items()):
            dump[name] = {
                "eds_service_name": view.cluster.eds_service_name,
                "lb_policy": view.cluster.lb_policy,
                "tls": view.security is not None,
                "max_requests": view.requests.max_requests,
                "in_flight": view.requests.in_flight,
                "panic": view.balancer.panic,
                "outlier_detection": view.cluster.outlier_detection is not None,
                "health_check": (
                    view.cluster.health_check.kind if view.cluster.health_check else None
                ),
                "endpoints": [
                    {
                        "address": e.address,
                        "weight": e.weight,
                        "health": e.health.value,
                        "locality": loc.locality,
                        "locality_weight": loc.weight,
                        "priority": loc.priority,
                        **(view.health.endpoint_status(e.address) if view.health else {}),
                    }
                    for loc in view.assignment.localities
                    for e in loc.endpoints
                ],
            }
        return dump

    # -- internals -----------------------------------------------------------

    def _changed(self, keys: set[Key]) -> None:
        for target, event in self._ready.items():
            try:
                view = build_view(target, self._lookup, self._cluster_view)
            except Incomplete:
                continue
            self._views[target] = view
            event.set()
        self._forget_unused_clusters()

    def _lookup(self, type_url: str, name: str) -> tuple[bool, Resource | None]:
        entry = self.ads.entry(type_url, name)
        if entry is None or entry.state is ResourceState.REQUESTED:
            return False, None
        return True, entry.resource

    def _cluster_view(self, cluster: Cluster, assignment: LoadAssignment) -> ClusterView:
        cached = self._cluster_views.get(cluster.name)
        if cached is not None and cached.cluster is cluster and cached.assignment is assignment:
            return cached
        counter = self._counters.setdefault(cluster.name, RequestCounter(cluster.max_requests))
        counter.max_requests = cluster.max_requests
        retries = self._retries.setdefault(cluster.name, RetryLimiter(cluster.max_retries))
        budget = cluster.retry_budget
        retries.max_retries = cluster.max_retries
        retries.budget_percent = budget.budget_percent if budget else None
        retries.min_concurrency = budget.min_retry_concurrency if budget else 3
        health = self._health.get(cluster.name)
        now = self._clock()
        if health is None:
            health = self._health[cluster.name] = ClusterHealth(
                cluster.name,
                cluster.outlier_detection,
                cluster.health_check,
                now,
                self._rng,
                self._on_health_event,
            )
        else:
            health.configure(cluster.outlier_detection, cluster.health_check, now)
        balancer = ClusterBalancer(cluster, assignment, self._rng)
        health.attach(balancer)
        security, security_error = None, None
        if cluster.tls is not None:
            try:
                security = upstream_tls(cluster.tls, self.bootstrap.certificate_providers)
            except ResourceError as exc:
                security_error = f"cluster {cluster.name}: {exc.problem}"
        view = ClusterView(
            cluster,
            assignment,
            balancer,
            counter,
            health=health,
            retries=retries,
            security=security,
            security_error=security_error,
        )
        self._cluster_views[cluster.name] = view
        return view

    def cluster_healths(self) -> dict[str, ClusterHealth]:
        """The health of every cluster some watched target uses, by name."""
        return {
            name: view.health
            for name, view in self._cluster_views.items()
            if view.health is not None
        }

    def keepalives(self) -> dict[str, tuple[float, float]]:
        """The HTTP/2 keepalive of every endpoint whose cluster sets one, by address."""
        return {
            endpoint.address: view.cluster.keepalive
            for view in self._cluster_views.values()
            if view.cluster.keepalive is not None
            for endpoint in view.balancer.endpoints
        }

    def _forget_unused_clusters(self) -> None:
        used = {n for v in self._views.values() for n in v.clusters}
        for name in list(self._cluster_views):
            if name not in used:
                del self._cluster_views[name]
                self._health.pop(name, None)
                self._retries.pop(name, None)


def _any_endpoint(view: TargetView) -> str | None:
    for cluster in view.clusters.values():
        if cluster is not None and cluster.balancer.endpoints:
            return cluster.balancer.endpoints[0].address
    return None


def _dump_order(entry: Any) -> tuple[int, str]:
    return type_urls.ALL.index(entry.type_url), entry.name


__all__ = ["MeshCore", "node_proto"]


def _as_json(message: Message) -> Any:
    """The resource as JSON; an Any of a type this process never loaded stays
    readable as its type URL instead of failing the whole dump."""
    try:
        return json_format.MessageToDict(message)
    except TypeError as exc:
        return {"@type": message.DESCRIPTOR.full_name, "error": str(exc)}
