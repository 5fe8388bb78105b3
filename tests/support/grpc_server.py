"""Running a test backend process: start, say READY, stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

import grpc
import grpc.aio


async def serve_until_signalled(
    server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None = None
) -> None:
    if credentials is None:
        server.add_insecure_port(address)
    else:
        server.add_secure_port(address, credentials)
    await server.start()
    print("READY", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=0.5)
