"""Workers answer the admin for the whole gateway by asking each other.

With ``--workers N`` the kernel hands an admin connection to any worker, and
each worker knows only its own state (its in-flight requests, its outlier
detector's ejections, its ADS stream). So every worker also serves its own
views on a Unix socket in the state directory the supervisor shares with
them (``admin-<i>.sock``; the directory is private to the gateway's user).
The worker that got the admin call asks every other worker over its socket,
all at once with a bounded wait, and merges the views in worker order
(:mod:`gateway.admin_merge`), so the answer is the same whichever worker gives
it, and as fresh as the call: nothing is published periodically, and a
worker pays nothing for this until someone asks.

The exchange on a socket is one JSON line asking (``{"op": "clusters"}``)
and one JSON document answering, up to the end of the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from gateway.admin_merge import WorkerView
from gateway.admin_views import (
    clusters_view,
    config_dump_view,
    logging_view,
    routes_view,
    version_view,
)
from gateway.logs import parse_level, set_level

if TYPE_CHECKING:
    from gateway.app import GatewayApp

log = logging.getLogger(f"meshgate.{__name__}")

# How long a worker waits for another's view; beyond it, that one is "not answering".
ASK_TIMEOUT = 2.0
# The level last set through /logging, applied by a worker that starts later.
LEVEL_FILE = "log-level"

_VIEWS: dict[str, Callable[[GatewayApp], dict[str, Any]]] = {
    "clusters": clusters_view,
    "config_dump": config_dump_view,
    "routes": routes_view,
    "version": version_view,
    "logging": lambda gateway: logging_view(),
    "ping": lambda gateway: {},
}


def socket_path(state_dir: Path, index: int) -> Path:
    return state_dir / f"admin-{index}.sock"


def local_view(gateway: GatewayApp, op: str, level: str | None = None) -> dict[str, Any]:
    """This worker's view; ``set_level`` changes its log level first."""
    if op == "set_level":
        set_level(parse_level(level or ""))
        return logging_view()
    return _VIEWS[op](gateway)


async def ask_workers(gateway: GatewayApp, op: str, level: str | None = None) -> list[WorkerView]:
    """Every worker's view, in worker order (one worker: this one's)."""
    readiness = gateway.readiness
    state_dir = readiness.state_dir
    own = WorkerView(readiness.index, os.getpid(), local_view(gateway, op, level))
    if state_dir is None:
        return [own]
    if op == "set_level" and level is not None:
        _save_level(state_dir, level)
    others = [
        _ask(socket_path(state_dir, index), index, op, level)
        for index in range(readiness.count)
        if index != readiness.index
    ]
    views = [own, *await asyncio.gather(*others)]
    return sorted(views, key=lambda v: v.index)


async def _ask(path: Path, index: int, op: str, level: str | None) -> WorkerView:
    try:
        async with asyncio.timeout(ASK_TIMEOUT):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                writer.write(orjson.dumps({"op": op, "level": level}) + b"\n")
                await writer.drain()
                answer = orjson.loads(await reader.read())
            finally:
                writer.close()
    except (FileNotFoundError, ConnectionRefusedError):
        return WorkerView(index, None, None, "not running (starting or being replaced)")
    except TimeoutError:
        return WorkerView(
            index, None, None, f"did not answer within {ASK_TIMEOUT:g}s", unresponsive=True
        )
    except (OSError, ValueError) as exc:
        return WorkerView(index, None, None, f"no answer: {exc}")
    if "error" in answer:
        return WorkerView(index, answer.get("pid"), None, answer["error"])
    return WorkerView(index, answer["pid"], answer["view"])


def _save_level(state_dir: Path, level: str) -> None:
    path = state_dir / LEVEL_FILE
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(parse_level(level))
    temporary.replace(path)


class ViewServer:
    """This worker's side: its views, on its socket in the state directory."""

    def __init__(self, gateway: GatewayApp, path: Path) -> None:
        self._gateway = gateway
        self.path = path
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)  # left by the worker this one replaces
        self._server = await asyncio.start_unix_server(self._answer, path=str(self.path))

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = orjson.loads(await asyncio.wait_for(reader.readline(), ASK_TIMEOUT))
            op = request["op"]
            answer: dict[str, Any] = {
                "pid": os.getpid(),
                "view": local_view(self._gateway, op, request.get("level")),
            }
            log.debug("worker pid %d answered the admin's %r", os.getpid(), op)
        except (ValueError, KeyError, TypeError, TimeoutError) as exc:
            answer = {"pid": os.getpid(), "error": f"bad request: {exc}"}
        try:
            writer.write(orjson.dumps(answer))
            await writer.drain()
        except OSError:
            pass  # the asking worker gave up waiting
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        self.path.unlink(missing_ok=True)


async def serve_views(gateway: GatewayApp) -> ViewServer | None:
    """Start serving this worker's views to the others (None with one worker)."""
    readiness = gateway.readiness
    if readiness.state_dir is None:
        return None
    saved = readiness.state_dir / LEVEL_FILE
    with contextlib.suppress(OSError, ValueError):
        set_level(saved.read_text())
    server = ViewServer(gateway, socket_path(readiness.state_dir, readiness.index))
    await server.start()
    return server
