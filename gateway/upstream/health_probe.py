"""The probes of active health checking: gRPC Health/Check, HTTP GET, TCP connect.

Each answers one question, "did this endpoint pass?", within the check's
timeout; any failure to answer is a no. Probes use their own connections
(as Envoy's health checker does), so a probe never queues behind requests
and a request never rides on a probe's connection.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import grpc.aio
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.config import split_address
from mesh.xds.cluster import HealthCheck

_PROBE_CHANNEL_OPTIONS = (
    ("grpc.enable_retries", 0),
    # A probe must see an endpoint come back at its next interval, not after
    # gRPC's reconnect backoff (which grows to two minutes).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
)


class Prober:
    """The probes of one process, with a connection per endpoint for gRPC and HTTP."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._http: httpx.AsyncClient | None = None

    async def probe(self, check: HealthCheck, address: str) -> bool:
        try:
            async with asyncio.timeout(check.timeout_s):
                if check.kind == "grpc":
                    return await self._grpc(address, check.grpc_service, check.timeout_s)
                if check.kind == "http":
                    return check.http_passes(await self._get(address, check.http_path))
                return await _connect(address)
        except (TimeoutError, OSError, grpc.aio.AioRpcError, httpx.HTTPError):
            return False

    async def _grpc(self, address: str, service: str, timeout: float) -> bool:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(address, options=_PROBE_CHANNEL_OPTIONS)
            self._channels[address] = channel
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def _get(self, address: str, path: str) -> int:
        """The status of ``GET path``."""
        if self._http is None:
            self._http = httpx.AsyncClient()
        return (await self._http.get(f"http://{address}{path}")).status_code

    async def retain(self, addresses: set[str]) -> None:
        """Close the probe connections of endpoints no cluster has any more."""
        for address in [a for a in self._channels if a not in addresses]:
            await self._channels.pop(address).close()

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None


async def _connect(address: str) -> bool:
    host, port = split_address(address)
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
