"""Dubbo's ZooKeeper layout and payloads, read without I/O.

    /{root}/{interface}/providers/{url}          interface-level: one URL per provider
    /{root}/mapping/{interface}                  Dubbo 3: the applications serving it ("a,b")
    /services/{application}/{host:port}          Dubbo 3: an instance (Curator's JSON)
    /{root}/metadata/{application}/{revision}    its MetadataInfo (Java)
    /{root}/{application}/{revision}             the same (dubbo-go 3.3)
    /{root}/metadata/{interface}/{version}/{group}/provider/{application}
                                                 the service definition, with parameter types

The root is the registry group, ``dubbo`` unless the providers set another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.registry.providers import Provider, provider_from_params

SERVICES = "/services"
REVISION_KEY = "dubbo.metadata.revision"
ENDPOINTS_KEY = "dubbo.endpoints"
# Nodes under the root that are not interfaces.
NOT_INTERFACES = frozenset({"mapping", "metadata", "config"})


def providers_path(root: str, interface: str) -> str:
    return f"/{root}/{interface}/providers"


def mapping_path(root: str, interface: str) -> str:
    return f"/{root}/mapping/{interface}"


def instances_path(application: str) -> str:
    return f"{SERVICES}/{application}"


def revision_paths(root: str, application: str, revision: str) -> tuple[str, ...]:
    """Where a revision's metadata may be, Java's place first."""
    return f"/{root}/metadata/{application}/{revision}", f"/{root}/{application}/{revision}"


def definition_path(root: str, provider: Provider) -> str:
    parts = [root, "metadata", provider.interface, provider.version, provider.group]
    parts += ["provider", provider.application]
    return "/" + "/".join(p for p in parts if p)


def parse_mapping(data: bytes) -> tuple[str, ...]:
    return tuple(a.strip() for a in data.decode("utf-8", "replace").split(",") if a.strip())


def parse_instance(data: bytes) -> Instance | None:
    """An instance node's JSON; None when it is not one."""
    try:
        node = json.loads(data)
        metadata = node.get("payload", {}).get("metadata", {}) or {}
        endpoints = {
            str(e["protocol"]): int(e["port"])
            for e in json.loads(metadata.get(ENDPOINTS_KEY) or "[]")
        }
        return Instance(
            application=str(node["name"]),
            host=str(node["address"]),
            port=int(node["port"]),
            revision=str(metadata.get(REVISION_KEY, "")),
            endpoints=endpoints,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class Instance:
    """One application instance: its address, revision and port per protocol."""

    __slots__ = ("application", "endpoints", "host", "port", "revision")

    def __init__(
        self, application: str, host: str, port: int, revision: str, endpoints: Mapping[str, int]
    ) -> None:
        self.application = application
        self.host = host
        self.port = port
        self.revision = revision
        self.endpoints = endpoints


def parse_metadata(data: bytes) -> tuple[dict[str, Any], ...]:
    """A MetadataInfo's services (each with name, group, version, protocol, port, params)."""
    try:
        services = json.loads(data).get("services", {})
    except (ValueError, AttributeError):
        return ()
    return tuple(s for s in services.values() if isinstance(s, dict) and s.get("name"))


def instance_providers(
    instance: Instance, services: Sequence[Mapping[str, Any]]
) -> tuple[Provider, ...]:
    """The providers an instance serves, per its revision's services."""
    found = []
    for service in services:
        protocol = str(service.get("protocol") or "dubbo")
        port = int(service.get("port") or instance.endpoints.get(protocol) or instance.port)
        params = {str(k): str(v) for k, v in (service.get("params") or {}).items()}
        params.setdefault("group", str(service.get("group") or ""))
        params.setdefault("version", str(service.get("version") or ""))
        params.setdefault("application", instance.application)
        found.append(
            provider_from_params(protocol, instance.host, port, str(service["name"]), params)
        )
    return tuple(found)


def parse_definition(data: bytes) -> dict[str, list[list[str]]]:
    """A service definition's signatures by method name: {greet: [[String], [String, int]]}."""
    try:
        methods = json.loads(data).get("methods", [])
    except (ValueError, AttributeError):
        return {}
    signatures: dict[str, list[list[str]]] = {}
    for method in methods:
        if isinstance(method, dict) and isinstance(method.get("name"), str):
            types = [str(t) for t in method.get("parameterTypes") or []]
            signatures.setdefault(method["name"], []).append(types)
    return signatures
