"""What one worker knows, as the admin shows it: each function is one
worker's view, and :mod:`gateway.admin_merge` turns every worker's view into
the gateway's answer."""

from __future__ import annotations

import os
import platform
import time
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from gateway.cli_routes import route_table
from gateway.config.digest import config_hash
from gateway.logs import current_levels
from gateway.redact import redact
from gateway.upstream.clusters import StaticCluster
from gateway.upstream.registry_cluster import RegistryCluster
from mesh.endpoint import Endpoint

if TYPE_CHECKING:
    from gateway.app import GatewayApp

# When this worker's process started (module import: early in its life).
STARTED = time.time()
# The supervisor's start, which it passes to its workers: the gateway's start.
STARTED_ENV = "MESHGATE_STARTED"


def gateway_started() -> float:
    try:
        return float(os.environ[STARTED_ENV])
    except (KeyError, ValueError):
        return STARTED


@lru_cache(maxsize=1)
def meshgate_version() -> str:
    try:
        return version("meshgate")
    except PackageNotFoundError:
        return "unknown"


def version_view(gateway: GatewayApp) -> dict[str, Any]:
    return {
        "meshgate": meshgate_version(),
        "python": platform.python_version(),
        "config_hash": config_hash(gateway.active.snapshot.config),
        "gateway_started": gateway_started(),
        "started": STARTED,
    }


def logging_view() -> dict[str, Any]:
    return {"levels": current_levels()}


def config_dump_view(gateway: GatewayApp) -> dict[str, Any]:
    snapshot = gateway.active.snapshot
    mesh = gateway.mesh
    return {
        "source": snapshot.loaded.source,
        "config_hash": config_hash(snapshot.config),
        # Filter configs may hold credentials (gateway/redact.py).
        "config": redact(snapshot.config.model_dump(mode="json")),
        "services": list(snapshot.services),
        "xds": mesh.core.config_dump() if mesh else None,
        "interfaces": mesh.interfaces if mesh else {},
        "readiness": gateway.readiness.verdict().detail,
    }


def routes_view(gateway: GatewayApp) -> dict[str, Any]:
    """Each listener's compiled route table, with each route's REST bindings."""
    snapshot = gateway.active.snapshot
    view: dict[str, Any] = {}
    for config, compiled in zip(snapshot.config.listeners, snapshot.listeners, strict=True):
        table = route_table(snapshot, config, compiled)
        view[config.name] = {
            "address": config.address,
            "filters": table["filters"],
            "routes": [
                {
                    "name": entry["route"],
                    "match": entry["match"],
                    "kind": "dubbo" if route.dubbo is not None else "transcode",
                    "cluster": entry["cluster"],
                    "upstream": entry["upstream"],
                    "timeout": entry["timeout"],
                    "bindings": entry["bindings"],
                }
                for entry, route in zip(table["routes"], config.routes, strict=True)
            ],
            "exposed": [e.describe() for e in compiled.exposures],
        }
    return view


def clusters_view(gateway: GatewayApp) -> dict[str, Any]:
    snapshot = gateway.active.snapshot
    mesh = gateway.mesh
    static = {
        name: {
            "protocol": cluster.protocol,
            "lb": cluster.cluster.lb_policy,
            "in_flight": cluster.requests.in_flight,
            "max_requests": cluster.requests.max_requests,
            "panic": cluster.balancer.panic,
            "outlier_detection": cluster.cluster.outlier_detection is not None,
            "health_check": (
                cluster.cluster.health_check.kind if cluster.cluster.health_check else None
            ),
            "endpoints": [_static_endpoint(cluster, e) for e in cluster.endpoints],
        }
        for name, cluster in snapshot.clusters.items()
        if isinstance(cluster, StaticCluster)
    }
    registry = {
        name: _cluster(cluster)
        for name, cluster in snapshot.clusters.items()
        if isinstance(cluster, RegistryCluster)
    }
    for listener in snapshot.listeners:
        for exposure in listener.exposures:
            registry.update({c.name: _cluster(c) for c in exposure.clusters()})
    return {
        "static": static,
        "registry": registry,
        # Connection state per registry: during an outage the clusters
        # above keep the last known providers.
        "registries": gateway.registries.status(),
        "xds": mesh.core.clusters_dump() if mesh else {},
        # Endpoints with an open gRPC channel in this worker.
        "channels": sorted(gateway.upstreams.clients.grpc.addresses),
    }


def _cluster(cluster: StaticCluster | RegistryCluster) -> dict[str, Any]:
    return {
        "protocol": cluster.protocol,
        "lb": cluster.cluster.lb_policy,
        "in_flight": cluster.requests.in_flight,
        "max_requests": cluster.requests.max_requests,
        "endpoints": [
            {
                "address": e.address,
                "weight": e.weight,
                "health": e.health.value,
                "labels": dict(e.labels),
            }
            for e in cluster.endpoints
        ],
    }


def _static_endpoint(cluster: StaticCluster, endpoint: Endpoint) -> dict[str, Any]:
    status = cluster.health.endpoint_status(endpoint.address)
    return {
        "address": endpoint.address,
        "weight": endpoint.weight,
        "health": _health(endpoint.health.value, status),
        "labels": dict(endpoint.labels),
        **status,
    }


def _health(configured: str, status: dict[str, object]) -> str:
    """One word for an endpoint: ejected, unhealthy (active checks), or what it
    was given (healthy after a passed probe, else unknown)."""
    if status.get("ejected"):
        return "ejected"
    active = status.get("active_health")
    if active in ("unhealthy", "healthy"):
        return str(active)
    return configured
