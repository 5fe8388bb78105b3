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
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from filters.http import ClientDisconnected, Handler, HttpRequest, HttpResponse
from gateway.config import ListenerLimitsConfig, MeshConfig
from gateway.config.model import OpenApiConfig
from gateway.config.observability import RequestIdConfig
from gateway.errors import (
    ClientClosedRequest,
    Code,
    GatewayError,
    RequestTimeout,
    bounded,
    error_response,
)
from gateway.exchange import Exchange, Observer
from gateway.grpc_front.passthrough import TRAILERS
from gateway.health_share import HealthShare
from gateway.interrupts import CLIENT_GONE, Reason, interrupt_reason
from gateway.metrics import observe as observe_metrics
from gateway.openapi.serve import serves, with_openapi
from gateway.readiness import Phase, Readiness
from gateway.registry.watchers import Registries
from gateway.request_id import assign_request_id, current_request_id
from gateway.router import Documents, Router, Upstreams
from gateway.snapshot import Snapshot
from gateway.throttled_log import ThrottledLog
from gateway.tracing.tracer import Tracer, build_tracer
from gateway.upstream.clusters import StaticCluster
from gateway.upstream.grpc import Keepalive
from gateway.upstream.health_monitor import HealthMonitor
from gateway.upstream.mesh import MeshClient
from gateway.upstream.metadata import HeaderList
from gateway.upstream.registry_cluster import RegistryCluster
from mesh.cluster_health import ClusterHealth

log = logging.getLogger(f"meshgate.{__name__}")

