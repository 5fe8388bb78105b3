"""Compile a loaded config into an immutable snapshot (DESIGN.md, principle 2).

Everything a request needs is resolved here: descriptor pool, message codecs
per method, compiled route matches, pickers, filter chains. A request takes
the snapshot current when it starts and keeps it to the end, so a reload
never changes a request half-way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool

from filters import FilterConfigError, build_filter
from filters.http import Filter
from gateway.clusters import StaticCluster
from gateway.config import DubboRoute, GatewayConfig, RetryPolicy, Route, split_address
from gateway.config_check import XDS_SCHEME
from gateway.config_load import ConfigError, ConfigIssue, LoadedConfig
from gateway.descriptors import (
    DescriptorError,
    all_services,
    build_pool,
    compile_proto,
    read_descriptor_set,
)
from gateway.reflection import ReflectionError, fetch_descriptor_set
from gateway.routing import CompiledMatch, RouteTable, compile_match
from gateway.transcode.bindings import Transcoding, compile_transcoding

log = logging.getLogger("meshgate")

SUPPORTED_PROTOCOLS = frozenset({"grpc", "triple", "dubbo"})


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    name: str
    match: CompiledMatch
    cluster: str
    timeout: float | None
    retry: RetryPolicy | None
    max_request_bytes: int
    max_response_bytes: int
    transcoding: Transcoding | None
    dubbo: DubboRoute | None

    @property
    def xds_target(self) -> str | None:
        if self.cluster.startswith(XDS_SCHEME):
            return self.cluster.removeprefix(XDS_SCHEME)
        return None


@dataclass(frozen=True, slots=True)
class CompiledListener:
    name: str
    host: str
    port: int
    protocol: str
    routes: RouteTable[CompiledRoute]
    filter_names: tuple[str, ...]
    # Built once per snapshot, in YAML order: the first sees the request first.
    filters: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    loaded: LoadedConfig
    pool: DescriptorPool
    listeners: tuple[CompiledListener, ...]
    clusters: Mapping[str, StaticCluster]
    services: tuple[str, ...] = field(default=())
    reflection_clusters: tuple[str, ...] = field(default=())
    reflected: Mapping[str, descriptor_pb2.FileDescriptorSet] = field(default_factory=dict)

    @property
    def config(self) -> GatewayConfig:
        return self.loaded.config


def compile_snapshot(loaded: LoadedConfig,
                     reflected: Mapping[str, descriptor_pb2.FileDescriptorSet] | None = None,
                     fetch_reflection: bool = True) -> Snapshot:
    """Resolve the whole config, or raise ConfigError listing every problem.

    ``reflected`` holds descriptor sets already fetched by server reflection,
    by cluster name; sources missing from it are fetched now when
    ``fetch_reflection`` (a backend that does not answer is skipped: its
    services arrive on demand later).
    """
    config = loaded.config
    issues: list[ConfigIssue] = []
    reflected = dict(reflected or {})
    sets = _load_descriptor_sets(loaded, issues)
    reflection_clusters = tuple(s.reflection.cluster for s in config.descriptors
                                if s.reflection is not None)
    for cluster_name in reflection_clusters:
        if cluster_name not in reflected and fetch_reflection:
            fetched = _fetch_reflection(config, cluster_name)
            if fetched is not None:
                reflected[cluster_name] = fetched
    sets.extend(reflected[name] for name in reflection_clusters if name in reflected)
    pool = DescriptorPool()
    try:
        pool = build_pool(sets)
    except DescriptorError as exc:
        issues.append(ConfigIssue(("descriptors",), str(exc)))
    known = {s.full_name: s for s in all_services(pool, sets)} if not issues else {}

    clusters: dict[str, StaticCluster] = {}
    for i, cluster in enumerate(config.clusters):
        if cluster.protocol not in SUPPORTED_PROTOCOLS:
            issues.append(ConfigIssue(("clusters", i, "protocol"),
                                      f"protocol {cluster.protocol!r} is not supported yet"))
            continue
        try:
            clusters[cluster.name] = StaticCluster.from_config(cluster)
        except ValueError as exc:
            issues.append(ConfigIssue(("clusters", i, "lb"), str(exc)))

    listeners: list[CompiledListener] = []
    for i, listener in enumerate(config.listeners):
        if listener.protocol != "http":
            issues.append(ConfigIssue(("listeners", i, "protocol"), "protocol 'grpc' (gRPC "
                                      "passthrough) is not supported yet; use http"))
        entries: list[tuple[CompiledMatch, CompiledRoute]] = []
        for j, route in enumerate(listener.routes):
            where = ("listeners", i, "routes", j)
            transcoding = (
                compile_transcoding(route.transcode, pool, known, where, issues,
                                    services_may_arrive=bool(reflection_clusters))
                if route.transcode is not None else None)
            _check_route_protocol(route, clusters, where, issues)
            if route.cluster.startswith(XDS_SCHEME) and config.mesh.xds is None:
                issues.append(ConfigIssue((*where, "cluster"),
                                          "an xds:/// cluster needs mesh.xds in the config"))
            compiled = CompiledRoute(
                name=route.name or f"{listener.name}/{j}",
                match=compile_match(route.match),
                cluster=route.cluster,
                timeout=route.timeout or None,
                retry=route.retry,
                max_request_bytes=route.max_request_bytes,
                max_response_bytes=route.max_response_bytes,
                transcoding=transcoding,
                dubbo=route.dubbo,
            )
            entries.append((compiled.match, compiled))
        built_filters: list[Filter] = []
        for k, spec in enumerate(listener.filters):
            try:
                built_filters.append(build_filter(spec.name, spec.config))
            except FilterConfigError as exc:
                issues.append(ConfigIssue(("listeners", i, "filters", k, "name"), str(exc)))
        host, port = split_address(listener.address)
        listeners.append(CompiledListener(
            name=listener.name, host=host, port=port, protocol=listener.protocol,
            routes=RouteTable(tuple(entries)),
            filter_names=tuple(f.name for f in listener.filters),
            filters=tuple(built_filters),
        ))
    if issues:
        raise ConfigError(issues)
    return Snapshot(loaded, pool, tuple(listeners), clusters, tuple(known),
                    reflection_clusters, reflected)


def _load_descriptor_sets(loaded: LoadedConfig,
                          issues: list[ConfigIssue]) -> list[descriptor_pb2.FileDescriptorSet]:
    sets = []
    for i, source in enumerate(loaded.config.descriptors):
        try:
            if source.file is not None:
                sets.append(read_descriptor_set(loaded.resolve(source.file)))
            elif source.proto is not None:
                include = [loaded.resolve(p) for p in source.include]
                sets.append(compile_proto(loaded.resolve(source.proto), include))
        except DescriptorError as exc:
            key = "file" if source.file is not None else "proto"
            issues.append(ConfigIssue(("descriptors", i, key), str(exc)))
    return sets


def _check_route_protocol(route: Route, clusters: Mapping[str, StaticCluster],
                          where: tuple[str | int, ...], issues: list[ConfigIssue]) -> None:
    cluster = clusters.get(route.cluster)
    if cluster is None:
        return
    if route.dubbo is not None and cluster.protocol not in ("triple", "dubbo"):
        issues.append(ConfigIssue((*where, "dubbo"), f"a dubbo route needs a triple or dubbo "
                                  f"cluster; {cluster.name!r} is {cluster.protocol}"))
    if route.transcode is not None and cluster.protocol not in ("grpc", "triple"):
        issues.append(ConfigIssue((*where, "transcode"), f"protobuf transcoding needs a grpc or "
                                  f"triple cluster; {cluster.name!r} is {cluster.protocol}"))


def _fetch_reflection(config: GatewayConfig,
                      cluster_name: str) -> descriptor_pb2.FileDescriptorSet | None:
    cluster = next((c for c in config.clusters if c.name == cluster_name), None)
    if cluster is None:
        return None
    try:
        return fetch_descriptor_set(e.address for e in cluster.endpoints)
    except ReflectionError as exc:
        log.warning("descriptors of cluster %r not fetched yet: %s", cluster_name, exc)
        return None

