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
            for name, cluster in snapshot.clusters.items()
        }
        return _json(
            {
                # Each worker answers for itself: the pid says which one did.
                "pid": os.getpid(),
                "static": static,
                "xds": mesh.core.clusters_dump() if mesh else {},
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
