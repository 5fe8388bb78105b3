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

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

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


# In the JSON Schema, durations and addresses are the strings users write
# (checked by pattern), not the float and str they are parsed into.
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(us|ms|s|m|h)?\s*$"
ADDRESS_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[^\s\[\]]+):\d{1,5}$"
_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": DURATION_PATTERN, "examples": ["5s", "250ms", "1.5m"]},
        {"type": "number", "minimum": 0, "description": "seconds"},
    ]
}
_ADDRESS_SCHEMA = {
    "type": "string",
    "pattern": ADDRESS_PATTERN,
    "examples": ["127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8443"],
}

Duration = Annotated[
    float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA, mode="validation")
]
# The protocols an upstream speaks: gRPC, Dubbo Triple (gRPC mode for transcode
# routes, HTTP/JSON mode for dubbo routes) and dubbo2.
Protocol = Literal["grpc", "triple", "dubbo"]
LbPolicy = Literal["round_robin", "least_request", "random", "ring_hash", "maglev"]
Address = Annotated[
    str, BeforeValidator(parse_address), WithJsonSchema(_ADDRESS_SCHEMA, mode="validation")
]
MIB = 1024 * 1024


class Model(BaseModel):
    # A field's docstring is its description in the JSON Schema (`meshgate schema`).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class AdminConfig(Model):
    address: Address = "127.0.0.1:9901"
    """Address of the admin listener (/ready, /metrics, /config_dump, /clusters)."""


class ReflectionSourceConfig(Model):
    cluster: str
    """Static cluster whose backends are asked for their schemas by gRPC server reflection."""


class DescriptorSourceConfig(Model):
    """One source of protobuf schemas; exactly one of file, proto, reflection."""

    file: Path | None = None
    """A FileDescriptorSet (protoc --include_imports --descriptor_set_out), relative to
    this file."""
    proto: Path | None = None
    """A .proto file compiled at load with grpcio-tools' protoc, relative to this file."""
    include: list[Path] = Field(default_factory=list)
    """Import directories for `proto` (default: the proto's own directory)."""
    reflection: ReflectionSourceConfig | None = None
    """Fetch the schemas from a cluster's backends by gRPC server reflection."""

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
    """Header name (case-insensitive)."""
    exact: str | None = None
    """The header's value equals this."""
    prefix: str | None = None
    """The header's value starts with this."""
    suffix: str | None = None
    """The header's value ends with this."""
    regex: str | None = None
    """The header's whole value matches this regular expression."""
    present: bool | None = None
    """true: the header must be present; false: it must be absent."""
    invert: bool = False
    """Invert the match (an absent header still fails a value rule, as in Envoy)."""

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
    """Query parameter name."""
    exact: str | None = None
    """One of the parameter's values equals this."""
    present: bool | None = None
    """true: the parameter must be present; false: it must be absent."""


