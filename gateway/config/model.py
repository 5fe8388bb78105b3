"""The YAML configuration model, validated once at load.

Shapes follow DESIGN.md. Every model forbids unknown keys, so a typo is an
error with its place in the file rather than a silently ignored setting.
Checks that span sections (a route naming a missing cluster) live in
:mod:`gateway.config.references`; loading and error places in
:mod:`gateway.config.load`. Every model is named ``*Config``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|us)?\s*$")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``5s``, ``250ms``, ``1.5m``, or a bare number of seconds, to seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit, like 5s or 250ms")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"invalid duration {value!r}: use a number with a unit, like 5s or 250ms")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_address(value: Any) -> str:
    """``host:port`` or ``[v6]:port``; the port must be 0-65535."""
    if not isinstance(value, str):
        raise ValueError("an address is a string host:port")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid address {value!r}: expected host:port")
    return value


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


Duration = Annotated[float, BeforeValidator(parse_duration)]
# The protocols an upstream speaks: gRPC, Dubbo Triple (gRPC mode for transcode
# routes, HTTP/JSON mode for dubbo routes) and dubbo2.
Protocol = Literal["grpc", "triple", "dubbo"]
LbPolicy = Literal["round_robin", "least_request", "random", "ring_hash", "maglev"]
Address = Annotated[str, BeforeValidator(parse_address)]
MIB = 1024 * 1024


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdminConfig(Model):
    address: Address = "127.0.0.1:9901"


class ReflectionSourceConfig(Model):
    cluster: str


class DescriptorSourceConfig(Model):
    """One source of protobuf schemas; exactly one of file, proto, reflection."""

    file: Path | None = None
    proto: Path | None = None
    include: list[Path] = Field(default_factory=list)
    reflection: ReflectionSourceConfig | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DescriptorSourceConfig:
        given = [k for k in ("file", "proto", "reflection") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of file, proto or reflection")
        if self.include and self.proto is None:
            raise ValueError("include goes with proto")
        return self


class HeaderMatchConfig(Model):
    name: str
    exact: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    regex: str | None = None
    present: bool | None = None
    invert: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> HeaderMatchConfig:
        rules = [
            k
            for k in ("exact", "prefix", "suffix", "regex", "present")
            if getattr(self, k) is not None
        ]
        if len(rules) > 1:
            raise ValueError(f"give one of exact, prefix, suffix, regex, present; got {rules}")
        if self.regex is not None:
            _check_regex(self.regex)
        return self


class QueryMatchConfig(Model):
    name: str
    exact: str | None = None
    present: bool | None = None


class RouteMatchConfig(Model):
    prefix: str | None = None
    path: str | None = None
    regex: str | None = None
    methods: list[str] = Field(default_factory=list)
    headers: list[HeaderMatchConfig] = Field(default_factory=list)
    query: list[QueryMatchConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_path_rule(self) -> RouteMatchConfig:
        given = [k for k in ("prefix", "path", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of prefix, path or regex")
        if self.regex is not None:
            _check_regex(self.regex)
        return self


def _check_regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from None


class TranscodeConfig(Model):
    """How a route turns HTTP into RPCs.

    ``services`` serve their ``google.api.http`` bindings; ``auto_mapping``
    serves ``POST /pkg.Service/Method`` for every method (of ``services``, or
    of every descriptor when none are listed).
    """

    services: list[str] = Field(default_factory=list)
    auto_mapping: bool = False
    ignore_unknown_fields: bool = False
    preserve_proto_field_names: bool = False
    always_print_primitive_fields: bool = False
    enums_as_ints: bool = False
    stream: Literal["array", "ndjson", "sse"] = "array"
    ignore_unknown_query_parameters: bool = False
    ignored_query_parameters: list[str] = Field(default_factory=list)
    url_unescape_spec: Literal[
        "all_characters_except_reserved", "all_characters_except_slash", "all_characters"
    ] = "all_characters_except_reserved"
    query_param_unescape_plus: bool = False
    match_unregistered_custom_verb: bool = False

    @model_validator(mode="after")
    def _something_to_serve(self) -> TranscodeConfig:
        if not self.services and not self.auto_mapping:
            raise ValueError("give services, auto_mapping: true, or both")
        return self


RetryOn = Literal[
    "cancelled",
    "deadline_exceeded",
    "internal",
    "resource_exhausted",
    "unavailable",
    "unknown",
    "aborted",
    "data_loss",
]


class RetryConfig(Model):
    """Istio's HTTPRetry shape: ``attempts`` counts retries after the first try."""

    attempts: int = Field(default=1, ge=0, le=10)
    on: list[RetryOn] = Field(default_factory=lambda: list[RetryOn](["unavailable"]))
    per_try_timeout: Duration | None = None
    backoff: Duration = 0.025
    max_backoff: Duration = 0.25


class DubboRouteConfig(Model):
    """A route that passes JSON arguments to a Dubbo service with no protobuf IDL.

    ``POST /{interface}/{method}`` with a JSON array of arguments (or one
    value, or an object by parameter name, where the peer accepts it). The
    interface and method come from the path unless pinned here.
    """

    interface: str | None = None
    method: str | None = None
    group: str | None = None
    version: str | None = None
    # Java parameter types per method, for dubbo2 generic invocation
    # ({getUser: [long], greet: [java.lang.String, int]}).
    parameter_types: dict[str, list[str]] = Field(default_factory=dict)
    attachments: dict[str, str] = Field(default_factory=dict)


