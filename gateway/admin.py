"""The admin endpoint: readiness, liveness, the effective config, clusters, routes,
metrics."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.metrics import exposition
from gateway.redact import redact
from gateway.upstream.clusters import StaticCluster
from gateway.upstream.registry_cluster import RegistryCluster
from mesh.endpoint import Endpoint

if TYPE_CHECKING:
    from gateway.app import GatewayApp


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_INDENT_2), status, media_type="application/json"
    )


def build_admin(gateway: GatewayApp) -> Starlette:
    async def ready(request: Request) -> Response:
        verdict = gateway.readiness.verdict()
        status = 200 if verdict.ready else 503
        if "verbose" in request.query_params:
            return _json(
                {"ready": verdict.ready, "reason": verdict.reason, **verdict.detail}, status
            )
        # Envoy's body when ready; otherwise the reason, so a probe's log says why.
        text = "LIVE\n" if verdict.ready else f"NOT READY: {verdict.reason}\n"
        return Response(text, status, media_type="text/plain")

    async def healthz(request: Request) -> Response:
        # Liveness: the worker's event loop answers. Not readiness: a worker
        # still loading or waiting on the mesh is alive and must not be killed.
        return Response("OK\n", 200, media_type="text/plain")

    async def config_dump(request: Request) -> Response:
        snapshot = gateway.active.snapshot
        mesh = gateway.mesh
        return _json(
            {
                "source": snapshot.loaded.source,
                "pid": os.getpid(),
                # Filter configs may hold credentials (gateway/redact.py).
                "config": redact(snapshot.config.model_dump(mode="json")),
                "services": list(snapshot.services),
                "xds": mesh.core.config_dump() if mesh else None,
                "interfaces": mesh.interfaces if mesh else {},
                "readiness": gateway.readiness.verdict().detail,
            }
        )

    async def clusters(request: Request) -> Response:
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
        return _json(
            {
                # Each worker answers for itself: the pid says which one did.
                "pid": os.getpid(),
                "static": static,
                "registry": registry,
                # Connection state per registry: during an outage the clusters
                # above keep the last known providers.
                "registries": gateway.registries.status(),
                "xds": mesh.core.clusters_dump() if mesh else {},
                # Endpoints with an open gRPC channel in this worker.
                "channels": sorted(gateway.upstreams.clients.grpc.addresses),
            }
        )

    async def routes(request: Request) -> Response:
        snapshot = gateway.active.snapshot
        return _json(
            {
                listener.name: {
                    "routes": [
                        {"name": route.name, "cluster": route.cluster.name}
                        for _, route in listener.routes.entries
                    ],
                    "exposed": [e.describe() for e in listener.exposures],
                }
                for listener in snapshot.listeners
            }
        )

    async def metrics(request: Request) -> Response:
        body, content_type = exposition()
        return Response(body, 200, media_type=content_type)

    return Starlette(
        routes=[
            Route("/ready", ready),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Route("/config_dump", config_dump),
            Route("/clusters", clusters),
            Route("/routes", routes),
        ]
    )


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
