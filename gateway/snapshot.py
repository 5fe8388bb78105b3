"""Compile a loaded config into an immutable snapshot (DESIGN.md, principle 2).

Pure: descriptor sets arrive already read, compiled or fetched
(:mod:`gateway.sources` does that I/O), so compiling is a function of the
config and its schemas. Everything a request needs is resolved here: the
descriptor pool, message codecs per method, compiled route matches, each
route's kind and cluster reference, filter chains. A request takes the
snapshot current when it starts and keeps it to the end, so a reload never
changes a request half-way.

Filters keep their state across snapshots: a filter whose listener, name and
config are unchanged is carried over from the previous snapshot, so a reload
or a reflection refresh does not reset rate-limit buckets.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool

from filters import FilterConfigError, build_filter
from filters.http import Filter
from gateway.compiled_route import CompiledRoute
from gateway.config import (
    ConfigError,
    ConfigIssue,
    GatewayConfig,
    ListenerLimitsConfig,
    LoadedConfig,
    RouteConfig,
    RpcProtocol,
    split_address,
)
from gateway.config.cluster_name import ByInterface, StaticName, XdsTarget, parse_cluster_name
from gateway.descriptors import DescriptorError, all_services, build_pool
from gateway.exposure import Exposure
from gateway.filter_chain import FilterSpec, listener_filter_specs, route_filter_specs
from gateway.grpc_front.passthrough import GrpcPassthrough
from gateway.route_table import RouteTable, compile_match
from gateway.transcode.compile import compile_transcoding
from gateway.transcode.dubbo_kind import DubboJson
from gateway.transcode.protobuf_kind import Limits, ProtobufTranscoding
from gateway.transcode.route_kind import RouteKind
from gateway.upstream.call import DubboOptions
from gateway.upstream.clusters import (
    ByInterfaceRef,
    ClusterRef,
    StaticCluster,
    StaticClusterRef,
    XdsClusterRef,
    retry_policy,
)
from gateway.upstream.metadata import HeaderList, internal_header_strip
from gateway.upstream.registry import UpstreamName, upstream_name
from gateway.upstream.registry_cluster import RegistryCluster, RegistryClusterRef

__all__ = ["CompiledListener", "CompiledRoute", "DescriptorSources", "Snapshot", "compile_snapshot"]

Where = tuple[str | int, ...]
HASHING = frozenset({"ring_hash", "maglev"})
RPC_PROTOCOLS: tuple[RpcProtocol, ...] = ("grpc", "grpc-web", "connect")
# An xds:/// cluster says nothing of the protocol; the route kind's default.
DEFAULT_MESH_PROTOCOL = {"proto": "grpc", "json": "triple"}
# encoding -> (YAML section, route kind, the protocols that carry it), for the error.
_PROTOCOL_NEEDS = {
    "proto": ("transcode", "protobuf transcoding", "a grpc or triple"),
    "json": ("dubbo", "a dubbo route", "a triple or dubbo"),
}


@dataclass(frozen=True, slots=True)
class DescriptorSources:
    """Schemas as read from files and protoc, and as fetched by reflection (by cluster)."""

    files: tuple[descriptor_pb2.FileDescriptorSet, ...] = ()
    reflected: Mapping[str, descriptor_pb2.FileDescriptorSet] = field(default_factory=dict)
    # Problems met while reading them, reported with the compile's own.
    issues: tuple[ConfigIssue, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledListener:
    name: str
    host: str
    port: int
    protocol: str
    routes: RouteTable[CompiledRoute]
    filter_names: tuple[str, ...]
    # Built once, in YAML order: the first sees the request first. Requests
    # that match no route run these; a route runs its own (CompiledRoute.filters).
    filters: tuple[Filter, ...]
    # Removes listener.internal_headers from a request on arrival (None: none).
    strip_internal: Callable[[HeaderList], HeaderList] | None = None
    # Routes made from registries, tried after the listed routes.
    exposures: tuple[Exposure, ...] = ()
    limits: ListenerLimitsConfig = field(default_factory=ListenerLimitsConfig)


FilterKey = tuple[str, str, str]  # listener, filter name, config as canonical JSON


@dataclass(frozen=True, slots=True)
class Snapshot:
    loaded: LoadedConfig
    sources: DescriptorSources
    pool: DescriptorPool
    listeners: tuple[CompiledListener, ...]
    clusters: Mapping[str, StaticCluster | RegistryCluster]
    services: tuple[str, ...] = ()
    reflection_clusters: tuple[str, ...] = ()
    xds_targets: frozenset[str] = frozenset()
    filters: Mapping[FilterKey, Filter] = field(default_factory=dict)

    @property
    def config(self) -> GatewayConfig:
        return self.loaded.config


def compile_snapshot(
    loaded: LoadedConfig,
    sources: DescriptorSources,
    previous: Snapshot | None = None,
    rng: random.Random | None = None,
) -> Snapshot:
    """Resolve the whole config, or raise ConfigError listing every problem."""
    config = loaded.config
    issues = list(sources.issues)
    reflection_clusters = tuple(
        s.reflection.cluster for s in config.descriptors if s.reflection is not None
    )
    sets = [
        *sources.files,
        *(sources.reflected[name] for name in reflection_clusters if name in sources.reflected),
    ]
    pool = DescriptorPool()
    try:
        pool = build_pool(sets)
    except DescriptorError as exc:
        issues.append(ConfigIssue(("descriptors",), str(exc)))
    known = {s.full_name: s for s in all_services(pool, sets)} if not issues else {}

    clusters: dict[str, StaticCluster | RegistryCluster] = {}
    for i, cluster in enumerate(config.clusters):
        if cluster.hash_policy and cluster.lb not in HASHING:
            issues.append(
                ConfigIssue(
                    ("clusters", i, "hash_policy"),
                    f"hash_policy needs lb ring_hash or maglev, not {cluster.lb}",
                )
            )
        kept = previous.clusters.get(cluster.name) if previous is not None else None
        if isinstance(kept, StaticCluster) and kept.config == cluster:
            # Unchanged: keep its ejections, probe results and counters.
            clusters[cluster.name] = kept
            continue
        try:
            clusters[cluster.name] = (
                RegistryCluster.from_config(cluster, rng)
                if cluster.registry is not None
                else StaticCluster(cluster, rng, loaded.resolve)
            )
        except ValueError as exc:
            issues.append(ConfigIssue(("clusters", i, "lb"), str(exc)))

    compiler = _RouteCompiler(config, clusters, pool, known, bool(reflection_clusters), issues)
    filter_cache = dict(previous.filters) if previous is not None else {}
    used_filters: dict[FilterKey, Filter] = {}
    listeners: list[CompiledListener] = []
    for i, listener in enumerate(config.listeners):
        filters = _FilterBuilder(listener.name, loaded.base_dir, filter_cache, used_filters, issues)
        listener_specs = listener_filter_specs(listener.filters, ("listeners", i, "filters"))
        built = filters.build(listener_specs)
        entries = []
        for j, route in enumerate(listener.routes):
            where = ("listeners", i, "routes", j)
            compiled = compiler.route(route, f"{listener.name}/{j}", where)
            if compiled is None:
                continue
            if route.filters:
                specs = route_filter_specs(
                    listener.filters,
                    route.filters,
                    ("listeners", i, "filters"),
                    (*where, "filters"),
                    issues,
                )
                compiled = dataclasses.replace(
                    compiled,
                    filter_names=tuple(s.name for s in specs),
                    filters=filters.build(specs),
                )
            else:
                compiled = dataclasses.replace(
                    compiled, filter_names=tuple(s.name for s in listener_specs), filters=built
                )
            entries.append((compiled.match, compiled))
        host, port = split_address(listener.address)
        listeners.append(
            CompiledListener(
                name=listener.name,
                host=host,
                port=port,
                protocol=listener.protocol,
                routes=RouteTable(tuple(entries)),
                filter_names=tuple(f.name for f in listener.filters),
                filters=built,
                strip_internal=internal_header_strip(listener.internal_headers),
                exposures=tuple(Exposure(e, listener.name, rng) for e in listener.expose),
                limits=listener.limits,
            )
        )
    if issues:
        raise ConfigError(issues)
    return Snapshot(
        loaded,
        sources,
        pool,
        tuple(listeners),
        clusters,
        tuple(known),
        reflection_clusters,
        frozenset(compiler.xds_targets),
        used_filters,
    )


class _RouteCompiler:
    def __init__(
        self,
        config: GatewayConfig,
        clusters: Mapping[str, StaticCluster | RegistryCluster],
        pool: DescriptorPool,
        known: Mapping[str, object],
        may_reflect: bool,
        issues: list[ConfigIssue],
    ) -> None:
        self._config = config
        self._clusters = clusters
        self._pool = pool
        self._known = known
        self._may_reflect = may_reflect
        self._issues = issues
        self.xds_targets: set[str] = set(config.mesh.interfaces.values())

    def route(self, route: RouteConfig, default_name: str, where: Where) -> CompiledRoute | None:
        issues = self._issues
        name = parse_cluster_name(route.cluster)  # references.py checked it
        retry = retry_policy(route.retry) if route.retry is not None else None
        static = self._clusters.get(name.name) if isinstance(name, StaticName) else None
        ref: ClusterRef
        if isinstance(name, StaticName):
            if static is None:
                return None  # a cluster with its own error
            if isinstance(static, RegistryCluster):
                ref = RegistryClusterRef(
                    static, "json" if route.dubbo is not None else "proto", retry
                )
            else:
                ref = StaticClusterRef(static, retry)
        else:
            if self._config.mesh.xds is None:
                issues.append(
                    ConfigIssue(
                        (*where, "cluster"), "an xds:/// cluster needs mesh.xds in the config"
                    )
                )
            if isinstance(name, XdsTarget):
                self.xds_targets.add(name.target)
                ref = XdsClusterRef(name.target, retry)
            else:
                assert isinstance(name, ByInterface)
                ref = ByInterfaceRef(retry)
        cluster_dubbo = static.dubbo if static is not None else DubboOptions()
        limits = Limits(route.max_request_bytes, route.max_response_bytes)
        kind: RouteKind
        if route.transcode is None and route.dubbo is None:
            # grpc:, or any route of a protocol: grpc listener.
            protocols = route.grpc.protocols if route.grpc is not None else RPC_PROTOCOLS
            # A Triple cluster's group and version, for clients that do not say.
            triple = static is not None and static.protocol == "triple"
            kind = GrpcPassthrough(protocols, limits, self._pool, cluster_dubbo if triple else None)
        elif route.dubbo is not None:
            published = static.parameter_types if isinstance(static, RegistryCluster) else None
            kind = DubboJson(route.dubbo, limits, cluster_dubbo, published)
        else:
            assert route.transcode is not None
            transcoding = compile_transcoding(
                route.transcode,
                self._pool,
                self._known,
                where,
                issues,
                services_may_arrive=self._may_reflect,
            )
            kind = ProtobufTranscoding(
                transcoding, limits, services_may_arrive=self._may_reflect, dubbo=cluster_dubbo
            )
        upstream = self._upstream(route, static, kind, where)
        if upstream is None:
            return None
        return CompiledRoute(
            name=route.name or default_name,
            match=compile_match(route.match),
            kind=kind,
            cluster=ref,
            upstream=upstream,
            timeout=route.timeout or None,
        )

    def _upstream(
        self,
        route: RouteConfig,
        static: StaticCluster | RegistryCluster | None,
        kind: RouteKind,
        where: Where,
    ) -> UpstreamName | None:
        """The protocol client for this route: the cluster's protocol (or, for
        xds:/// clusters, the route's) carrying what the route kind sends. A
        registry cluster picks per request, by its providers' protocol; this is
        the first of its preference."""
        if isinstance(static, RegistryCluster):
            first = static.first_upstream(kind.encoding)
            if first is None:
                self._issues.append(
                    ConfigIssue(
                        (*where, "cluster"),
                        f"registry cluster {static.name!r} has no protocol for this route kind",
                    )
                )
            return first
        if static is not None:
            if route.protocol is not None and route.protocol != static.protocol:
                self._issues.append(
                    ConfigIssue(
                        (*where, "protocol"),
                        f"cluster {static.name!r} speaks {static.protocol}; "
                        f"a route's protocol is for xds:/// clusters",
                    )
                )
                return None
            protocol: str = static.protocol
        else:
            protocol = route.protocol or DEFAULT_MESH_PROTOCOL[kind.encoding]
        found = upstream_name(protocol, kind.encoding)
        if isinstance(kind, GrpcPassthrough):
            if protocol in ("grpc", "triple"):
                # Triple's gRPC mode is gRPC on the wire; the client's tri-* headers go along.
                return "grpc"
            self._issues.append(
                ConfigIssue(
                    (*where, "cluster"),
                    "gRPC passthrough needs a grpc or triple cluster; "
                    f"{route.cluster!r} is {protocol}",
                )
            )
            return None
        if found is None:
            section, what, need = _PROTOCOL_NEEDS[kind.encoding]
            self._issues.append(
                ConfigIssue(
                    (*where, section),
                    f"{what} needs {need} cluster; {route.cluster!r} is {protocol}",
                )
            )
        return found


class _FilterBuilder:
    """Builds a listener's filters, reusing the instance of an unchanged
    (listener, name, config) from the previous snapshot, and sharing one
    instance between the routes of a listener that use the same config."""

    def __init__(
        self,
        listener: str,
        base_dir: Path,
        cache: Mapping[FilterKey, Filter],
        used: dict[FilterKey, Filter],
        issues: list[ConfigIssue],
    ) -> None:
        self._listener = listener
        self._base_dir = base_dir
        self._cache = cache
        self._used = used
        self._issues = issues

    def build(self, specs: Sequence[FilterSpec]) -> tuple[Filter, ...]:
        built: list[Filter] = []
        for spec in specs:
            key = _filter_key(self._listener, spec.name, spec.config)
            found = self._used.get(key) or self._cache.get(key)
            if found is None:
                try:
                    found = build_filter(spec.name, spec.config, self._base_dir)
                except FilterConfigError as exc:
                    issue = ConfigIssue((*spec.where, "name"), str(exc))
                    if issue not in self._issues:
                        self._issues.append(issue)
                    continue
            self._used[key] = found
            built.append(found)
        return tuple(built)


def _filter_key(listener: str, name: str, config: Mapping[str, object]) -> FilterKey:
    return listener, name, json.dumps(config, sort_keys=True, default=str)