class RouteMatchConfig(Model):
    prefix: str | None = None
    """The path starts with this."""
    path: str | None = None
    """The path equals this."""
    regex: str | None = None
    """The whole path matches this regular expression."""
    methods: list[str] = Field(default_factory=list)
    """HTTP methods the route accepts (default: any)."""
    headers: list[HeaderMatchConfig] = Field(default_factory=list)
    """Header conditions; every one must hold."""
    query: list[QueryMatchConfig] = Field(default_factory=list)
    """Query parameter conditions; every one must hold."""

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
    """Fully qualified gRPC services whose google.api.http bindings this route serves."""
    auto_mapping: bool = False
    """Also serve POST /pkg.Service/Method for every method (of `services`, or of every
    descriptor)."""
    ignore_unknown_fields: bool = False
    """Ignore JSON request fields the message does not have, instead of a 400."""
    preserve_proto_field_names: bool = False
    """Reply with the proto field names (snake_case) instead of lowerCamelCase."""
    always_print_primitive_fields: bool = False
    """Reply with fields that hold their default value (0, "", false) too."""
    enums_as_ints: bool = False
    """Reply with enum values as numbers instead of names."""
    stream: Literal["array", "ndjson", "sse"] = "array"
    """How a server-streaming reply is written: one JSON array, NDJSON lines, or
    server-sent events."""
    ignore_unknown_query_parameters: bool = False
    """Ignore query parameters that name no request field, instead of a 400."""
    ignored_query_parameters: list[str] = Field(default_factory=list)
    """Query parameters never mapped to request fields (API keys and the like)."""
    url_unescape_spec: Literal[
        "all_characters_except_reserved", "all_characters_except_slash", "all_characters"
    ] = "all_characters_except_reserved"
    """Which percent-escapes in path variables are decoded (Envoy's url_unescape_spec)."""
    query_param_unescape_plus: bool = False
    """Decode '+' in query parameters as a space."""
    match_unregistered_custom_verb: bool = False
    """Match a path ending in ':verb' even when no binding declares that verb."""

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
    """Retries after the first try (0 to 10)."""
    on: list[RetryOn] = Field(default_factory=lambda: list[RetryOn](["unavailable"]))
    """gRPC status codes (lower case) that are retried."""
    per_try_timeout: Duration | None = None
    """Deadline of each try (default: the route's timeout)."""
    backoff: Duration = 0.025
    """Base of the exponential back-off between tries."""
    max_backoff: Duration = 0.25
    """Longest back-off between tries."""


class DubboRouteConfig(Model):
    """A route that passes JSON arguments to a Dubbo service with no protobuf IDL.

    ``POST /{interface}/{method}`` with a JSON array of arguments (or one
    value, or an object by parameter name, where the peer accepts it). The
    interface and method come from the path unless pinned here.
    """

    interface: str | None = None
    """Dubbo interface to call (default: the first path segment)."""
    method: str | None = None
    """Method to call (default: the second path segment)."""
    group: str | None = None
    """Provider group (overrides the cluster's)."""
    version: str | None = None
    """Provider version (overrides the cluster's)."""
    # Java parameter types per method, for dubbo2 generic invocation
    # ({getUser: [long], greet: [java.lang.String, int]}).
    parameter_types: dict[str, list[str]] = Field(default_factory=dict)
    """Java parameter types per method, for dubbo2 generic invocation."""
    attachments: dict[str, str] = Field(default_factory=dict)
    """Attachments sent with every call of this route."""


class RouteConfig(Model):
    name: str = ""
    """Route name, shown in logs, metrics and `meshgate routes`."""
    match: RouteMatchConfig
    """Which requests this route takes; the first matching route wins."""
    transcode: TranscodeConfig | None = None
    """Protobuf transcoding: HTTP/JSON to gRPC by google.api.http bindings or auto-mapping."""
    dubbo: DubboRouteConfig | None = None
    """JSON arguments to a Dubbo service with no protobuf IDL."""
    cluster: str
    """Where the calls go: a cluster name, xds:///HOST:PORT (mesh), or xds:///* (by service)."""
    protocol: Protocol | None = None
    """The upstream protocol: a static cluster's own by default; for an xds:/// cluster the
    mesh does not say, so the route does (default: grpc for transcode routes, triple for dubbo
    routes)."""
    timeout: Duration = 15.0
    """Deadline of the upstream call, retries included."""
    retry: RetryConfig | None = None
    """Retry policy (Istio's HTTPRetry shape)."""
    max_request_bytes: int = Field(default=4 * MIB, gt=0)
    """Largest request body accepted (413 beyond)."""
    max_response_bytes: int = Field(default=64 * MIB, gt=0)
    """Largest upstream reply passed on (an error beyond)."""

    @model_validator(mode="after")
    def _one_kind(self) -> RouteConfig:
        if self.transcode is not None and self.dubbo is not None:
            raise ValueError("a route has transcode or dubbo, not both")
        if self.transcode is None and self.dubbo is None:
            raise ValueError("a route needs transcode (protobuf) or dubbo (JSON to Dubbo)")
        return self


