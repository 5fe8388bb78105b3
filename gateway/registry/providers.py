"""A Dubbo provider as meshgate uses it, from either kind of registration.

Interface-level registration publishes one URL per provider and protocol
(``dubbo://127.0.0.1:20880/org.example.Users?group=g1&version=1.0.0&...``);
application-level registration publishes an instance per process and a
revision of metadata listing its services. Both end up as :class:`Provider`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

# Provider URL protocol -> the cluster protocol meshgate calls it with.
CLUSTER_PROTOCOLS = {"tri": "triple", "dubbo": "dubbo"}
DEFAULT_WEIGHT = 100  # Dubbo's default provider weight


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider of one service over one protocol."""

    protocol: str  # as in the URL: tri, dubbo
    host: str
    port: int
    interface: str
    group: str = ""
    version: str = ""
    application: str = ""
    methods: tuple[str, ...] = ()
    weight: int = DEFAULT_WEIGHT
    timeout_ms: int | None = None
    serialization: str = ""
    # Java parameter types per method, when the provider's metadata has them
    # (a method with overloads is left out: one name, several signatures).
    parameter_types: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def service_key(self) -> tuple[str, str, str]:
        return self.interface, self.group, self.version


def parse_provider_url(url: str) -> Provider | None:
    """A provider URL as a ZooKeeper child name (percent-encoded) or plain; None if not one."""
    text = unquote(url) if "%" in url else url
    parts = urlsplit(text)
    if not parts.scheme or parts.hostname is None or parts.port is None:
        return None
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if params.get("side", "provider") != "provider" or params.get("enabled") == "false":
        return None
    interface = params.get("interface") or parts.path.strip("/")
    if not interface:
        return None
    return provider_from_params(parts.scheme, parts.hostname, parts.port, interface, params)


def provider_from_params(
    protocol: str, host: str, port: int, interface: str, params: Mapping[str, str]
) -> Provider:
    return Provider(
        protocol=protocol,
        host=host,
        port=port,
        interface=interface,
        group=params.get("group", ""),
        version=params.get("version", ""),
        application=params.get("application", ""),
        methods=_methods(params.get("methods", "")),
        weight=_weight(params.get("weight")),
        timeout_ms=_int(params.get("timeout")),
        serialization=params.get("serialization") or params.get("prefer.serialization", ""),
    )


def _methods(value: str) -> tuple[str, ...]:
    """Java's method names; dubbo-go lists each twice (Greet,greet): keep the Java one."""
    names = [m for m in value.split(",") if m]
    lower = {m for m in names if m[:1].islower()}
    return tuple(
        sorted(m for m in names if m[:1].islower() or (m[:1].lower() + m[1:]) not in lower)
    )


def _weight(value: str | None) -> int:
    # dubbo-go publishes weight=0 for "unset"; a zero-weight provider would
    # never be picked, which is not what its owner meant.
    weight = _int(value)
    return DEFAULT_WEIGHT if weight is None or weight <= 0 else weight


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Selection:
    """Which providers a cluster or an exposure takes (unset fields take any)."""

    interface: str | None = None
    group: str | None = None
    version: str | None = None
    application: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def matches(self, provider: Provider) -> bool:
        if self.interface is not None and provider.interface != self.interface:
            return False
        if self.group is not None and provider.group != self.group:
            return False
        if self.version is not None and provider.version != self.version:
            return False
        if self.application is not None and provider.application != self.application:
            return False
        return self.wants_interface(provider.interface)

    def wants_interface(self, interface: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(interface, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(interface, p) for p in self.exclude)


def select(providers: Iterable[Provider], selection: Selection) -> tuple[Provider, ...]:
    return tuple(p for p in providers if selection.matches(p))


def with_types(provider: Provider, signatures: Mapping[str, Sequence[Sequence[str]]]) -> Provider:
    """The provider with the parameter types of its methods that have exactly one signature."""
    types = {name: tuple(sigs[0]) for name, sigs in signatures.items() if len(sigs) == 1}
    if not types:
        return provider
    return Provider(
        provider.protocol,
        provider.host,
        provider.port,
        provider.interface,
        provider.group,
        provider.version,
        provider.application,
        provider.methods or tuple(sorted(signatures)),
        provider.weight,
        provider.timeout_ms,
        provider.serialization,
        types,
    )
