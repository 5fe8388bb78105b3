"""The ASGI application every worker serves on all of its sockets.

One uvicorn server carries every listener and the admin endpoint; requests
are told apart by the local port they arrived on. The current snapshot and
the handlers built from it are swapped as one object, so a request sees
one consistent config from start to end.

Everything the app uses comes through its constructor (the upstream clients,
the admin app, the mesh client factory, the reflection refresh), so the tests
drive the whole request path in process with fakes in their place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from filters.http import ClientDisconnected, Handler, HttpRequest, HttpResponse
from gateway.config import MeshConfig
from gateway.errors import ClientClosedRequest, Code, GatewayError, error_response
from gateway.metrics import observe
from gateway.readiness import Phase, Readiness
from gateway.router import Router, Upstreams
from gateway.snapshot import Snapshot
from gateway.upstream.mesh import MeshClient

log = logging.getLogger(__name__)

# How often a request for an unknown service may trigger a reflection fetch.
REFLECTION_INTERVAL = 5.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Any: Starlette types its own ASGI signature with MutableMapping.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Active:
    snapshot: Snapshot
    handlers: Mapping[int, Handler]
    routers: Mapping[int, Router]
    listener_names: Mapping[int, str]


class GatewayApp:
    def __init__(
        self,
        snapshot: Snapshot,
        *,
        upstreams: Upstreams | None = None,
        admin_port: int | None = None,
        admin: Callable[[GatewayApp], ASGIApp] | None = None,
        mesh_client: Callable[[MeshConfig], MeshClient] = MeshClient,
        refresh: Callable[[Snapshot], Snapshot] | None = None,
        on_startup: Sequence[Callable[[], Any]] = (),
        readiness: Readiness | None = None,
    ) -> None:
        self.upstreams = upstreams or Upstreams()
        self.admin_port = admin_port
        self._mesh_client = mesh_client
        # Recompiles a snapshot with descriptors fetched anew by reflection (blocking).
        self._refresh = refresh
        self._on_startup = [self._start_mesh, *on_startup]
        self._last_reflection = float("-inf")
        self._background: set[asyncio.Future[None]] = set()
        self.readiness = readiness or Readiness()
        self.readiness.targets = self._target_states
        self.active = self._build(snapshot)
        self.admin_app = admin(self) if admin is not None else None

    @property
    def mesh(self) -> MeshClient | None:
        return self.upstreams.mesh

    @property
    def ready(self) -> bool:
        return self.readiness.ready

    def _target_states(self) -> dict[str, str]:
        mesh = self.upstreams.mesh
        if mesh is None:
            return {}
        return {target: state.value for target, state in mesh.target_states().items()}

    def activate(self, snapshot: Snapshot, keep_ports: Iterable[int] = ()) -> None:
        """Swap in a new snapshot; requests already running keep the old one.

        ``keep_ports``: ports the new snapshot no longer has but whose
        listeners are still draining; their connections keep the old handlers
        until :meth:`retire_ports`, so a request on them is never a 404.
        """
        mesh = self.upstreams.mesh
        if mesh is not None:
            new_targets = set(snapshot.xds_targets) - set(mesh.core.targets)
            if new_targets:
                future = asyncio.ensure_future(mesh.watch(new_targets))
                self._background.add(future)
                future.add_done_callback(self._background.discard)
        previous = self.active
        active = self._build(snapshot)
        kept = {p: previous.handlers[p] for p in keep_ports if p in previous.handlers}
        if kept:
            active = replace(
                active,
                handlers={**kept, **active.handlers},
                listener_names={
                    **{p: previous.listener_names[p] for p in kept},
                    **active.listener_names,
                },
            )
        self.active = active

    def retire_ports(self, ports: Iterable[int]) -> None:
        """Forget the handlers of drained listeners that the snapshot no longer has."""
        listening = {listener.port for listener in self.active.snapshot.listeners}
        gone = set(ports) - listening
        if gone & set(self.active.handlers):
            self.active = replace(
                self.active,
                handlers={p: h for p, h in self.active.handlers.items() if p not in gone},
                listener_names={
                    p: n for p, n in self.active.listener_names.items() if p not in gone
                },
            )

    def _build(self, snapshot: Snapshot) -> Active:
        handlers: dict[int, Handler] = {}
        routers: dict[int, Router] = {}
        for listener in snapshot.listeners:
            refresh = self._refresher(listener.port) if snapshot.reflection_clusters else None
            router = routers[listener.port] = Router(listener.routes, self.upstreams, refresh)
            handler: Handler = router
            for wrap in reversed(listener.filters):
                handler = wrap(handler)
            handlers[listener.port] = handler
        names = {listener.port: listener.name for listener in snapshot.listeners}
        return Active(snapshot, handlers, routers, names)

    def _refresher(self, port: int) -> Callable[[], Awaitable[Router | None]]:
        async def refresh() -> Router | None:
            """Fetch descriptors by reflection again (at most every few seconds);
            the listener's router of the resulting snapshot, if there is a newer one."""
            asked = self.active
            now = time.monotonic()
            if self._refresh is not None and now - self._last_reflection >= REFLECTION_INTERVAL:
                self._last_reflection = now
                try:
                    fresh = await asyncio.to_thread(self._refresh, asked.snapshot)
                except Exception as exc:
                    log.warning("reflection refresh failed: %s", exc)
                else:
                    self.activate(fresh)
            current = self.active
            return current.routers.get(port) if current is not asked else None

        return refresh

    async def _start_mesh(self) -> None:
        config = self.active.snapshot.config.mesh
        if config.xds is None:
            return
        client = self._mesh_client(config)
        self.upstreams.mesh = client
        await client.start(set(self.active.snapshot.xds_targets))

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
                await _send(
                    send,
                    error_response(
                        GatewayError(
                            "no listener on this port", grpc_code=Code.NOT_FOUND, http_status=404
                        )
                    ),
                )
                return
            await self._serve(handler, port, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _serve(
        self, handler: Handler, port: int | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request = HttpRequest(
            method=scope["method"],
            path=scope["path"],
            query_string=scope["query_string"],
            header_list=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            client=scope.get("client"),
            receive=receive,
            raw_path=scope.get("raw_path") or b"",
        )
        started = time.perf_counter()
        try:
            response = await handler(request)
        except GatewayError as error:
            response = error_response(error)
        except ClientDisconnected:
            # Nobody is left to read an answer: count it, say nothing.
            response = error_response(ClientClosedRequest("client closed the request"))
        except Exception:
            # Nothing a request does may take the worker down.
            log.exception("unhandled error serving %s %s", request.method, request.path)
            response = error_response(
                GatewayError("internal gateway error", grpc_code=Code.INTERNAL)
            )
        observe(
            self.active.listener_names.get(port or 0, ""),
            response.status,
            time.perf_counter() - started,
        )
        await _send(send, response)

    async def startup(self) -> None:
        """Run the start-up hooks (the mesh's initial fetch among them)."""
        self.readiness.set_phase(Phase.RESOLVING)
        for hook in self._on_startup:
            result = hook()
            if hasattr(result, "__await__"):
                await result

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self.readiness.set_phase(Phase.SERVING)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.readiness.set_phase(Phase.DRAINING)
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Close every upstream client and stop the mesh core."""
        await self.upstreams.clients.close()
        mesh, self.upstreams.mesh = self.upstreams.mesh, None
        if mesh is not None:
            await mesh.stop()


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