# How often a request for an unknown service may trigger a reflection fetch.
REFLECTION_INTERVAL = 5.0
DEFAULT_LIMITS = ListenerLimitsConfig()

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
    # Per port: removes the listener's internal headers (absent: none configured).
    strips: Mapping[int, Callable[[HeaderList], HeaderList]]
    limits: Mapping[int, ListenerLimitsConfig]
    # The request ID settings; None when request IDs are off.
    request_ids: RequestIdConfig | None = None


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
        health_share: HealthShare | None = None,
        readiness: Readiness | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.upstreams = upstreams or Upstreams()
        self.admin_port = admin_port
        self._mesh_client = mesh_client
        # Recompiles a snapshot with descriptors fetched anew by reflection (blocking).
        self._refresh = refresh
        self._on_startup = [
            self._start_mesh,
            self._start_registries,
            self._start_health,
            *on_startup,
        ]
        # Dubbo registries feeding registry clusters and exposed routes.
        self.registries = Registries()
        self._health_share = health_share
        self.health_monitor: HealthMonitor | None = None
        self._last_reflection = float("-inf")
        self._background: set[asyncio.Future[None]] = set()
        self._unexpected = ThrottledLog(log)
        # Ports whose servers drain after a reload removed them: how many
        # drains are running on each, and the config they keep serving with.
        self._drains: Counter[int] = Counter()
        self._held: dict[int, Active] = {}
        # Told of every finished request (metrics first; the access log, tracing).
        self.observers: list[Observer] = [observe_metrics, *observers]
        # Requests being served, by listener name (the in-flight gauge).
        self.in_flight: dict[str, int] = {}
        self.readiness = readiness or Readiness()
        self.readiness.targets = self._target_states
        # None while tracing is off: the request path then checks just that.
        self.tracer: Tracer | None = build_tracer(snapshot.config.tracing)
        # The snapshot's own handlers; ``active`` adds those of draining ports.
        self._own = self._build(snapshot)
        self.active = self._own
        self._subscribe(snapshot)
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

        ``keep_ports``: ports the new snapshot no longer has whose servers now
        drain; their connections keep the old handlers until each drain ends
        (:meth:`retire_ports`), across any reloads in between, so a request
        on a connection that is still open is never a 404.
        """
        mesh = self.upstreams.mesh
        if mesh is not None:
            new_targets = set(snapshot.xds_targets) - set(mesh.core.targets)
            if new_targets:
                future = asyncio.ensure_future(mesh.watch(new_targets))
                self._background.add(future)
                future.add_done_callback(self._background.discard)
        self._subscribe(snapshot)
        previous = self.active
        if snapshot.config.tracing != previous.snapshot.config.tracing:
            self._replace_tracer(build_tracer(snapshot.config.tracing))
        for port in keep_ports:
            if port in previous.handlers:
                self._drains[port] += 1
                self._held[port] = previous
        self._own = self._build(snapshot)
        self.active = self._with_held(self._own)

    def _replace_tracer(self, tracer: Tracer | None) -> None:
        old, self.tracer = self.tracer, tracer
        if old is not None:
            # Flushing may wait on the collector: not on the event loop.
            threading.Thread(target=old.close, name="tracer-close", daemon=True).start()

    def retire_ports(self, ports: Iterable[int]) -> None:
        """A drain has ended: forget the handlers of ports no server serves any more."""
        for port in ports:
            if self._drains[port] > 1:
                self._drains[port] -= 1
                continue
            self._drains.pop(port, None)
            self._held.pop(port, None)
        self.active = self._with_held(self._own)

    def _with_held(self, active: Active) -> Active:
        """``active`` plus what the ports still draining serve with (the snapshot's own win)."""
        held = {p: old for p, old in self._held.items() if p not in active.handlers}
        if not held:
            return active
        return replace(
            active,
            handlers={**{p: old.handlers[p] for p, old in held.items()}, **active.handlers},
            listener_names={
                **{p: old.listener_names[p] for p, old in held.items()},
                **active.listener_names,
            },
            strips={
                **{p: old.strips[p] for p, old in held.items() if p in old.strips},
                **active.strips,
            },
            limits={**{p: old.limits[p] for p, old in held.items()}, **active.limits},
        )

    def _subscribe(self, snapshot: Snapshot) -> None:
        """Point the registries at this snapshot's registry clusters and exposures."""
        registries = self.registries
        registries.replace_subscribers()
        for config in snapshot.config.clusters:
            cluster = snapshot.clusters.get(config.name)
            if config.registry is not None and isinstance(cluster, RegistryCluster):
                registries.subscribe(config.registry, cluster.update, config.registry.interface)
        for listener in snapshot.listeners:
            for exposure in listener.exposures:
                registry = exposure.config.registry
                registries.subscribe(registry, exposure.update, registry.interface)

    def _build(self, snapshot: Snapshot) -> Active:
        handlers: dict[int, Handler] = {}
        routers: dict[int, Router] = {}
        openapi = {c.name: c.openapi for c in snapshot.config.listeners if c.openapi is not None}
        for listener in snapshot.listeners:
            refresh = self._refresher(listener.port) if snapshot.reflection_clusters else None
            documents = None
            if listener.name in openapi:
                documents = _openapi_documents(snapshot, listener.name, openapi[listener.name])
            router = Router(
                listener.routes,
                self.upstreams,
                refresh,
                listener.filters,
                listener.exposures,
                documents,
                rpc=listener.protocol == "grpc",
            )
            routers[listener.port] = handlers[listener.port] = router
        names = {listener.port: listener.name for listener in snapshot.listeners}
        strips = {
            listener.port: listener.strip_internal
            for listener in snapshot.listeners
            if listener.strip_internal is not None
        }
        limits = {listener.port: listener.limits for listener in snapshot.listeners}
        ids = snapshot.config.request_id
        return Active(
            snapshot, handlers, routers, names, strips, limits, ids if ids.enabled else None
        )

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

    async def _start_registries(self) -> None:
        await self.registries.start()

    def cluster_healths(self) -> dict[str, ClusterHealth]:
        """Every cluster's health, static and xDS, by a key unique across both."""
        found = {
            f"static/{n}": c.health
            for n, c in self.active.snapshot.clusters.items()
            if isinstance(c, StaticCluster)
        }
        mesh = self.upstreams.mesh
        if mesh is not None:
            found.update({f"xds/{n}": h for n, h in mesh.core.cluster_healths().items()})
        return found

    def _keepalive(self) -> dict[str, Keepalive]:
        """Each endpoint's keepalive: its static cluster's, or its xDS cluster's (CDS)."""
        found: dict[str, Keepalive] = {}
        mesh = self.upstreams.mesh
        if mesh is not None:
            found.update(mesh.core.keepalives())
        for cluster in self.active.snapshot.clusters.values():
            if isinstance(cluster, StaticCluster):
                keepalive = cluster.config.keepalive
                for endpoint in cluster.endpoints:
                    found[endpoint.address] = (keepalive.time, keepalive.timeout)
        return found

    def _start_health(self) -> None:
        monitor = self.health_monitor = HealthMonitor(
            self.cluster_healths,
            share=self._health_share,
            channels=self.upstreams.clients,
            keepalive=self._keepalive,
        )
        self._background.add(asyncio.ensure_future(monitor.run()))

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
        active = self.active
        header_list = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        strip = active.strips.get(port) if port is not None else None
        if strip is not None:
            header_list = strip(header_list)
        method = scope["method"]
        path = scope["path"]
        query_string = scope["query_string"]
        ids = active.request_ids
        request_id = ""
        # The ID joins the headers, so it travels upstream like one (gateway.request_id).
        if ids is not None:
            request_id = assign_request_id(header_list, ids.header, ids.trust_client)
        listener = active.listener_names.get(port or 0, "")
        client = scope.get("client")
        exchange = Exchange(
            listener,
            method,
            path,
            request_id=request_id,
            http_version=scope.get("http_version", ""),
            client=client,
            request_headers=header_list,
            query_string=query_string,
        )
        tracer = self.tracer
        if tracer is not None:
            tracer.begin(
                exchange,
                header_list,
                port,
                client[0] if client else None,
                scope.get("http_version", ""),
            )
        extensions = scope.get("extensions")
        trailers = extensions is not None and TRAILERS in extensions
        request = HttpRequest(
            method=method,
            path=path,
            query_string=query_string,
            header_list=header_list,
            client=scope.get("client"),
            receive=receive,
            raw_path=scope.get("raw_path") or b"",
            exchange=exchange,
        )
        if trailers:
            request.attributes[TRAILERS] = True
        returned = (ids.header, request_id) if ids is not None and ids.response else None
        id_token = current_request_id.set(request_id) if request_id else None
        in_flight = self.in_flight
        in_flight[listener] = in_flight.get(listener, 0) + 1
        try:
            status = await self._respond(handler, request, send, exchange, returned)
        except asyncio.CancelledError:
            # The protocol cancelled the request (gateway.interrupts): the
            # backend call is cancelled with it, and its in-flight slot freed.
            reason = interrupt_reason(scope)
            task = asyncio.current_task()
            if reason is None or task is None or task.uncancel() > 0:
                raise
            status = await self._interrupted(reason, active, port, send, returned)
        finally:
            in_flight[listener] -= 1
            if id_token is not None:
                current_request_id.reset(id_token)
        exchange.status = status
        exchange.bytes_received = request.body_size
        exchange.seconds = time.perf_counter() - exchange.started
        if exchange.attempts:
            exchange.grpc_status = exchange.attempts[-1].grpc_status
        for observer in self.observers:
            try:
                observer(exchange)
            except Exception as exc:
                self._unexpected.report(exc, "observing a request")
        trace = exchange.trace
        if trace is not None:
            try:
                trace.finish(exchange)
            except Exception as exc:
                self._unexpected.report(exc, "tracing a request")

    async def _interrupted(
        self,
        reason: Reason,
        active: Active,
        port: int | None,
        send: Send,
        returned: tuple[str, str] | None,
    ) -> int:
        if reason == CLIENT_GONE:
            # Nobody is left to read an answer: count it, say nothing.
            return ClientClosedRequest.http_status
        limits = active.limits.get(port or 0) or DEFAULT_LIMITS
        error = RequestTimeout(
            f"request body not received within {limits.body_read_timeout:g}s",
            # The rest of the body may still be on its way: not reusable.
            headers=[("connection", "close")],
        )
        await _send(send, error_response(error), returned)
        return error.status

    async def _respond(
        self,
        handler: Handler,
        request: HttpRequest,
        send: Send,
        exchange: Exchange,
        returned: tuple[str, str] | None,
    ) -> int:
        """Run the handler and send its answer (with ``returned``, the request ID
        header, when set); the status sent (499: none)."""
        try:
            response = await handler(request)
        except GatewayError as error:
            response = error_response(error)
        except ClientDisconnected:
            return ClientClosedRequest.http_status
        except Exception as exc:
            # Nothing a request does may take the worker down.
            self._unexpected.report(exc, f"serving {request.method} {bounded(request.path, 200)}")
            response = error_response(
                GatewayError("internal gateway error", grpc_code=Code.INTERNAL)
            )
        exchange.response_headers = response.headers
        exchange.bytes_sent = await _send(send, response, returned)
        return response.status

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
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.health_monitor is not None:
            await self.health_monitor.close()
        await self.upstreams.clients.close()
        tracer, self.tracer = self.tracer, None
        if tracer is not None:
            await asyncio.to_thread(tracer.close)
        await asyncio.to_thread(self.registries.stop)
        mesh, self.upstreams.mesh = self.upstreams.mesh, None
        if mesh is not None:
            await mesh.stop()


async def _send(send: Send, response: HttpResponse, extra: tuple[str, str] | None = None) -> int:
    """Send the response, with the ``extra`` header (replacing any of that name);
    the body bytes sent."""
    if extra is None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    else:
        name, value = extra
        headers = [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers if k != name
        ]
        headers.append((name.encode("latin-1"), value.encode("latin-1")))
    if response.stream is None:
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        return len(response.body)
    start: Message = {"type": "http.response.start", "status": response.status, "headers": headers}
    if response.trailers is not None:
        start["trailers"] = True
    await send(start)
    stream = response.stream
    sent = 0
    try:
        async for chunk in stream:
            sent += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        # Cancelled mid-stream (the client left): end the backend call now,
        # not when the generator is collected.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    if response.trailers is None:
        await send({"type": "http.response.body", "body": b""})
        return sent
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    fields = await response.trailers()
    await send(
        {
            "type": "http.response.trailers",
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in fields],
            "more_trailers": False,
        }
    )
    return sent


def _openapi_documents(snapshot: Snapshot, listener: str, config: OpenApiConfig) -> Documents:
    return (
        partial(serves, config),
        lambda next_handler: with_openapi(next_handler, snapshot, listener, config),
    )
