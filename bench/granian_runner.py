"""One meshgate worker served by granian instead of uvicorn, for the benchmark.

Builds the app as ``gateway.workers.run_worker`` does (same snapshot, admin
app, reflection reloader, SIGHUP reload hook, gc settings) and serves the
listeners with granian's embedded server (ASGI interface with lifespan, so
``app.on_startup`` runs once, on uvloop, one worker). granian's embedded
server binds one address per server: each listener gets its own, and only
the first runs the lifespan. The admin address, off the hot path, is served
by uvicorn on the same event loop.

granian 2.x puts the ports of ``scope["server"]`` and ``scope["client"]`` in
the scope as strings where the ASGI spec has integers; GatewayApp selects the
listener by that port, so a two-line shim turns them back into integers.

    python bench/granian_runner.py -c meshgate.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server.embed import Server as GranianServer

from gateway.app import GatewayApp, Receive, Scope, Send
from gateway.workers import bind, build_app

log = logging.getLogger("meshgate")


class IntPortScope:
    """ASGI-spec ports for GatewayApp: granian hands them over as strings."""

    def __init__(self, app: GatewayApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if server is not None and isinstance(server[1], str):
            scope["server"] = (server[0], int(server[1]))
        await self.app(scope, receive, send)


class AdminServer(uvicorn.Server):
    """uvicorn for the admin socket only; the runner owns the signals, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(config_path: Path) -> None:
    app = build_app(config_path)
    admin_address = app.active.snapshot.config.admin.address
    asgi = IntPortScope(app)
    servers = [
        GranianServer(
            asgi,
            address=listener.host,
            port=listener.port,
            # Lifespan (app.on_startup) once, on the first listener's server.
            interface=Interfaces.ASGI if i == 0 else Interfaces.ASGINL,
            runtime_threads=1,
            http=HTTPModes.http1,
            websockets=False,
            backlog=2048,
            log_level=LogLevels.warning,
            log_access=False,
        )
        for i, listener in enumerate(app.active.snapshot.listeners)
    ]
    admin = AdminServer(
        uvicorn.Config(
            asgi, lifespan="off", access_log=False, log_level="warning", http="httptools"
        )
    )
    admin_socket = bind(admin_address, reuse_port=False)

    def stop() -> None:
        admin.should_exit = True
        for server in servers:
            server.stop()  # type: ignore[no-untyped-call]

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(s.serve()) for s in servers]
    tasks.append(asyncio.ensure_future(admin.serve(sockets=[admin_socket])))
    log.info(
        "granian on %s, admin on %s",
        [f"{s.bind_addr}:{s.bind_port}" for s in servers],
        admin_address,
    )
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-c", "--config", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    uvloop.run(serve(args.config))


if __name__ == "__main__":
    main()
