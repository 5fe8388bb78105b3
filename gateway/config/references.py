"""Checks that span sections of the config: names that must exist or be unique."""

from __future__ import annotations

from collections import Counter

from gateway.config.cluster_name import XDS_SCHEME, StaticName, parse_cluster_name
from gateway.config.issues import ConfigIssue
from gateway.config.model import GatewayConfig, split_address


def check_references(config: GatewayConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    clusters = {c.name for c in config.clusters}
    for name, count in Counter(c.name for c in config.clusters).items():
        if count > 1:
            issues.append(
                ConfigIssue(("clusters",), f"cluster name {name!r} is used {count} times")
            )
    for i, cluster in enumerate(config.clusters):
        if cluster.name.startswith(XDS_SCHEME):
            issues.append(
                ConfigIssue(
                    ("clusters", i, "name"), "xds:/// names are resolved by the mesh, not declared"
                )
            )
        if cluster.registry is not None:
            if cluster.endpoints:
                issues.append(
                    ConfigIssue(
                        ("clusters", i, "endpoints"), "a registry cluster takes no endpoints"
                    )
                )
            if cluster.registry.interface is None:
                issues.append(
                    ConfigIssue(
                        ("clusters", i, "registry", "interface"),
                        "a registry cluster needs the interface its providers serve",
                    )
                )
        elif not cluster.endpoints:
            issues.append(
                ConfigIssue(("clusters", i, "endpoints"), "a static cluster needs endpoints")
            )

    ports: dict[int, str] = {}
    admin_port = split_address(config.admin.address)[1]
    for i, listener in enumerate(config.listeners):
        port = split_address(listener.address)[1]
        if port != 0 and (port in ports or port == admin_port):
            other = ports.get(port, "admin")
            issues.append(
                ConfigIssue(
                    ("listeners", i, "address"), f"port {port} is already used by {other!r}"
                )
            )
        ports[port] = listener.name
        for j, route in enumerate(listener.routes):
            where = ("listeners", i, "routes", j, "cluster")
            try:
                parsed = parse_cluster_name(route.cluster)
            except ValueError as exc:
                issues.append(ConfigIssue(where, str(exc)))
                continue
            if isinstance(parsed, StaticName) and parsed.name not in clusters:
                issues.append(ConfigIssue(where, f"unknown cluster {route.cluster!r}"))

    for i, source in enumerate(config.descriptors):
        if source.reflection is not None and source.reflection.cluster not in clusters:
            issues.append(
                ConfigIssue(
                    ("descriptors", i, "reflection", "cluster"),
                    f"unknown cluster {source.reflection.cluster!r}",
                )
            )
    return issues
