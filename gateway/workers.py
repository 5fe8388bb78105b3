"""Running the gateway: one uvicorn server per worker process.

Each worker binds every listener and the admin address itself with
SO_REUSEPORT, so the kernel spreads connections over the workers and a dead
worker takes none of the others' sockets with it. The parent only
supervises: it restarts a worker that dies and forwards SIGHUP (reload) and
SIGTERM/SIGINT (stop).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

import uvicorn

from gateway.admin import build_admin
from gateway.app import DEFAULT_LIMITS, GatewayApp
from gateway.config import ConfigError, ListenerLimitsConfig, split_address
from gateway.edge_protocol import edge_protocol
from gateway.health_share import SHARED_DIR_ENV, HealthShare
from gateway.metrics import MULTIPROC_ENV
from gateway.snapshot import Snapshot
from gateway.sources import load_snapshot, refresh_reflection
from gateway.tls.server import ListenerTls

log = logging.getLogger(__name__)


def bind(address: str, reuse_port: bool) -> socket.socket:
    host, port = split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def warn_tls_needs_restart(running: Snapshot, fresh: Snapshot) -> None:
    """A listener's TLS settings are applied when its socket is served, at start;
    its certificate files are followed without a restart."""
    before = {lst.name: lst.tls for lst in running.config.listeners}
    for listener in fresh.config.listeners:
        if listener.name in before and before[listener.name] != listener.tls:
            log.warning("listener %s: tls settings changed; restart to apply them", listener.name)


def build_app(config_path: Path) -> GatewayApp:
    """The worker's app on the file's snapshot, with admin, reload on SIGHUP and,
    for reflection sources, the on-demand refresh."""
    snapshot = load_snapshot(config_path)
    app: GatewayApp

    def reload() -> None:
        try:
            fresh = load_snapshot(config_path, previous=app.active.snapshot)
            warn_tls_needs_restart(app.active.snapshot, fresh)
            app.activate(fresh)
            log.info("config reloaded from %s", config_path)
        except ConfigError as exc:
            # Last known good: the old snapshot keeps serving.
            log.error("reload rejected, keeping the running config:\n%s", exc)

    def install_reload() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)

    app = GatewayApp(
        snapshot,
        admin_port=split_address(snapshot.config.admin.address)[1],
        admin=build_admin,
        refresh=refresh_reflection,
        on_startup=[install_reload],
        health_share=HealthShare.from_environment(),
    )
    return app


class ListenerServer(uvicorn.Server):
    """uvicorn's server, with TLS per listener.

    uvicorn applies its one ``config.ssl`` to every socket it is given, which
    would make every listener TLS or none. So it is given the plaintext
    sockets (admin included), and each TLS listener's socket is served here by
    the same protocol class, with that listener's own SSLContext. The servers
    join uvicorn's list, so shutdown closes them and drains their connections.
    """

    def __init__(self, config: uvicorn.Config, tls: list[tuple[socket.socket, ssl.SSLContext]]):
        super().__init__(config)
        self._tls = tls

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        config = self.config
        loop = asyncio.get_running_loop()

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        for sock, context in self._tls:
            server = await loop.create_server(
                create_protocol, sock=sock, ssl=context, backlog=config.backlog
            )
            self.servers.append(server)


def listener_tls(snapshot: Snapshot) -> dict[int, ListenerTls]:
    """The TLS side of each TLS listener, by port; raises on unreadable certificates."""
    out = {}
    for compiled, listener in zip(snapshot.listeners, snapshot.config.listeners, strict=True):
        if listener.tls is not None:
            out[compiled.port] = ListenerTls(listener.name, listener.tls, snapshot.loaded.resolve)
    return out


def run_worker(config_path: Path, reuse_port: bool) -> None:
    """One worker: load, bind, serve until told to stop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = build_app(config_path)
    snapshot = app.active.snapshot
    admin_address = snapshot.config.admin.address
    tls = listener_tls(snapshot)
    sockets = [bind(admin_address, reuse_port)]
    tls_sockets = []
    for lst in snapshot.listeners:
        sock = bind(f"{lst.host}:{lst.port}", reuse_port)
        if lst.port in tls:
            tls_sockets.append((sock, tls[lst.port].context))
        else:
            sockets.append(sock)

    def limits_for(port: int) -> ListenerLimitsConfig:
        return app.active.limits.get(port) or DEFAULT_LIMITS

    config = uvicorn.Config(
        app,
        loop="uvloop",
        # httptools with the listeners' limits (header size and count, URL
        # length, read and idle timeouts, connection cap): docs/limits.md.
        http=edge_protocol(limits_for),
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
        # No X-Forwarded-* rewriting: the gateway is the edge, and the
        # middleware cost every request something (bench/results).
        proxy_headers=False,
        server_header=False,
    )
    server = ListenerServer(config, tls_sockets)
    # The snapshot (descriptors, plans, route tables) lives as long as the
    # worker: move it out of the collector's way, and collect the young
    # generation less often, since a request allocates many short-lived objects.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    for listener in snapshot.listeners:
        scheme = "https" if listener.port in tls else "http"
        log.info("listener %s on %s://%s:%d", listener.name, scheme, listener.host, listener.port)
    log.info("admin on %s (pid %d)", admin_address, os.getpid())
    server.run(sockets=sockets)
    for sock, _ in tls_sockets:
        sock.close()


def serve(config_path: Path, workers: int) -> int:
    """Serve until stopped; returns the process exit code."""
    try:
        listener_tls(load_snapshot(config_path))
    except ConfigError as exc:
        print(f"{config_path}: invalid config\n{exc}", file=sys.stderr)
        return 1
    except (OSError, ssl.SSLError) as exc:
        print(f"{config_path}: a listener's TLS files cannot be loaded: {exc}", file=sys.stderr)
        return 1
    if workers <= 1:
        run_worker(config_path, reuse_port=False)
        return 0
    return _supervise(config_path, workers)


def _supervise(config_path: Path, workers: int) -> int:
    # Workers share their counters through this directory (gateway.metrics).
    metrics_dir = tempfile.mkdtemp(prefix="meshgate-metrics-")
    os.environ.setdefault(MULTIPROC_ENV, metrics_dir)
    # Workers elect one of them to run the active health checks (gateway.health_share).
    shared_dir = tempfile.mkdtemp(prefix="meshgate-shared-")
    os.environ.setdefault(SHARED_DIR_ENV, shared_dir)
    context = multiprocessing.get_context("spawn")
    children: list[multiprocessing.process.BaseProcess] = []
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        child = context.Process(target=run_worker, args=(config_path, True), daemon=False)
        child.start()
        return child

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    def forward_reload(signum: int, frame: object) -> None:
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, forward_reload)
    children.extend(start() for _ in range(workers))
    while not stopping:
        time.sleep(0.2)
        for i, child in enumerate(children):
            if not child.is_alive() and not stopping:
                log.warning("worker %s exited with %s; starting another", child.pid, child.exitcode)
                children[i] = start()
    for child in children:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    shutil.rmtree(shared_dir, ignore_errors=True)
    return 0
