"""The YAML configuration model, validated once at load.

Shapes follow DESIGN.md. Every model forbids unknown keys, so a typo is an
error with its place in the file rather than a silently ignored setting.
Checks that span sections (a route naming a missing cluster) live in
:mod:`gateway.config.references`; loading and error places in
:mod:`gateway.config.load`. Every model is named ``*Config``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from gateway.config.observability import AccessLogConfig, LoggingConfig, RequestIdConfig
from mesh.regex import compile_regex

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
_DIGITS = frozenset("0123456789")


def duration_seconds(text: str) -> float | None:
    """Seconds from ``5s``, ``250ms``, ``1.5m`` or a bare number of seconds; None
    if malformed. A single left-to-right scan, no regex: request headers reach this,
    and a backtracking pattern here once held a worker for seconds on one value."""
    text = text.strip()
    end = 0
    while end < len(text) and text[end] in _DIGITS:
        end += 1
    if end == 0:
        return None
    if end < len(text) and text[end] == ".":
        fraction = end + 1
        end = fraction
        while end < len(text) and text[end] in _DIGITS:
            end += 1
        if end == fraction:
            return None
    unit = _UNITS.get(text[end:].lstrip())
    if unit is None:
        return None
    return float(text[:end]) * unit


def parse_duration(value: Any) -> float:
    """``5s``, ``250ms``, ``1.5m``, or a bare number of seconds, to seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit, like 5s or 250ms")
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = duration_seconds(value)
    if seconds is None:
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


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class AdminConfig(Model):
    """The admin endpoint (/ready, /metrics, /config_dump, /clusters).

    It shows the whole config and the mesh state, so it listens on loopback
    unless ``allow_remote`` says otherwise (a Kubernetes probe on the pod IP,
    say, behind a NetworkPolicy).
    """

    address: Address = "127.0.0.1:9901"
    """Address of the admin listener (/ready, /metrics, /config_dump, /clusters)."""
    allow_remote: bool = False
    """Let address name a non-loopback interface (0.0.0.0, a pod IP)."""

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> AdminConfig:
        host = split_address(self.address)[0]
        if not self.allow_remote and not _is_loopback(host):
            raise ValueError(
                f"admin address {self.address!r} is not loopback; "
                "set allow_remote: true to expose the admin endpoint"
            )
        return self


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    # RE2, as Envoy: a pattern RE2 refuses is refused at load (RegexError is a ValueError).
    compile_regex(pattern)


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


def _underscores(value: Any) -> Any:
    """Envoy spells retry_on names with dashes (connect-failure); take both."""
    return value.replace("-", "_") if isinstance(value, str) else value


