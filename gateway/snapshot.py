"""Compile a loaded config into an immutable snapshot (DESIGN.md, principle 2).

Everything a request needs is resolved here: descriptor pool, message codecs
per method, compiled route matches, pickers, filter chains. A request takes
the snapshot current when it starts and keeps it to the end, so a reload
never changes a request half-way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool

from filters import FilterConfigError, build_filter
from filters.http import Filter
from gateway.clusters import StaticCluster
from gateway.config import GatewayConfig, RetryPolicy, TranscodeConfig, split_address
from gateway.config_check import XDS_SCHEME
from gateway.config_load import ConfigError, ConfigIssue, LoadedConfig
from gateway.descriptors import (
    DescriptorError,
    all_services,
    build_pool,
    compile_proto,
    method_path,
    read_descriptor_set,
)
from gateway.routing import CompiledMatch, RouteTable, compile_match
from gateway.transcode.json_codec import MessageCodec, PrintOptions

SUPPORTED_PROTOCOLS = frozenset({"grpc"})


@dataclass(frozen=True, slots=True)
class MethodBinding:
    path: str
    input: MessageCodec
    output: MessageCodec
    client_streaming: bool
    server_streaming: bool


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    name: str
    match: CompiledMatch
    cluster: str
    timeout: float | None
    retry: RetryPolicy | None
    max_request_bytes: int
    # Auto-mapped methods by gRPC path, for POST /pkg.Service/Method.
    methods: Mapping[str, MethodBinding]

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

    @property
    def config(self) -> GatewayConfig:
        return self.loaded.config


def compile_snapshot(loaded: LoadedConfig) -> Snapshot:
    """Resolve the whole config, or raise ConfigError listing every problem."""
    config = loaded.config
    issues: list[ConfigIssue] = []
    sets = _load_descriptor_sets(loaded, issues)
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
        entries: list[tuple[CompiledMatch, CompiledRoute]] = []
        for j, route in enumerate(listener.routes):
            where = ("listeners", i, "routes", j)
            methods = _bind_methods(route.transcode, pool, known, where, issues)
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
                methods=methods,
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
    return Snapshot(loaded, pool, tuple(listeners), clusters, tuple(known))


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
            else:
                issues.append(ConfigIssue(("descriptors", i, "reflection"),
                                          "server reflection is not supported yet"))
        except DescriptorError as exc:
            key = "file" if source.file is not None else "proto"
            issues.append(ConfigIssue(("descriptors", i, key), str(exc)))
    return sets


def _bind_methods(transcode: TranscodeConfig | None, pool: DescriptorPool,
                  known: Mapping[str, Any], where: tuple[str | int, ...],
                  issues: list[ConfigIssue]) -> dict[str, MethodBinding]:
    if transcode is None:
        return {}
    for k, name in enumerate(transcode.services):
        if name not in known:
            issues.append(ConfigIssue((*where, "transcode", "services", k),
                                      f"unknown service {name!r}: not in any descriptor"))
    if not transcode.auto_mapping:
        return {}
    names: Iterable[str] = transcode.services or known
    options = PrintOptions(
        preserve_proto_field_names=transcode.preserve_proto_field_names,
        always_print_primitive_fields=transcode.always_print_primitive_fields,
        enums_as_ints=transcode.enums_as_ints,
    )
    codecs: dict[str, MessageCodec] = {}

    def codec(descriptor: Any) -> MessageCodec:
        found = codecs.get(descriptor.full_name)
        if found is None:
            cls = message_factory.GetMessageClass(descriptor)
            found = MessageCodec(cls, pool, ignore_unknown_fields=transcode.ignore_unknown_fields,
                                 options=options)
            codecs[descriptor.full_name] = found
        return found

    bindings: dict[str, MethodBinding] = {}
    for name in names:
        if name not in known:
            continue
        method: MethodDescriptor
        for method in known[name].methods:
            path = method_path(method)
            bindings[path] = MethodBinding(
                path=path,
                input=codec(method.input_type),
                output=codec(method.output_type),
                client_streaming=method.client_streaming,
                server_streaming=method.server_streaming,
            )
    return bindings
