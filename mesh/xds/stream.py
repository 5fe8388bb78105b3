"""The ADS stream over grpc.aio: the I/O that drives the sans-IO AdsClient.

One bidirectional stream at a time. It is reopened after a failure with
exponential backoff (reset once a stream has delivered a response); the
AdsClient keeps every resource meanwhile, so routing goes on with the last
good configuration, and resubscribes everything on the new stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from mesh.backoff import Backoff
from mesh.bootstrap import XdsServer
from mesh.errors import ResourceError
from mesh.xds.ads import AdsClient, Key

log = logging.getLogger(f"meshgate.{__name__}")

OnChange = Callable[[set[Key]], None]


def open_channel(server: XdsServer) -> grpc.aio.Channel:
    creds = server.creds
    if creds.type == "insecure":
        return grpc.aio.insecure_channel(server.server_uri)
    if creds.type == "google_default":
        return grpc.aio.secure_channel(server.server_uri, grpc.ssl_channel_credentials())
    config = creds.config
    root = _read(config.get("ca_certificate_file"))
    key = _read(config.get("private_key_file"))
    chain = _read(config.get("certificate_file"))
    return grpc.aio.secure_channel(
        server.server_uri, grpc.ssl_channel_credentials(root, key, chain)
    )


def _read(path: object) -> bytes | None:
    if not isinstance(path, str):
        return None
    with open(path, "rb") as handle:
        return handle.read()


class AdsStream:
    def __init__(
        self,
        server: XdsServer,
        client: AdsClient,
        on_change: OnChange,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = server
        self._client = client
        self._on_change = on_change
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._channel: grpc.aio.Channel | None = None
        self._call: (
            grpc.aio.StreamStreamCall[
                discovery_pb2.DiscoveryRequest, discovery_pb2.DiscoveryResponse
            ]
            | None
        ) = None
        self.streams_opened = 0

    def start(self) -> None:
        self._channel = open_channel(self._server)
        self._task = asyncio.create_task(self._run(), name="ads-stream")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._channel is not None:
            await self._channel.close()

    def wake(self) -> None:
        """Something changed (a new watch): send what the client has to send."""
        self._wake.set()

    def drop(self) -> None:
        """Cancel the current stream (it will be reopened after backoff)."""
        if self._call is not None:
            self._call.cancel()

    async def _run(self) -> None:
        assert self._channel is not None
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        while True:
            received = False
            try:
                received = await self._session(stub)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                # Routing goes on with the last configuration, but an operator must see it.
                log.warning(
                    "ADS stream to %s lost: %s %s; reconnecting",
                    self._server.server_uri,
                    exc.code(),
                    exc.details(),
                )
            except Exception:  # a bug must not kill discovery for good
                log.exception("ADS stream crashed")
            finally:
                self._call = None
                self._client.connection_lost()
            if received:
                self._backoff.reset()
            await asyncio.sleep(self._backoff.next_delay())

    async def _session(self, stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub) -> bool:
        call = stub.StreamAggregatedResources()
        self._call = call
        self.streams_opened += 1
        self._client.connection_made()
        received = False

        async def read() -> None:
            nonlocal received
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                received = True
                self._receive(response)

        reader = asyncio.create_task(read())
        try:
            while not reader.done():
                await self._flush(call)
                await self._sleep_until_due(reader)
                changed = self._client.tick(self._clock())
                if changed:
                    self._on_change(changed)
            reader.result()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await reader
            call.cancel()
        return received

    def _receive(self, response: discovery_pb2.DiscoveryResponse) -> None:
        try:
            changed = self._client.receive(response, self._clock())
        except ResourceError as exc:
            log.warning("ignored ADS response: %s", exc)
            return
        ack = self._client.last_acks.get(response.type_url)
        if ack is not None and ack.error is not None:
            # Once per rejected response: the NACK keeps the previous version.
            log.warning(
                "xDS NACK: %s version %r rejected, keeping %r: %s",
                response.type_url.rsplit(".", 1)[-1],
                response.version_info,
                ack.version,
                ack.error,
            )
        if changed:
            self._on_change(changed)
        self._wake.set()

    async def _flush(
        self,
        call: grpc.aio.StreamStreamCall[
            discovery_pb2.DiscoveryRequest, discovery_pb2.DiscoveryResponse
        ],
    ) -> None:
        for request in self._client.take_requests(self._clock()):
            await call.write(request)

    async def _sleep_until_due(self, reader: asyncio.Task[None]) -> None:
        deadline = self._client.next_deadline()
        timeout = None if deadline is None else max(deadline - self._clock(), 0.0)
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait(
                {reader, waker}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waker.cancel()
            self._wake.clear()
