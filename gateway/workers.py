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
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import uvicorn

from gateway.admin import build_admin
from gateway.app import DEFAULT_LIMITS, GatewayApp
from gateway.config import ConfigError, ListenerLimitsConfig, split_address
from gateway.edge_protocol import edge_protocol
from gateway.metrics import MULTIPROC_ENV
from gateway.sources import load_snapshot, refresh_reflection

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


def build_app(config_path: Path) -> GatewayApp:
    """The worker's app on the file's snapshot, with admin, reload on SIGHUP and,
    for reflection sources, the on-demand refresh."""
    snapshot = load_snapshot(config_path)
    app: GatewayApp

    def reload() -> None:
        try:
            app.activate(load_snapshot(config_path, previous=app.active.snapshot))
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
    )
    return app


def run_worker(config_path: Path, reuse_port: bool) -> None:
    """One worker: load, bind, serve until told to stop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = build_app(config_path)
    snapshot = app.active.snapshot
    admin_address = snapshot.config.admin.address
    sockets = [
        bind(listener_address, reuse_port)
        for listener_address in [
            admin_address,
            *(f"{lst.host}:{lst.port}" for lst in snapshot.listeners),
        ]
    ]

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
    server = uvicorn.Server(config)
    # The snapshot (descriptors, plans, route tables) lives as long as the
    # worker: move it out of the collector's way, and collect the young
    # generation less often, since a request allocates many short-lived objects.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    for listener in snapshot.listeners:
        log.info("listener %s on %s:%d", listener.name, listener.host, listener.port)
    log.info("admin on %s (pid %d)", admin_address, os.getpid())
    server.run(sockets=sockets)


def serve(config_path: Path, workers: int) -> int:
    """Serve until stopped; returns the process exit code."""
    try:
        load_snapshot(config_path)
    except ConfigError as exc:
        print(f"{config_path}: invalid config\n{exc}", file=sys.stderr)
        return 1
    if workers <= 1:
        run_worker(config_path, reuse_port=False)
        return 0
    return _supervise(config_path, workers)


def _supervise(config_path: Path, workers: int) -> int:
    # Workers share their counters through this directory (gateway.metrics).
    metrics_dir = tempfile.mkdtemp(prefix="meshgate-metrics-")
    os.environ.setdefault(MULTIPROC_ENV, metrics_dir)
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
    return 0
