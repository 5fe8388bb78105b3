"""The admin endpoint: readiness, the effective config, clusters, metrics."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.metrics import exposition
from gateway.upstream.clusters import StaticCluster
from mesh.endpoint import Endpoint

if TYPE_CHECKING:
    from gateway.app import GatewayApp


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_INDENT_2), status, media_type="application/json"
    )


def build_admin(gateway: GatewayApp) -> Starlette:
    async def ready(request: Request) -> Response:
        if gateway.ready:
            return Response("LIVE\n", 200, media_type="text/plain")
        return Response("NOT READY\n", 503, media_type="text/plain")

    async def config_dump(request: Request) -> Response:
        snapshot = gateway.active.snapshot
        mesh = gateway.mesh
        return _json(
            {
                "source": snapshot.loaded.source,
                "pid": os.getpid(),
                "config": snapshot.config.model_dump(mode="json"),
                "services": list(snapshot.services),
                "xds": mesh.core.config_dump() if mesh else None,
                "interfaces": mesh.interfaces if mesh else {},
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
        }
        return _json(
            {
                "static": static,
                "xds": mesh.core.clusters_dump() if mesh else {},
                # Endpoints with an open gRPC channel in this worker.
                "channels": sorted(gateway.upstreams.clients.grpc.addresses),
            }
        )

    async def metrics(request: Request) -> Response:
        body, content_type = exposition()
        return Response(body, 200, media_type=content_type)

    return Starlette(
        routes=[
            Route("/ready", ready),
            Route("/metrics", metrics),
            Route("/config_dump", config_dump),
            Route("/clusters", clusters),
        ]
    )


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
