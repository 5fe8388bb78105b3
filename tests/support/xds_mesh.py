"""Helpers for the mesh core's integration tests: a MeshCore on the tests' ADS
server, and real Echo calls to the address it picks."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc

from mesh.backoff import Backoff
from mesh.bootstrap import parse
from mesh.core import MeshCore
from tests.support.protos import echo_descriptor_set, load_pool, message_class
from tests.support.xds_builders import ECHO_METHOD
from tests.support.xds_server import XdsServer


@functools.cache
def _echo_classes() -> tuple[Any, Any]:
    pool = load_pool(echo_descriptor_set())
    return (
        message_class(pool, "meshgate.test.v1.EchoRequest"),
        message_class(pool, "meshgate.test.v1.EchoReply"),
    )


async def echo(address: str, timeout: float = 5.0) -> str:
    """Call EchoService/Echo on ``address``; returns the backend's name."""
    request_cls, reply_cls = _echo_classes()
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(
            ECHO_METHOD,
            request_serializer=request_cls.SerializeToString,
            response_deserializer=reply_cls.FromString,
        )
        reply = await call(request_cls(message="mesh"), timeout=timeout)
        return str(reply.served_by)


@asynccontextmanager
async def mesh_core(xds: XdsServer, **options: Any) -> AsyncIterator[MeshCore]:
    options.setdefault("backoff", Backoff(initial_s=0.2, max_s=1.0))
    core = MeshCore(parse(xds.bootstrap()), **options)
    await core.start()
    try:
        yield core
    finally:
        await core.stop()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``check`` on the event loop until it holds; bounded."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout}s")
        await asyncio.sleep(0.02)
