"""Interface-level discovery: which gRPC / Dubbo interface is served by which target.

A wildcard LDS subscription lists every ``HOST:PORT`` the control plane knows;
one endpoint of each is asked, through gRPC server reflection, which services
it serves. The result maps ``service name -> target`` so that the gateway can
route ``/pkg.Service/Method`` without a configured host.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

log = logging.getLogger(f"meshgate.{__name__}")

# Infrastructure services every reflective server lists; they name no interface.
INFRASTRUCTURE_PREFIXES = ("grpc.reflection.", "grpc.health.", "grpc.channelz.")


async def list_services(address: str, timeout: float) -> list[str]:
    """Service names ``address`` reports through server reflection (v1alpha)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        call = stub.ServerReflectionInfo(iter((request,)), timeout=timeout)
        async for response in call:
            if response.HasField("error_response"):
                raise LookupError(response.error_response.error_message)
            return [s.name for s in response.list_services_response.service]
    return []


def interface_names(services: Iterable[str]) -> list[str]:
    return [s for s in services if not s.startswith(INFRASTRUCTURE_PREFIXES)]


async def services_of(address: str, timeout: float) -> list[str]:
    """Interfaces of one endpoint, or none when it cannot be asked."""
    try:
        return interface_names(await list_services(address, timeout))
    except (TimeoutError, grpc.aio.AioRpcError, LookupError) as exc:
        log.warning("reflection on %s failed: %s", address, exc)
        return []