class FilterConfig(Model):
    name: str
    """Filter name: one of the registered filters."""
    config: dict[str, Any] = Field(default_factory=dict)
    """The filter's own settings; their schema depends on `name`."""


class OpenApiConfig(Model):
    """The listener's OpenAPI document, generated from its routes' descriptors."""

    path: str = Field(default="/openapi.json", pattern=r"^/")
    """Path the document is served at (GET), before the routes are matched."""
    ui_path: str | None = Field(default="/docs", pattern=r"^/")
    """Path of a browsable page (Swagger UI) over the document; null for none."""
    title: str = "meshgate"
    """The document's info.title."""


class ListenerConfig(Model):
    name: str
    """Listener name, unique in the file."""
    address: Address
    """host:port to listen on."""
    protocol: Literal["http", "grpc"] = "http"
    """http: REST/JSON over HTTP/1.1 and h2; grpc: gRPC passthrough."""
    filters: list[FilterConfig] = Field(default_factory=list)
    """HTTP filters, in order, before the router."""
    routes: list[RouteConfig] = Field(default_factory=list)
    """Routes, in order; the first match wins."""
    openapi: OpenApiConfig | None = None
    """Serve an OpenAPI 3.1 document of this listener's transcoded routes (off by default)."""


class EndpointConfig(Model):
    address: Address
    """host:port of the backend."""
    weight: int = Field(default=1, ge=1, le=1_000_000)
    """Load-balancing weight (1 to 1000000)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels of the endpoint (version, zone...), shown in /clusters."""


class HashPolicyConfig(Model):
    """One request attribute a ring_hash or maglev cluster hashes on (Envoy's hash_policy)."""

    header: str | None = None
    """Hash on this request header."""
    cookie: str | None = None
    """Hash on this cookie."""
    source_ip: bool | None = None
    """Hash on the client's IP address."""
    query_parameter: str | None = None
    """Hash on this query parameter."""
    terminal: bool = False
    """Stop at this attribute when it is present, ignoring the ones after."""

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


class ClusterConfig(Model):
    name: str
    """Cluster name, referred to by routes' `cluster`."""
    protocol: Protocol = "grpc"
    """What the backends speak: gRPC, Dubbo Triple, or dubbo2."""
    lb: LbPolicy = "round_robin"
    """Load-balancing policy over the endpoints."""
    hash_policy: list[HashPolicyConfig] = Field(default_factory=list)
    """ring_hash and maglev: what each request is hashed on, in order."""
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    """The backends."""
    max_requests: int = Field(default=1024, ge=1)
    """Most requests in flight to the cluster at once (503 beyond)."""
    group: str | None = None
    """Dubbo service group of the providers (triple and dubbo protocols); a route's dubbo
    section or the x-dubbo-service-group header overrides it."""
    version: str | None = None
    """Dubbo service version of the providers."""
    application: str = "meshgate"
    """Dubbo application name the gateway calls as."""


class XdsConfig(Model):
    bootstrap: Path | None = None
    """gRPC xDS bootstrap file (GRPC_XDS_BOOTSTRAP format); default: $GRPC_XDS_BOOTSTRAP."""


class MeshConfig(Model):
    xds: XdsConfig | None = None
    """The xDS management server (istiod) to learn clusters from."""
    interfaces: dict[str, str] = Field(default_factory=dict)
    """Dubbo interface or gRPC service -> mesh host:port, for xds:///* routes."""
    discover_interfaces: bool = False
    """Learn the interface -> host map from the mesh itself."""


class GatewayConfig(Model):
    admin: AdminConfig = Field(default_factory=AdminConfig)
    """The admin listener."""
    descriptors: list[DescriptorSourceConfig] = Field(default_factory=list)
    """Where protobuf schemas come from."""
    listeners: list[ListenerConfig] = Field(min_length=1)
    """The HTTP listeners; a config serves at least one."""
    clusters: list[ClusterConfig] = Field(default_factory=list)
    """Static clusters (xds:/// clusters come from the mesh)."""
    mesh: MeshConfig = Field(default_factory=MeshConfig)
    """The embedded proxyless mesh core."""