class RouteConfig(Model):
    name: str = ""
    match: RouteMatchConfig
    transcode: TranscodeConfig | None = None
    dubbo: DubboRouteConfig | None = None
    cluster: str
    # The upstream protocol: a static cluster's own by default; for an
    # xds:/// cluster the mesh does not say, so the route does (default: grpc
    # for transcode routes, triple for dubbo routes).
    protocol: Protocol | None = None
    timeout: Duration = 15.0
    retry: RetryConfig | None = None
    max_request_bytes: int = Field(default=4 * MIB, gt=0)
    max_response_bytes: int = Field(default=64 * MIB, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> RouteConfig:
        if self.transcode is not None and self.dubbo is not None:
            raise ValueError("a route has transcode or dubbo, not both")
        if self.transcode is None and self.dubbo is None:
            raise ValueError("a route needs transcode (protobuf) or dubbo (JSON to Dubbo)")
        return self


class FilterConfig(Model):
    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class ListenerConfig(Model):
    name: str
    address: Address
    protocol: Literal["http", "grpc"] = "http"
    filters: list[FilterConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)


class EndpointConfig(Model):
    address: Address
    weight: int = Field(default=1, ge=1, le=1_000_000)
    labels: dict[str, str] = Field(default_factory=dict)


class HashPolicyConfig(Model):
    """One request attribute a ring_hash or maglev cluster hashes on (Envoy's hash_policy)."""

    header: str | None = None
    cookie: str | None = None
    source_ip: bool | None = None
    query_parameter: str | None = None
    terminal: bool = False

    @model_validator(mode="after")
    def _one_attribute(self) -> HashPolicyConfig:
        given = [
            k
            for k in ("header", "cookie", "source_ip", "query_parameter")
            if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of header, cookie, source_ip or query_parameter")
        return self


class RingHashConfig(Model):
    """Ring size bounds of an ``lb: ring_hash`` cluster (Envoy's ring_hash_lb_config)."""

    # The ring gets at least this many points, so that the lightest endpoint
    # still owns a whole number of them.
    minimum_ring_size: int = Field(default=1024, ge=1, le=8 * 1024 * 1024)
    # Upper bound on the ring's points, whatever the weights ask for.
    maximum_ring_size: int = Field(default=8 * 1024 * 1024, ge=1, le=8 * 1024 * 1024)

    @model_validator(mode="after")
    def _ordered(self) -> RingHashConfig:
        if self.minimum_ring_size > self.maximum_ring_size:
            raise ValueError("minimum_ring_size is above maximum_ring_size")
        return self


class MaglevConfig(Model):
    """Lookup table of an ``lb: maglev`` cluster (Envoy's maglev_lb_config)."""

    # Slots in the table; must be prime (Envoy refuses other sizes too).
    table_size: int = Field(default=65537, ge=2, le=5_000_011)

    @model_validator(mode="after")
    def _prime(self) -> MaglevConfig:
        if not _is_prime(self.table_size):
            raise ValueError(f"table_size {self.table_size} is not prime")
        return self


def _is_prime(number: int) -> bool:
    if number < 2:
        return False
    return all(number % d for d in range(2, int(number**0.5) + 1))


class ClusterConfig(Model):
    name: str
    protocol: Protocol = "grpc"
    lb: LbPolicy = "round_robin"
    # ring_hash and maglev: what each request is hashed on, in order.
    hash_policy: list[HashPolicyConfig] = Field(default_factory=list)
    # lb: ring_hash only: the ring's size bounds.
    ring_hash: RingHashConfig = Field(default_factory=RingHashConfig)
    # lb: maglev only: the lookup table's size.
    maglev: MaglevConfig = Field(default_factory=MaglevConfig)
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    max_requests: int = Field(default=1024, ge=1)
    # Dubbo service group and version (triple and dubbo protocols); a route's
    # dubbo section or the x-dubbo-service-group / -version headers override.
    group: str | None = None
    version: str | None = None
    application: str = "meshgate"


class XdsConfig(Model):
    bootstrap: Path | None = None
    # How long start-up waits for each xds:/// target's resources before the
    # gateway turns ready anyway (Envoy's initial_fetch_timeout).
    initial_fetch_timeout: Duration = Field(default=10.0, gt=0)


class MeshConfig(Model):
    xds: XdsConfig | None = None
    interfaces: dict[str, str] = Field(default_factory=dict)
    discover_interfaces: bool = False


class ReloadConfig(Model):
    """How the config file is reloaded (SIGHUP, and the file watch)."""

    # Reload when the file changes (also when a Kubernetes ConfigMap swaps
    # its ..data symlink), not only on SIGHUP.
    watch: bool = True
    # Changes closer together than this are taken as one, and the file must
    # read the same twice this far apart before it is loaded.
    debounce: Duration = Field(default=0.5, ge=0.05, le=60)
    # A reload to a file without any listener is refused unless that file
    # says so here: a truncated file must not take every listener down.
    allow_no_listeners: bool = False


class GatewayConfig(Model):
    admin: AdminConfig = Field(default_factory=AdminConfig)
    descriptors: list[DescriptorSourceConfig] = Field(default_factory=list)
    listeners: list[ListenerConfig] = Field(default_factory=list)
    clusters: list[ClusterConfig] = Field(default_factory=list)
    mesh: MeshConfig = Field(default_factory=MeshConfig)
    # On SIGTERM, and for a listener a reload removes: how long requests
    # already accepted (streams included) may take to finish.
    drain_timeout: Duration = Field(default=20.0, ge=0)
    reload: ReloadConfig = Field(default_factory=ReloadConfig)
