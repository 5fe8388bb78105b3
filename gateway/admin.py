"""The admin endpoint: readiness, liveness, version, the effective config,
clusters, routes, log levels, metrics, and a status page.

Every answer is the gateway's, not the answering worker's: the worker the
kernel handed the connection to asks the others (:mod:`gateway.admin_peers`)
and merges their views (:mod:`gateway.admin_merge`). ``/ready`` reads the
workers' shared readiness files (:mod:`gateway.readiness`) and ``/metrics``
the shared multiprocess counters (:mod:`gateway.metrics`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin_merge import (
    WorkerView,
    merge_clusters,
    merge_config_dump,
    merge_logging,
    merge_routes,
    merge_version,
    workers_summary,
)
from gateway.admin_page import page_routes
from gateway.admin_peers import ask_workers
from gateway.errors import Code
from gateway.logs import parse_level
from gateway.metrics import exposition

if TYPE_CHECKING:
    from gateway.app import GatewayApp

log = logging.getLogger(f"meshgate.{__name__}")

Merge = Callable[[Sequence[WorkerView]], dict[str, Any]]


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_INDENT_2), status, media_type="application/json"
    )


def _error(status: int, code: Code, message: str) -> Response:
    return _json({"code": code.value, "message": message, "details": []}, status)


def build_admin(gateway: GatewayApp) -> Starlette:
    def merged(op: str, merge: Merge) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            views = await ask_workers(gateway, op)
            log.debug("admin %s answered by worker pid %d", request.url.path, os.getpid())
            return _json(merge(views))

        return endpoint

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
        # Liveness: every running worker's event loop answers. Not readiness: a
        # worker still loading or waiting on the mesh is alive and must not be
        # killed, and one being replaced is the supervisor's business.
        views = await ask_workers(gateway, "ping")
        hung = [v for v in views if v.unresponsive]
        if "verbose" in request.query_params:
            return _json(
                {"live": not hung, "workers": workers_summary(views)}, 503 if hung else 200
            )
        if hung:
            reasons = "; ".join(f"worker {v.index + 1} of {len(views)}: {v.error}" for v in hung)
            return Response(f"NOT LIVE: {reasons}\n", 503, media_type="text/plain")
        return Response("OK\n", 200, media_type="text/plain")

    async def logging_levels(request: Request) -> Response:
        level = request.query_params.get("level")
        if level is None:
            if request.method == "POST":
                return _error(400, Code.INVALID_ARGUMENT, "POST /logging needs ?level=")
            return _json(merge_logging(await ask_workers(gateway, "logging")))
        try:
            level = parse_level(level)
        except ValueError as exc:
            return _error(400, Code.INVALID_ARGUMENT, str(exc))
        log.warning("log level set to %s through the admin", level)
        return _json(merge_logging(await ask_workers(gateway, "set_level", level)))

    async def metrics(request: Request) -> Response:
        body, content_type = exposition()
        return Response(body, 200, media_type=content_type)

    return Starlette(
        routes=[
            Route("/ready", ready),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Route("/version", merged("version", merge_version)),
            Route("/config_dump", merged("config_dump", merge_config_dump)),
            Route("/clusters", merged("clusters", merge_clusters)),
            Route("/routes", merged("routes", merge_routes)),
            Route("/logging", logging_levels, methods=["GET", "POST"]),
            *page_routes(),
        ]
    )
