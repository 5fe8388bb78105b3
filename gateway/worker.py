"""One worker process from start to exit: bind, resolve, serve, reload, drain.

Start-up, in order: signal handlers (SIGHUP during start-up is remembered and
applied once ready, never fatal), the config, every socket bound (admin and
listeners; a port that cannot be bound stops the start with the reason),
the admin served at once (``/ready`` says why it is not ready yet), the
initial configuration resolved (each ``xds:///`` target, bounded by
``initial_fetch_timeout``), then the listeners served and the worker ready.

A reload (SIGHUP or the file watch) compiles the new file, refuses it if it
is invalid, has no listeners without saying so, or needs a port that cannot
be bound; otherwise it binds the new listeners' sockets, swaps the snapshot,
starts serving the new sockets and drains the removed ones. The running
config is untouched by a refused reload.

SIGTERM or SIGINT drains: ``/ready`` turns 503, every listener stops
accepting, requests already accepted (streams included) have up to
``drain_timeout`` to finish, then upstream channels close and the worker exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
from collections.abc import Coroutine
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn

from gateway.access_log.observer import (
    AccessLogs,
    Settings,
    access_log_settings,
    open_access_logs,
)
from gateway.admin import build_admin
from gateway.admin_peers import serve_views
from gateway.app import DEFAULT_LIMITS, GatewayApp
from gateway.config import ConfigError, ListenerLimitsConfig, split_address
from gateway.config_watch import content_digest, watch_config
from gateway.health_share import HealthShare
from gateway.http2.select import serving_protocol
from gateway.listeners import BindError, ListenerSet
from gateway.logs import LogSettings, configure
from gateway.metrics import count_reload
from gateway.metrics_state import StateCollector, install, publish_forever
from gateway.readiness import Phase, Readiness
from gateway.snapshot import Snapshot
from gateway.sources import load_snapshot, refresh_reflection
from gateway.tls.server import ListenerTls

log = logging.getLogger(f"meshgate.{__name__}")

# The admin server outlives the listeners on drain; then it gets this long.
ADMIN_STOP_TIMEOUT = 1.0


def wanted_addresses(snapshot: Snapshot) -> dict[str, str]:
    """Every address the snapshot serves, with what serves it (for logs)."""
    addresses = {snapshot.config.admin.address: "admin"}
    for listener in snapshot.listeners:
        addresses[f"{listener.host}:{listener.port}"] = f"listener {listener.name}"
    return addresses


def listener_tls(snapshot: Snapshot) -> dict[int, ListenerTls]:
    """The TLS side of each TLS listener, by port; raises on unreadable certificates."""
    out = {}
    for compiled, listener in zip(snapshot.listeners, snapshot.config.listeners, strict=True):
        if listener.tls is not None:
            out[compiled.port] = ListenerTls(listener.name, listener.tls, snapshot.loaded.resolve)
    return out


def uvicorn_config(app: GatewayApp) -> uvicorn.Config:
    def limits_for(port: int) -> ListenerLimitsConfig:
        return app.active.limits.get(port) or DEFAULT_LIMITS

    return uvicorn.Config(
        app,
        # HTTP/2 (ALPN h2, or the h2c preface) or httptools for HTTP/1.1,
        # both with the listeners' limits (header size and count, URL length,
        # read and idle timeouts, connection cap): docs/limits.md.
        http=serving_protocol(limits_for),
        # The worker runs the app's start-up itself, before any listener serves.
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=int(app.active.snapshot.config.drain_timeout + 0.999),
        # No X-Forwarded-* rewriting: the gateway is the edge, and the
        # middleware cost every request something (bench/results).
        proxy_headers=False,
        server_header=False,
    )


class Worker:
    def __init__(
        self,
        config_path: Path,
        reuse_port: bool,
        readiness: Readiness,
        log_overrides: LogSettings | None = None,
    ) -> None:
        self.config_path = config_path
        # The command line's --log-level/--log-format, which win over the file's.
        self.log_overrides = log_overrides or LogSettings("", "")
        self._log_settings: LogSettings | None = None
        self.access_log: AccessLogs | None = None
        self.readiness = readiness
        self.reuse_port = reuse_port
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._reload_pending: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.app: GatewayApp | None = None
        self.listeners: ListenerSet | None = None
        # What the file held when last loaded: the watch reports changes from it.
        self._loaded_digest: str | None = None
        # The file watch, and the (watch, debounce) it runs with: a reload that
        # changes them restarts it.
        self._watching: asyncio.Task[None] | None = None
        self._watch_settings: tuple[bool, float] | None = None
        self.metrics: StateCollector | None = None

    # -- signals -------------------------------------------------------------

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.request_reload, "SIGHUP")
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self.reopen_logs)

    def reopen_logs(self) -> None:
        """SIGUSR1 (after logrotate moved the files): reopen the access log."""
        if self.access_log is not None:
            self.access_log.reopen()

    def request_reload(self, why: str) -> None:
        """Reload now if serving; during start-up, once ready."""
        if self.readiness.phase is Phase.SERVING:
            self._spawn(self.reload(why))
        elif self.readiness.phase is not Phase.DRAINING:
            log.info("%s during start-up: reloading once ready", why)
            self._reload_pending = why

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- life ------------------------------------------------------------------

    async def run(self) -> int:
        self.install_signals()
        self._loaded_digest = content_digest(self.config_path)
        try:
            snapshot = load_snapshot(self.config_path)
        except ConfigError as exc:
            log.error("%s: invalid config\n%s", self.config_path, exc)
            return 1
        self._apply_log_settings(snapshot)
        try:
            self.access_log = open_access_logs(_access_log_settings(snapshot))
        except OSError as exc:
            log.error("cannot open the access log: %s", exc)
            return 1
        app = self.app = GatewayApp(
            snapshot,
            admin_port=split_address(snapshot.config.admin.address)[1],
            admin=build_admin,
            refresh=refresh_reflection,
            readiness=self.readiness,
            health_share=HealthShare.from_environment(),
            observers=[self.access_log] if self.access_log is not None else (),
        )
        self.metrics = install(app, self.readiness.index)
        self._spawn(publish_forever(self.metrics))
        listeners = self.listeners = ListenerSet(lambda: uvicorn_config(app), self.reuse_port)
        addresses = wanted_addresses(snapshot)
        try:
            sockets = listeners.bind_all(addresses)
        except BindError as exc:
            log.error("cannot start: %s", exc)
            return 1
        admin_address = snapshot.config.admin.address
        await listeners.start(admin_address, sockets.pop(admin_address))
        log.info("admin on %s (pid %d)", admin_address, os.getpid())
        # Its views for the other workers' admin answers (gateway.admin_peers).
        views = await serve_views(app)
        if not await self._start_up(app):
            await listeners.stop_all(0)
            await app.aclose()
            return 0
        tls = listener_tls(snapshot)
        for address, sock in sockets.items():
            await listeners.start(address, sock, _tls_context(tls, address))
            log.info("%s on %s", addresses[address], address)
        self.readiness.listeners = tuple(sorted(addresses))
        self.readiness.set_phase(Phase.SERVING)
        _settle_garbage_collector()
        if self._reload_pending is not None:
            self._spawn(self.reload(self._reload_pending))
            self._reload_pending = None
        self._follow_reload_settings()
        await self._stop.wait()
        await self.drain()
        if views is not None:
            await views.close()
        return 0

    async def _start_up(self, app: GatewayApp) -> bool:
        """The app's start-up (the initial xDS fetch); False if stopped meanwhile."""
        startup = asyncio.ensure_future(app.startup())
        stopped = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({startup, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not startup.done():
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await startup
            return False
        stopped.cancel()
        startup.result()  # a failed start-up stops the worker with its error
        return True

    async def drain(self) -> None:
        assert self.app is not None and self.listeners is not None
        app, listeners = self.app, self.listeners
        self.readiness.set_phase(Phase.DRAINING)
        timeout = app.active.snapshot.config.drain_timeout
        admin = app.active.snapshot.config.admin.address
        log.info("draining: up to %gs for requests in flight", timeout)
        for task in list(self._tasks):
            task.cancel()
        # The admin keeps answering (503 on /ready) while the listeners drain.
        await listeners.stop_all(timeout, keep=[admin])
        await app.aclose()
        await listeners.stop_all(ADMIN_STOP_TIMEOUT)
        if self.access_log is not None:
            await asyncio.to_thread(self.access_log.close)
        log.info("drained; exiting")

    # -- reloads ---------------------------------------------------------------

    def _follow_reload_settings(self) -> None:
        """Start, stop or restart the file watch as the running config's reload says."""
        assert self.app is not None
        reload = self.app.active.snapshot.config.reload
        settings = (reload.watch, reload.debounce)
        if settings == self._watch_settings:
            return
        self._watch_settings = settings
        if self._watching is not None:
            # watchfiles sets the stop event it was given when cancelled: the
            # watch has one of its own, never the worker's.
            self._watching.cancel()
            self._watching = None
        if reload.watch:
            self._watching = asyncio.ensure_future(self._watch(reload.debounce))
            self._tasks.add(self._watching)
            self._watching.add_done_callback(self._tasks.discard)

    async def _watch(self, debounce: float) -> None:
        await watch_config(
            self.config_path,
            debounce,
            lambda: self.reload("file changed"),
            asyncio.Event(),
            loaded_digest=self._loaded_digest,
        )

    async def reload(self, why: str) -> None:
        async with self._reload_lock:
            if self.readiness.phase is not Phase.SERVING:
                return
            outcome = await self._reload()
            accepted = outcome.startswith("ok")
            count_reload(accepted)
            self.readiness.last_reload = f"{why}: {outcome}"
            self.readiness.reloads += 1
            self.readiness.publish()
        if accepted:
            # Not from inside this call: it may be running in the watch task
            # that is about to be replaced.
            asyncio.get_running_loop().call_soon(self._follow_reload_settings)

    async def _reload(self) -> str:
        assert self.app is not None and self.listeners is not None
        app, listeners = self.app, self.listeners
        digest = content_digest(self.config_path)
        try:
            snapshot = load_snapshot(self.config_path, previous=app.active.snapshot)
        except ConfigError as exc:
            return _refused(f"invalid config\n{exc}")
        config = snapshot.config
        if not snapshot.listeners and not config.reload.allow_no_listeners:
            return _refused(
                "the new config has no listeners (a truncated file?); "
                "set reload.allow_no_listeners: true in it to mean that"
            )
        wanted = wanted_addresses(snapshot)
        added = [a for a in wanted if a not in listeners.addresses]
        removed = [a for a in listeners.addresses if a not in wanted]
        try:
            sockets = listeners.bind_all(added)
        except BindError as exc:
            return _refused(str(exc))
        try:
            tls = listener_tls(snapshot)
        except (OSError, ssl.SSLError) as exc:
            for sock in sockets.values():
                sock.close()
            return _refused(f"a listener's TLS files cannot be loaded: {exc}")
        try:
            access_log = self._next_access_log(snapshot)
        except OSError as exc:
            for sock in sockets.values():
                sock.close()
            return _refused(f"the access log cannot be opened: {exc}")
        removed_ports = [split_address(a)[1] for a in removed]
        app.activate(snapshot, keep_ports=removed_ports)
        self._swap_access_log(app, access_log)
        self._apply_log_settings(snapshot)
        app.admin_port = split_address(config.admin.address)[1]
        for address, sock in sockets.items():
            await listeners.start(address, sock, _tls_context(tls, address))
        for address, port in zip(removed, removed_ports, strict=True):
            listeners.stop_later(address, config.drain_timeout, partial(app.retire_ports, [port]))
        self.readiness.listeners = tuple(sorted(wanted))
        self._loaded_digest = digest
        summary = f"added {sorted(added)}, removed {sorted(removed)}" if added or removed else ""
        log.info("config reloaded from %s %s", self.config_path, summary)
        return f"ok {summary}".strip()

    # -- logs ------------------------------------------------------------------

    def _apply_log_settings(self, snapshot: Snapshot) -> None:
        file = snapshot.config.logging
        settings = self.log_overrides.over(LogSettings(file.level, file.format))
        if settings != self._log_settings:
            configure(settings)
            self._log_settings = settings

    def _next_access_log(self, snapshot: Snapshot) -> AccessLogs | None:
        """The access log for a reloaded config: the running one when unchanged."""
        current = self.access_log
        settings = _access_log_settings(snapshot)
        if current is not None and current.settings == settings:
            return current
        return open_access_logs(settings)

    def _swap_access_log(self, app: GatewayApp, access_log: AccessLogs | None) -> None:
        old = self.access_log
        if access_log is old:
            return
        observers = [o for o in app.observers if o is not old]
        if access_log is not None:
            observers.append(access_log)
        app.observers[:] = observers
        self.access_log = access_log
        if old is not None:
            # Flushing may wait on the disk: not on the event loop.
            self._spawn(asyncio.to_thread(old.close))


def _access_log_settings(snapshot: Snapshot) -> Settings | None:
    config = snapshot.config
    return access_log_settings(
        config.access_log, {listener.name: listener.access_log for listener in config.listeners}
    )


def _tls_context(tls: dict[int, ListenerTls], address: str) -> ssl.SSLContext | None:
    served = tls.get(split_address(address)[1])
    return served.context if served is not None else None


def _refused(reason: str) -> str:
    log.error("reload rejected, the running config keeps serving: %s", reason)
    return f"refused: {reason}"


def _settle_garbage_collector() -> None:
    # The snapshot (descriptors, plans, route tables) lives as long as the
    # worker: move it out of the collector's way, and collect the young
    # generation less often, since a request allocates many short-lived objects.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
