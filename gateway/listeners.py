"""The sockets a worker serves, each with its own uvicorn server, changeable at run time.

One uvicorn server per bound address (every listener, and the admin), all on
the worker's one event loop and the same ASGI app. A reload that adds or
moves a listener binds its socket first (so a port that cannot be bound
refuses the reload before anything changed) and starts a server on it; a
listener that goes away stops accepting at once and its open requests,
streams included, finish within the drain timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import uvicorn

from gateway.config import split_address

log = logging.getLogger(f"meshgate.{__name__}")


def bind(address: str, reuse_port: bool) -> socket.socket:
    """A listening TCP socket on ``HOST:PORT``; SO_REUSEPORT lets every worker bind it."""
    host, port = split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class BindError(Exception):
    """Some addresses of a new config could not be bound; nothing was changed."""


@dataclass
class _Serving:
    sock: socket.socket
    server: uvicorn.Server
    ticker: asyncio.Task[None]


class ListenerSet:
    """The worker's running servers, by address (``HOST:PORT``)."""

    def __init__(self, config_for: Callable[[], uvicorn.Config], reuse_port: bool) -> None:
        # A fresh uvicorn.Config per server: each carries its own drain timeout.
        self._config_for = config_for
        self._reuse_port = reuse_port
        self._serving: dict[str, _Serving] = {}
        self._draining: set[asyncio.Task[None]] = set()

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(self._serving)

    def bind_all(self, addresses: Iterable[str]) -> dict[str, socket.socket]:
        """Bind every address, or none: on any failure the ones bound are closed."""
        bound: dict[str, socket.socket] = {}
        failures: list[str] = []
        for address in addresses:
            try:
                bound[address] = bind(address, self._reuse_port)
            except OSError as exc:
                failures.append(f"cannot bind {address}: {exc.strerror or exc}")
        if failures:
            for sock in bound.values():
                sock.close()
            raise BindError("; ".join(failures))
        return bound

    async def start(
        self, address: str, sock: socket.socket, tls: ssl.SSLContext | None = None
    ) -> None:
        """Serve ``sock`` (already bound and listening) from now on; with ``tls``, over
        TLS with that listener's own context (uvicorn applies ``config.ssl`` to the
        sockets it is given, so each server gets its listener's)."""
        config = self._config_for()
        config.load()
        config.ssl = tls
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        # main_loop keeps the Date header fresh and ends when should_exit is set.
        ticker = asyncio.create_task(server.main_loop())
        self._serving[address] = _Serving(sock, server, ticker)

    async def stop(self, address: str, drain_timeout: float) -> None:
        """Stop accepting on ``address`` at once, then wait up to ``drain_timeout``
        for its open requests; idle keep-alive connections are closed."""
        serving = self._serving.pop(address, None)
        if serving is None:
            return
        serving.server.should_exit = True
        serving.server.config.timeout_graceful_shutdown = max(int(drain_timeout + 0.999), 0)
        with contextlib.suppress(asyncio.CancelledError):
            await serving.ticker
        # uvicorn closes the listening socket, tells every connection to close
        # after its current response, and waits for them (cancelling the rest
        # at the timeout).
        await serving.server.shutdown(sockets=[serving.sock])
        # What uvicorn leaves open (a connection that outlived the timeout, or
        # one accepted as the socket closed) is closed here: once the drain
        # ends nothing may be served for this listener; a kept-alive
        # connection reused later would meet a port with no listener (404).
        for connection in list(serving.server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()

    def stop_later(self, address: str, drain_timeout: float, done: Callable[[], None]) -> None:
        """:meth:`stop` in the background; ``done`` runs once it has drained."""

        async def drain() -> None:
            try:
                await self.stop(address, drain_timeout)
            except Exception:
                log.exception("draining %s failed", address)
            finally:
                done()

        task = asyncio.create_task(drain())
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def stop_all(self, drain_timeout: float, keep: Iterable[str] = ()) -> None:
        """Stop every server but ``keep``, all at once, and the background drains."""
        kept = set(keep)
        await asyncio.gather(
            *(self.stop(a, drain_timeout) for a in list(self._serving) if a not in kept),
            *self._draining,
        )
