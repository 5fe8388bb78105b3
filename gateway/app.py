"""The ASGI application every worker serves on all of its sockets.

One uvicorn server carries every listener and the admin endpoint; requests
are told apart by the local port they arrived on. The current snapshot and
the handlers built from it are swapped as one object, so a request sees
one consistent config from start to end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from filters.http import Handler, HttpRequest, HttpResponse
from gateway.errors import GatewayError, UnknownService
from gateway.mesh_link import MeshLink, xds_targets
from gateway.metrics import observe
from gateway.router import Router, error_response
from gateway.snapshot import Snapshot
from gateway.upstream.pool import Upstreams

log = logging.getLogger("meshgate")

# How often a request for an unknown service may trigger a reflection fetch.
REFLECTION_INTERVAL = 5.0

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]


@dataclass(frozen=True, slots=True)
class Active:
    snapshot: Snapshot
    handlers: Mapping[int, Handler]
    listener_names: Mapping[int, str]


def build_handlers(snapshot: Snapshot, upstreams: Upstreams) -> dict[int, Handler]:
    handlers: dict[int, Handler] = {}
    for listener in snapshot.listeners:
        handler: Handler = Router(snapshot, listener, upstreams)
        for wrap in reversed(listener.filters):
            handler = wrap(handler)
        handlers[listener.port] = handler
    return handlers


class GatewayApp:
    def __init__(self, snapshot: Snapshot, admin_port: int | None = None) -> None:
        self.upstreams = Upstreams()
        self.active = Active(snapshot, build_handlers(snapshot, self.upstreams),
                             {lst.port: lst.name for lst in snapshot.listeners})
        self.ready = False
        self.admin_port = admin_port
        self.admin_app: Any = None
        self.on_startup: list[Callable[[], Any]] = []
        # Recompiles a snapshot with descriptors fetched anew by reflection.
        self.reloader: Callable[[Snapshot], Snapshot] | None = None
        self._last_reflection = float("-inf")
        self._background: set[asyncio.Future[None]] = set()
        self.on_startup.append(self.start_mesh)

    def activate(self, snapshot: Snapshot) -> None:
        """Swap in a new snapshot; requests already running keep the old one."""
        mesh = self.upstreams.mesh
        if mesh is not None:
            new_targets = xds_targets(snapshot) - set(mesh.core.targets)
            if new_targets:
                self._background.add(asyncio.ensure_future(mesh.watch(new_targets)))
        self.active = Active(snapshot, build_handlers(snapshot, self.upstreams),
                             {lst.port: lst.name for lst in snapshot.listeners})

    async def start_mesh(self) -> None:
        config = self.active.snapshot.config.mesh
        if config.xds is None:
            return
        link = MeshLink(config)
        self.upstreams.mesh = link
        await link.start(xds_targets(self.active.snapshot))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            server = scope.get("server")
            port = server[1] if server else None
            handler = self.active.handlers.get(port) if port is not None else None
            if handler is None:
                if self.admin_app is not None and (port == self.admin_port or port is None):
                    await self.admin_app(scope, receive, send)
                    return
                await _send(send, error_response(GatewayError("no listener on this port",
                                                              grpc_code=5, http_status=404)))
                return
            await self._serve(handler, port, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _refreshed_handler(self, handler: Handler, port: int | None) -> Handler:
        """Fetch descriptors by reflection again (at most every few seconds) and
        return the listener's handler of the resulting snapshot."""
        now = time.monotonic()
        if self.reloader is not None and now - self._last_reflection >= REFLECTION_INTERVAL:
            self._last_reflection = now
            snapshot = self.active.snapshot
            try:
                fresh = await asyncio.to_thread(self.reloader, snapshot)
            except Exception as exc:
                log.warning("reflection refresh failed: %s", exc)
            else:
                self.activate(fresh)
        return self.active.handlers.get(port, handler) if port is not None else handler

    async def _serve(self, handler: Handler, port: int | None, scope: Scope, receive: Receive,
                     send: Send) -> None:
        request = HttpRequest(
            method=scope["method"],
            path=scope["path"],
            query_string=scope["query_string"],
            header_list=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            client=scope.get("client"),
            receive=receive,
        )
        request.attributes["raw_path"] = scope.get("raw_path")
        started = time.perf_counter()
        try:
            try:
                response = await handler(request)
            except UnknownService:
                handler = await self._refreshed_handler(handler, port)
                response = await handler(request)
        except GatewayError as error:
            response = error_response(error)
        except Exception:
            # Nothing a request does may take the worker down.
            log.exception("unhandled error serving %s %s", request.method, request.path)
            response = error_response(GatewayError("internal gateway error", grpc_code=13))
        observe(self.active.listener_names.get(port or 0, ""), response.status,
                time.perf_counter() - started)
        await _send(send, response)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        result = hook()
                        if hasattr(result, "__await__"):
                            await result
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                await self.upstreams.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _send(send: Send, response: HttpResponse) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    if response.stream is None:
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        return
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    async for chunk in response.stream:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