RetryOn = Literal[
    "connect_failure",
    "refused_stream",
    "reset",
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
    on: list[Annotated[RetryOn, BeforeValidator(_underscores)]] = Field(
        default_factory=lambda: list[RetryOn](["unavailable"])
    )
    """gRPC status names (lower case), and Envoy's transport conditions connect_failure
    (no connection), refused_stream and reset (the connection broke under the request),
    that are retried."""
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


RpcProtocol = Literal["grpc", "grpc-web", "connect"]


class GrpcRouteConfig(Model):
    """gRPC passthrough: gRPC, gRPC-Web and Connect requests to a gRPC (or Triple)
    cluster, forwarded without transcoding (docs/grpc-front.md)."""

    protocols: list[RpcProtocol] = Field(
        default_factory=lambda: list[RpcProtocol](["grpc", "grpc-web", "connect"])
    )
    """Client protocols this route takes: grpc (HTTP/2), grpc-web (binary and text) and
    connect (unary, GET and streaming); others get 415 or a status in their protocol."""


class RouteFilterConfig(Model):
    """A route's change to its listener's filter chain.

    Naming a listener filter replaces the given top-level keys of its config
    for this route (``config``), or drops it (``disabled: true``); naming any
    other filter adds it after the listener's filters, in the route's order.
    """

    name: str
    """The filter, by its registered name."""
    config: dict[str, Any] | None = None
    """Keys that replace the listener filter's (or, for an added filter, its config)."""
    disabled: bool = False
    """Leave the listener's filter of this name out of this route's chain."""

    @model_validator(mode="after")
    def _disabled_alone(self) -> RouteFilterConfig:
        if self.disabled and self.config is not None:
            raise ValueError("a disabled filter takes no config")
        return self


class RouteConfig(Model):
    name: str = ""
    """Route name, shown in logs, metrics and `meshgate routes`."""
    match: RouteMatchConfig
    """Which requests this route takes; the first matching route wins."""
    filters: list[RouteFilterConfig] = Field(default_factory=list)
    """Per-route changes to the listener's filter chain: add, override the config of,
    or disable (``disabled: true``) a listener filter for this route."""
    transcode: TranscodeConfig | None = None
    """Protobuf transcoding: HTTP/JSON to gRPC by google.api.http bindings or auto-mapping."""
    dubbo: DubboRouteConfig | None = None
    """JSON arguments to a Dubbo service with no protobuf IDL."""
    grpc: GrpcRouteConfig | None = None
    """gRPC passthrough (and gRPC-Web, Connect): the default on a protocol: grpc listener."""
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
        given = [k for k in ("transcode", "dubbo", "grpc") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(
                f"a route has one of transcode, dubbo or grpc, not {' and '.join(given)}"
            )
        return self


class FilterConfig(Model):
    """One HTTP filter of a listener: a registered name and its config."""

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


class RegistryConfig(Model):
    """Where Dubbo providers register themselves, and which of them to take.

    ``kind``, ``address`` and ``root`` say which registry; ``interface``,
    ``group``, ``version`` and ``application`` select providers (unset: any).
    A cluster needs ``interface``; an ``expose`` entry may leave it out to take
    every interface found.
    """

    kind: Literal["zookeeper", "nacos"] = "zookeeper"
    """nacos is named so that asking for it gets a clear answer (not yet)."""
    address: str
    """One or more host:port of the ZooKeeper ensemble, comma-separated."""
    root: str = "dubbo"
    """Dubbo's registry group: the root node of its layout (/dubbo by default)."""
    interface: str | None = None
    """The Dubbo interface whose providers form the cluster."""
    group: str | None = None
    """Provider service group and version; unset takes providers of any."""
    version: str | None = None
    """Provider service version; unset takes providers of any."""
    application: str | None = None
    """Only providers of this application (Dubbo 3 application name)."""
    discovery: Literal["interface", "application", "both"] = "both"
    """interface: the /{root}/{interface}/providers URLs; application: Dubbo 3 service
    discovery (mapping, /services/{app} instances, revision metadata); both: the union of
    the two."""
    protocols: list[Literal["tri", "dubbo"]] = Field(
        default_factory=lambda: list[Literal["tri", "dubbo"]](["tri", "dubbo"])
    )
    """Provider URL protocols to use, in order of preference (tri is Triple, dubbo is dubbo2):
    the first one with providers serves a request."""
    session_timeout: Duration = 10.0
    """Session timeout asked of ZooKeeper; a longer outage than this expires the session
    (meshgate then starts a new one and reads everything again)."""

    @model_validator(mode="after")
    def _addresses(self) -> RegistryConfig:
        if self.kind == "nacos":
            raise ValueError(
                "kind nacos is not supported yet (no Nacos server to test against here; "
                "see docs/registries.md); use zookeeper"
            )
        for part in self.address.split(","):
            parse_address(part.strip())
        if not self.protocols:
            raise ValueError("protocols needs at least one of tri, dubbo")
        return self


class ExposeConfig(Model):
    """Auto-exposure: every interface a registry holds becomes HTTP routes.

    ``POST`` on ``path`` (with ``{application}``, ``{interface}``, ``{group}``,
    ``{version}`` and ``{method}`` filled from each provider) with a JSON
    array of arguments calls that method; empty segments are dropped.
    """

    registry: RegistryConfig
    """The registry whose interfaces become routes."""
    include: list[str] = Field(default_factory=list)
    """Interface name patterns (fnmatch, e.g. org.example.*); empty: all."""
    exclude: list[str] = Field(default_factory=list)
    """Interface name patterns (fnmatch) left out."""
    path: str = "/{application}/{interface}/{version}/{method}"
    """Path of each method's route, filled from each provider."""
    timeout: Duration = 15.0
    """Deadline of each call."""
    max_request_bytes: int = Field(default=4 * MIB, gt=0)
    """413 above this request body size."""
    max_response_bytes: int = Field(default=64 * MIB, gt=0)
    """Largest reply accepted from a provider."""

    @model_validator(mode="after")
    def _path(self) -> ExposeConfig:
        if not self.path.startswith("/") or "{method}" not in self.path:
            raise ValueError("path starts with / and has a {method} segment")
        if "{interface}" not in self.path:
            raise ValueError("path needs an {interface} segment")
        return self


TlsVersion = Literal["1.2", "1.3"]
# ALPN names a listener can offer: h2 (HTTP/2) and http/1.1.
AlpnProtocol = Literal["h2", "http/1.1"]
# TLS 1.2 suites: forward secrecy and AEAD only (Mozilla's "intermediate"
# list). TLS 1.3 suites are all modern and not configurable here.
MODERN_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


class TlsCertificateConfig(Model):
    """One certificate a TLS listener serves, chosen by the name the client asks for (SNI)."""

    cert: Path
    """PEM chain: the leaf first, then intermediates"""
    key: Path
    """PEM private key of the leaf"""
    server_names: list[str] = Field(default_factory=list)
    """Exact names or "*.example.com" (one label); empty: the default certificate."""


class ListenerTlsConfig(Model):
    """TLS termination on a listener; files are re-read when they change (rotation)."""

    cert: Path | None = None
    """The default certificate: served when SNI names none of ``certificates``."""
    key: Path | None = None
    """PEM private key of the default certificate."""
    certificates: list[TlsCertificateConfig] = Field(default_factory=list)
    """More certificates, by SNI name; the first is the default when cert/key are absent."""
    client_ca: Path | None = None
    """CA bundle (PEM) that client certificates must chain to: mTLS from clients."""
    require_client_certificate: bool = True
    """With client_ca: refuse clients without a certificate (false: verify one if sent)."""
    min_version: TlsVersion = "1.2"
    """Lowest TLS version accepted."""
    max_version: TlsVersion | None = None
    """Highest TLS version accepted (absent: the newest)."""
    ciphers: str = MODERN_CIPHERS
    """OpenSSL cipher list for TLS 1.2."""
    alpn: list[AlpnProtocol] = Field(default_factory=lambda: list[AlpnProtocol](["h2", "http/1.1"]))
    """ALPN protocols offered, in preference order; the one negotiated serves the
    connection (h2: HTTP/2)."""
    reload_interval: Duration = 1.0
    """How often the files are checked for a change, on new handshakes."""

    @model_validator(mode="after")
    def _has_certificate(self) -> ListenerTlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        if self.cert is None and not self.certificates:
            raise ValueError("give cert and key, or certificates")
        if self.max_version is not None and self.max_version < self.min_version:
            raise ValueError("max_version is below min_version")
        if not self.alpn:
            raise ValueError("alpn needs at least one protocol")
        return self


class ListenerLimitsConfig(Model):
    """What one client may cost a worker on this listener (docs/limits.md).

    The defaults follow Envoy's where Envoy has one (60 KiB of headers, 100
    headers); the timeouts Envoy leaves off are on here, so a slow or silent
    client cannot hold a socket forever.
    """

    max_request_header_bytes: int = Field(default=60 * 1024, ge=1024, le=16 * MIB)
    """Bytes of all request header names and values; past it 431."""
    max_request_headers: int = Field(default=100, ge=1, le=10_000)
    """Number of request header lines; past it 431."""
    max_url_bytes: int = Field(default=8 * 1024, ge=256, le=16 * MIB)
    """Bytes of the request target (path and query); past it 414."""
    header_read_timeout: Duration = Field(default=10.0, gt=0)
    """From the connection (or the end of the previous request) to the end of the request's
    headers; past it 408 if a request had begun, else closed."""
    body_read_timeout: Duration = Field(default=60.0, gt=0)
    """From the end of the headers to the end of the body; past it 408."""
    idle_timeout: Duration = Field(default=60.0, gt=0)
    """A keep-alive connection with no request in flight is closed after this."""
    max_connections: int = Field(default=1024, ge=1)
    """Open connections to this listener in one worker; past it a new connection is answered
    503 and closed (established ones are untouched). Also held under the worker's
    file-descriptor limit at start."""
    max_concurrent_streams: int = Field(default=100, ge=1, le=2**31 - 1)
    """HTTP/2 streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS);
    a stream past it is refused (RST_STREAM REFUSED_STREAM, which clients retry)."""


class ListenerConfig(Model):
    name: str
    """Listener name, unique in the file."""
    address: Address
    """host:port to listen on."""
    protocol: Literal["http", "grpc"] = "http"
    """http: REST/JSON routes, plus gRPC-Web/Connect/gRPC on routes with grpc:; grpc: every
    route is gRPC passthrough (gRPC, gRPC-Web and Connect) unless it says otherwise."""
    tls: ListenerTlsConfig | None = None
    """TLS termination; absent: plaintext."""
    filters: list[FilterConfig] = Field(default_factory=list)
    """HTTP filters, in order, before the router."""
    internal_headers: list[str] = Field(default_factory=list)
    """Request headers only the gateway may set (exact names, or a prefix ending in *,
    like x-internal-*): removed from every request on arrival, before the filters."""
    routes: list[RouteConfig] = Field(default_factory=list)
    """Routes, in order; the first match wins."""
    expose: list[ExposeConfig] = Field(default_factory=list)
    """Opt-in: routes made from what Dubbo registries hold, after the listed routes."""
    limits: ListenerLimitsConfig = Field(default_factory=ListenerLimitsConfig)
    """What one client may cost a worker on this listener (docs/limits.md)."""
    openapi: OpenApiConfig | None = None
    """Serve an OpenAPI 3.1 document of this listener's transcoded routes (off by default)."""
    access_log: AccessLogConfig | None = None
    """This listener's access log, instead of the top-level one (sample: 0 turns it off)."""

    @model_validator(mode="after")
    def _route_kinds(self) -> ListenerConfig:
        for i, route in enumerate(self.routes):
            if self.protocol == "grpc" and (route.transcode or route.dubbo):
                raise ValueError(
                    f"routes[{i}]: a protocol: grpc listener's routes are gRPC passthrough; "
                    "put transcode and dubbo routes on an http listener"
                )
            if self.protocol == "http" and not (route.transcode or route.dubbo or route.grpc):
                raise ValueError(
                    f"routes[{i}]: a route needs transcode (protobuf), dubbo (JSON to Dubbo) "
                    "or grpc (passthrough)"
                )
        return self


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


class GrpcHealthCheckConfig(Model):
    service: str = ""
    """The service name sent in grpc.health.v1 HealthCheckRequest; "" is the server."""


class StatusRangeConfig(Model):
    start: int = Field(ge=100, le=599)
    """The first status in the range."""
    end: int = Field(ge=101, le=600)
    """One past the last status in the range (half-open, as Envoy's Int64Range)."""

    @model_validator(mode="after")
    def _ordered(self) -> StatusRangeConfig:
        if self.end <= self.start:
            raise ValueError("end must be greater than start")
        return self


class HttpHealthCheckConfig(Model):
    path: str = "/"
    """GET this path over HTTP/1.1."""
    expected_statuses: list[StatusRangeConfig] = Field(
        default_factory=lambda: [StatusRangeConfig(start=200, end=201)]
    )
    """The answers that pass, as half-open ranges; Envoy's default, 200 only. Any 2xx:
    ``[{start: 200, end: 300}]``."""


class TcpHealthCheckConfig(Model):
    """A TCP connect that succeeds is healthy."""


class HealthCheckConfig(Model):
    """Active health checks of every endpoint of the cluster (Envoy's HealthCheck).

    Exactly one of grpc, http or tcp. An endpoint is unhealthy after
    ``unhealthy_threshold`` failed probes in a row and healthy again after
    ``healthy_threshold`` good ones; a probe that takes longer than
    ``timeout`` has failed.
    """

    grpc: GrpcHealthCheckConfig | None = None
    """Probe with grpc.health.v1.Health/Check (SERVING passes)."""
    http: HttpHealthCheckConfig | None = None
    """Probe with an HTTP GET (2xx passes)."""
    tcp: TcpHealthCheckConfig | None = None
    """Probe with a TCP connect."""
    interval: Duration = 5.0
    """between probes of one endpoint"""
    jitter: Duration = 0.0
    """up to this much more, at random, per probe"""
    timeout: Duration = 1.0
    """A probe slower than this has failed."""
    unhealthy_threshold: int = Field(default=3, ge=1)
    """Failed probes in a row that make an endpoint unhealthy."""
    healthy_threshold: int = Field(default=1, ge=1)
    """Passed probes in a row that make it healthy again."""

    @model_validator(mode="after")
    def _one_kind(self) -> HealthCheckConfig:
        given = [k for k in ("grpc", "http", "tcp") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of grpc, http or tcp")
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError("interval and timeout must be above zero")
        return self


Percent = Annotated[int, Field(ge=0, le=100)]


class OutlierDetectionConfig(Model):
    """Passive health: eject endpoints whose requests fail (Envoy's OutlierDetection,
    with Envoy's defaults). ``enforcing_*`` is the percent chance that a
    detected outlier is ejected; 0 turns that check off."""

    consecutive_5xx: int = Field(default=5, ge=0)
    """Eject after this many 5xx in a row (0: off)."""
    enforcing_consecutive_5xx: Percent = 100
    """Percent chance a consecutive-5xx outlier is ejected."""
    consecutive_gateway_failure: int = Field(default=5, ge=0)
    """Eject after this many gateway failures in a row: 502, 503, 504, connect failures, resets
    and timeouts (0: off)."""
    enforcing_consecutive_gateway_failure: Percent = 0
    """Percent chance a gateway-failure outlier is ejected."""
    interval: Duration = 10.0
    """How often the success-rate and failure-percentage checks run, and ejected endpoints are
    looked at again."""
    base_ejection_time: Duration = 30.0
    """An endpoint's n-th ejection lasts base_ejection_time * n, at most max_ejection_time."""
    max_ejection_time: Duration = 300.0
    """Longest one ejection may last."""
    max_ejection_percent: Percent = 10
    """At most this percent of the endpoints out at once (one always may be)."""
    success_rate_minimum_hosts: int = Field(default=5, ge=1)
    """Success rate (gRFC A50): eject below mean - stdev * stdev_factor / 1000, among endpoints
    with request_volume requests in the interval, when at least minimum_hosts have that
    many."""
    success_rate_request_volume: int = Field(default=100, ge=1)
    """Requests in an interval an endpoint needs to count for success rate."""
    success_rate_stdev_factor: int = Field(default=1900, ge=0)
    """Ejection below mean - stdev * factor / 1000."""
    enforcing_success_rate: Percent = 100
    """Percent chance a success-rate outlier is ejected."""
    failure_percentage_threshold: Percent = 85
    """Failure percentage (gRFC A50): eject at or above threshold percent failed."""
    failure_percentage_minimum_hosts: int = Field(default=5, ge=1)
    """Endpoints with enough requests needed for the failure-percentage check."""
    failure_percentage_request_volume: int = Field(default=50, ge=1)
    """Requests in an interval an endpoint needs to count for failure percentage."""
    enforcing_failure_percentage: Percent = 0
    """Percent chance a failure-percentage outlier is ejected."""

    @model_validator(mode="after")
    def _positive_interval(self) -> OutlierDetectionConfig:
        if self.interval <= 0:
            raise ValueError("interval must be above zero")
        return self


class RetryBudgetConfig(Model):
    """Envoy's retry budget: retries in flight may be at most budget_percent of
    the requests in flight, and min_retry_concurrency always."""

    budget_percent: float = Field(default=20.0, ge=0, le=100)
    """Retries in flight as a percent of the requests in flight."""
    min_retry_concurrency: int = Field(default=3, ge=0)
    """Retries always allowed in flight, whatever the budget."""


class KeepaliveConfig(Model):
    """HTTP/2 keepalive pings on the cluster's gRPC connections, so a dead peer
    is noticed in ``time + timeout`` even with no request on the connection."""

    time: Duration = 30.0
    """Ping after this long without activity."""
    timeout: Duration = 10.0
    """Close the connection if the ping is not answered within this."""


class ClusterTlsConfig(Model):
    """TLS (and, with cert and key, mTLS) to a cluster's endpoints; files re-read on change."""

    ca: Path | None = None
    """CA bundle (PEM) the server's chain must verify against; absent: the system's roots."""
    cert: Path | None = None
    """Client certificate chain and key (PEM), presented for mTLS."""
    key: Path | None = None
    """Private key (PEM) of the client certificate."""
    sni: str | None = None
    """Server name sent in the handshake (SNI) and checked against the certificate when
    verify_subject_alt_names is empty; absent: the endpoint's host."""
    verify_subject_alt_names: list[str] = Field(default_factory=list)
    """Accepted subject alternative names (DNS names, URIs such as SPIFFE IDs, IPs), any one of
    which the server's certificate must carry."""
    reload_interval: Duration = 1.0
    """How often the files are checked for a change, on new connections."""

    @model_validator(mode="after")
    def _pair(self) -> ClusterTlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        return self


class RingHashConfig(Model):
    """Ring size bounds of an ``lb: ring_hash`` cluster (Envoy's ring_hash_lb_config)."""

    minimum_ring_size: int = Field(default=1024, ge=1, le=8 * 1024 * 1024)
    """The ring gets at least this many points, so that the lightest endpoint still owns a
    whole number of them."""
    maximum_ring_size: int = Field(default=8 * 1024 * 1024, ge=1, le=8 * 1024 * 1024)
    """Upper bound on the ring's points, whatever the weights ask for."""

    @model_validator(mode="after")
    def _ordered(self) -> RingHashConfig:
        if self.minimum_ring_size > self.maximum_ring_size:
            raise ValueError("minimum_ring_size is above maximum_ring_size")
        return self


class MaglevConfig(Model):
    """Lookup table of an ``lb: maglev`` cluster (Envoy's maglev_lb_config)."""

    table_size: int = Field(default=65537, ge=2, le=5_000_011)
    """Slots in the table; must be prime (Envoy refuses other sizes too)."""

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
    """Cluster name, referred to by routes' `cluster`."""
    protocol: Protocol = "grpc"
    """What the backends speak: gRPC, Dubbo Triple, or dubbo2."""
    lb: LbPolicy = "round_robin"
    """Load-balancing policy over the endpoints."""
    hash_policy: list[HashPolicyConfig] = Field(default_factory=list)
    """ring_hash and maglev: what each request is hashed on, in order."""
    ring_hash: RingHashConfig = Field(default_factory=RingHashConfig)
    """lb: ring_hash only: the ring's size bounds."""
    maglev: MaglevConfig = Field(default_factory=MaglevConfig)
    """lb: maglev only: the lookup table's size."""
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    """The backends."""
    max_requests: int = Field(default=1024, ge=1)
    """Most requests in flight to the cluster at once (503 beyond)."""
    health_check: HealthCheckConfig | None = None
    """Active probes of every endpoint, and passive ejection of failing ones."""
    outlier_detection: OutlierDetectionConfig | None = None
    """Passive health: eject endpoints whose requests fail (absent: off)."""
    panic_threshold: float = Field(default=50.0, ge=0, le=100)
    """Below this percent of healthy endpoints, spread requests over all of them (Envoy's
    healthy_panic_threshold; 0: never)."""
    max_retries: int = Field(default=3, ge=0)
    """Retries in flight at once (Envoy's max_retries circuit breaker), unless retry_budget is
    given, which replaces it."""
    retry_budget: RetryBudgetConfig | None = None
    """Retries in flight as a share of requests in flight; replaces max_retries."""
    keepalive: KeepaliveConfig = Field(default_factory=KeepaliveConfig)
    """HTTP/2 keepalive of the cluster's gRPC connections."""
    # Dubbo service group and version (triple and dubbo protocols); a route's
    # dubbo section or the x-dubbo-service-group / -version headers override.
    group: str | None = None
    """Dubbo service group of the providers (triple and dubbo protocols); a route's dubbo
    section or the x-dubbo-service-group header overrides it."""
    version: str | None = None
    """Dubbo service version of the providers."""
    application: str = "meshgate"
    """Dubbo application name the gateway calls as."""
    registry: RegistryConfig | None = None
    """Endpoints from a Dubbo registry instead of ``endpoints`` (with the protocol of each
    provider URL; group and version default to the registry selection's)."""
    tls: ClusterTlsConfig | None = None
    """TLS to the endpoints; absent: plaintext."""


class XdsConfig(Model):
    bootstrap: Path | None = None
    """gRPC xDS bootstrap file (GRPC_XDS_BOOTSTRAP format); default: $GRPC_XDS_BOOTSTRAP."""
    initial_fetch_timeout: Duration = Field(default=10.0, gt=0)
    """How long start-up waits for each xds:/// target's resources before the gateway turns
    ready anyway (Envoy's initial_fetch_timeout)."""


class MeshConfig(Model):
    xds: XdsConfig | None = None
    """The xDS management server (istiod) to learn clusters from."""
    interfaces: dict[str, str] = Field(default_factory=dict)
    """Dubbo interface or gRPC service -> mesh host:port, for xds:///* routes."""
    discover_interfaces: bool = False
    """Learn the interface -> host map from the mesh itself."""


class ReloadConfig(Model):
    """How the config file is reloaded (SIGHUP, and the file watch)."""

    watch: bool = True
    """Reload when the file changes (also when a Kubernetes ConfigMap swaps its ..data
    symlink), not only on SIGHUP."""
    debounce: Duration = Field(default=0.5, ge=0.05, le=60)
    """Changes closer together than this are taken as one, and the file must read the same
    twice this far apart before it is loaded."""
    allow_no_listeners: bool = False
    """A reload to a file without any listener is refused unless that file says so here: a
    truncated file must not take every listener down."""


class OtlpConfig(Model):
    """Where spans are exported: an OpenTelemetry collector's OTLP/gRPC endpoint."""

    endpoint: str = Field(min_length=1)
    """host:port (plaintext), or http://host:port / https://host:port (TLS, with the
    system's CA certificates or OTEL_EXPORTER_OTLP_CERTIFICATE)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Metadata sent with every export (a vendor's API key, say)."""
    timeout: Duration = Field(default=10.0, gt=0)
    """How long one export may take before it is given up."""
    schedule_delay: Duration = Field(default=5.0, gt=0)
    """How long finished spans may wait to be exported in a batch."""
    max_queue_size: int = Field(default=2048, ge=1)
    """Finished spans kept for export per worker; past it new spans are dropped (the
    request path never waits for the collector)."""


class TracingConfig(Model):
    """W3C trace context propagation, and OpenTelemetry spans when ``otlp`` is set."""

    otlp: OtlpConfig | None = None
    """The collector to export spans to (needs the otel extra); absent: propagation only
    (traceparent continued or started and sent upstream, no spans exported)."""
    sampling: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of new traces sampled (0.0 to 1.0); a request's sampled flag in traceparent
    always wins (parent-based sampling)."""
    service_name: str = Field(default="meshgate", min_length=1)
    """The service.name resource attribute of the exported spans."""

    @model_validator(mode="after")
    def _exporter_installed(self) -> TracingConfig:
        if self.otlp is not None:
            from gateway.tracing.available import otlp_unavailable

            why = otlp_unavailable()
            if why is not None:
                raise ValueError(why)
        return self


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
    drain_timeout: Duration = Field(default=20.0, ge=0)
    """On SIGTERM, and for a listener a reload removes: how long requests already accepted
    (streams included) may take to finish."""
    reload: ReloadConfig = Field(default_factory=ReloadConfig)
    """How the config file is reloaded: the file watch, its debounce, empty configs."""
    tracing: TracingConfig | None = None
    """W3C trace context and OpenTelemetry spans; absent: off (traceparent headers pass
    through as any other header)."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """The gateway's own log: level and format (the command line's flags win)."""
    access_log: AccessLogConfig | None = None
    """One line per request (JSON or an Envoy-style format) to stdout or a file; absent: none."""
    request_id: RequestIdConfig = Field(default_factory=RequestIdConfig)
    """Request IDs: kept or made, sent upstream, returned, logged, in error bodies."""
