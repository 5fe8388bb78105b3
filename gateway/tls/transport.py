"""TLS under protocol clients that cannot do it as the cluster asks.

grpcio's ``ssl_channel_credentials`` always checks the server's DNS name
against the target (or ``grpc.ssl_target_name_override``) and has no SAN
matcher: an Istio workload certificate, which carries only a SPIFFE URI,
fails that check whatever the override. So TLS to upstreams is a transport
socket under the protocol clients, as in Envoy: the client dials a private
Unix socket of the worker, and each connection accepted there is carried to
the endpoint over TLS made with Python's ssl (client certificate, CA, SNI,
ALPN), the server's SANs checked before a byte is relayed.

Per (endpoint address, security, ALPN) there is one relay; every new
connection takes the current context, so a rotation of the files reaches
new connections while open ones (and their calls) go on. The sockets live in
a 0700 directory of the worker, so no other user of the host can borrow the
gateway's client certificate through them.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from gateway.config import split_address
from gateway.tls.client import ClientTls, PeerRejected, check_peer, server_hostname
from mesh.security import UpstreamTls

log = logging.getLogger(f"meshgate.{__name__}")

CONNECT_TIMEOUT_S = 10.0
# How long a failed connect explains the failures of the calls that follow it.
FAILURE_MEMORY_S = 30.0

RelayKey = tuple[str, UpstreamTls, tuple[str, ...]]


class _Pipe(asyncio.Protocol):
    """One side of a relayed connection: what it reads goes to its peer, with backpressure."""

    def __init__(self, peer: _Pipe | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer = peer
        # Data read before both sides are up (and the peer verified) waits here.
        self.held: list[bytes] | None = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.held is not None:
            self.held.append(data)
        elif self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)

    def release(self) -> None:
        held, self.held = self.held or [], None
        if self.peer is not None and self.peer.transport is not None:
            for data in held:
                self.peer.transport.write(data)

    def eof_received(self) -> bool | None:
        self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        for side in (self, self.peer):
            if side is not None and side.transport is not None and not side.transport.is_closing():
                side.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Inbound(_Pipe):
    """The protocol client's side: held paused until the TLS side is up and verified."""

    def __init__(self, relay: Relay) -> None:
        super().__init__()
        self._relay = relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()
        self._relay.open.add(self)
        self._relay.start_dial(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._relay.open.discard(self)
        super().connection_lost(exc)


class Relay:
    """The Unix socket of one (address, security, ALPN) and its connections to the endpoint."""

    def __init__(self, address: str, client: ClientTls, path: Path) -> None:
        self.address = address
        self.path = path
        self._client = client
        self._server: asyncio.AbstractServer | None = None
        self._failure: tuple[float, str] | None = None
        self._dials: set[asyncio.Task[None]] = set()
        self.open: set[_Pipe] = set()  # accepted connections, closed with the relay
        self.connections = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._accepted, path=str(self.path))

    def _accepted(self) -> asyncio.Protocol:
        return _Inbound(self)

    def start_dial(self, inbound: _Pipe) -> None:
        task = asyncio.get_running_loop().create_task(self.dial(inbound))
        self._dials.add(task)
        task.add_done_callback(self._dials.discard)

    async def dial(self, inbound: _Pipe) -> None:
        """Connect ``inbound`` to the endpoint over TLS, or close it saying why."""
        host, port = split_address(self.address)
        tls = self._client.tls
        loop = asyncio.get_running_loop()
        transport: asyncio.BaseTransport | None = None
        try:
            context = self._client.current()
        except (OSError, ssl.SSLError) as exc:
            self._fail(inbound, None, f"TLS files cannot be loaded: {exc}")
            return
        try:
            transport, outbound = await loop.create_connection(
                lambda: _Pipe(peer=inbound),
                host,
                port,
                ssl=context,
                server_hostname=server_hostname(tls, host),
                ssl_handshake_timeout=CONNECT_TIMEOUT_S,
            )
            ssl_object = transport.get_extra_info("ssl_object")
            check_peer(tls, ssl_object.getpeercert() if ssl_object is not None else None)
        except (OSError, ssl.SSLError, PeerRejected, TimeoutError) as exc:
            self._fail(inbound, transport, _reason(exc))
            return
        self._failure = None
        self.connections += 1
        inbound.peer = outbound
        if inbound.transport is None or inbound.transport.is_closing():
            transport.close()
            return
        outbound.release()
        inbound.release()
        inbound.transport.resume_reading()

    def _fail(self, inbound: _Pipe, transport: asyncio.BaseTransport | None, reason: str) -> None:
        self._failure = (time.monotonic(), reason)
        log.warning("TLS to %s failed: %s", self.address, reason)
        inbound.close()
        if transport is not None:
            transport.close()

    def failure(self) -> str | None:
        """Why the last connection could not be made, if recent."""
        if self._failure is None or time.monotonic() - self._failure[0] > FAILURE_MEMORY_S:
            return None
        return self._failure[1]

    async def close(self) -> None:
        for task in list(self._dials):
            task.cancel()
        if self._server is not None:
            self._server.close()
        for pipe in list(self.open):
            pipe.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PeerRejected):
        return f"peer identity rejected: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return "TLS handshake timed out"
    return f"connect failed: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)


class TlsTransports:
    """The worker's relays, created on first use, one per (address, security, ALPN)."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._relays: dict[RelayKey, Relay] = {}
        self._starting: dict[RelayKey, asyncio.Task[Relay]] = {}
        self._clients: dict[tuple[UpstreamTls, tuple[str, ...]], ClientTls] = {}
        self._count = 0

    async def socket_path(self, address: str, tls: UpstreamTls, alpn: Sequence[str]) -> str:
        """The Unix socket whose connections reach ``address`` over ``tls``."""
        key = (address, tls, tuple(alpn))
        relay = self._relays.get(key)
        if relay is None:
            task = self._starting.get(key)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._start(key))
                self._starting[key] = task
            relay = await asyncio.shield(task)
        return str(relay.path)

    def failure(self, address: str, tls: UpstreamTls, alpn: Sequence[str]) -> str | None:
        relay = self._relays.get((address, tls, tuple(alpn)))
        return relay.failure() if relay is not None else None

    def relay(self, address: str, tls: UpstreamTls, alpn: Sequence[str]) -> Relay | None:
        return self._relays.get((address, tls, tuple(alpn)))

    async def _start(self, key: RelayKey) -> Relay:
        try:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="meshgate-tls-"))  # mode 0700
            address, tls, alpn = key
            client = self._clients.get((tls, alpn))
            if client is None:
                client = self._clients[(tls, alpn)] = ClientTls(tls, alpn)
            self._count += 1
            relay = Relay(address, client, self._dir / f"{self._count}.sock")
            await relay.start()
            self._relays[key] = relay
            return relay
        finally:
            self._starting.pop(key, None)

    async def close(self) -> None:
        relays, self._relays = self._relays, {}
        for relay in relays.values():
            await relay.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
