"""The whole request path in process: GatewayApp driven by httpx's ASGI
transport, with fake upstreams in place of the protocol clients (as httpx's
MockTransport stands in for the network).

    gateway = InProcessGateway(YAML, handler)
    async with gateway.client() as client:
        response = await client.post("/pkg.Service/Method", json={...})
    gateway.calls  # every (address, Call, timeout) the upstreams saw
"""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from google.protobuf import message_factory
from google.protobuf.message import Message

from gateway.app import GatewayApp
from gateway.config import LoadedConfig, load_config_text
from gateway.router import Upstreams
from gateway.snapshot import DescriptorSources, Snapshot, compile_snapshot
from gateway.sources import load_sources
from gateway.upstream.call import Call, Reply, ReplyStream, Upstream
from gateway.upstream.invoker import Invoker
from gateway.upstream.registry import UpstreamClients, UpstreamName
from mesh.security import UpstreamTls

REPO = Path(__file__).resolve().parents[2]
LISTENER_PORT = 18080

# (address, call, timeout) -> a reply, a list or an async iterator of messages
# (streams), or raise a GatewayError.
Handler = Callable[[str, Call, float | None], Awaitable[Any]]


@dataclass
class Seen:
    address: str
    call: Call
    timeout: float | None


@dataclass
class FakeUpstream:
    """An Upstream whose answers come from a test's handler."""

    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    closed: bool = False

    async def unary(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> Reply:
        self.seen.append(Seen(address, call, timeout))
        reply = await self.handler(address, call, timeout)
        assert isinstance(reply, Reply), "a unary handler returns a Reply"
        return reply

    async def stream(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> ReplyStream:
        self.seen.append(Seen(address, call, timeout))
        messages = await self.handler(address, call, timeout)
        if isinstance(messages, AsyncIterator):
            # The test paces the messages itself.
            return ReplyStream((("x-stream", "yes"),), messages)
        assert isinstance(messages, list), "a stream handler returns a list or an async iterator"
        return ReplyStream((("x-stream", "yes"),), _iterate(messages))

    async def close(self) -> None:
        self.closed = True


async def _iterate(messages: list[Any]) -> AsyncIterator[bytes]:
    for item in messages:
        if isinstance(item, BaseException):
            raise item
        yield item


@functools.cache
def _sources(text: str) -> DescriptorSources:
    return load_sources(load_config_text(text, base_dir=REPO))


class InProcessGateway:
    def __init__(
        self,
        yaml_text: str,
        handler: Handler,
        *,
        invoker: Invoker | None = None,
        refresh: Callable[[Snapshot], Snapshot] | None = None,
    ) -> None:
        self.loaded: LoadedConfig = load_config_text(yaml_text, base_dir=REPO)
        self.snapshot = compile_snapshot(self.loaded, _sources(yaml_text), rng=random.Random(1))
        self.upstream = FakeUpstream(handler)
        names: tuple[UpstreamName, ...] = ("grpc", "triple", "triple-json", "dubbo2")
        self.made: list[UpstreamName] = []

        def factory(name: UpstreamName) -> Callable[[], Upstream]:
            def make() -> Upstream:
                self.made.append(name)
                return self.upstream

            return make

        clients = UpstreamClients({name: factory(name) for name in names})
        self.app = GatewayApp(
            self.snapshot,
            upstreams=Upstreams(clients, invoker or Invoker(random.Random(1))),
            refresh=refresh,
        )

    @property
    def calls(self) -> list[Seen]:
        return self.upstream.seen

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("127.0.0.9", 5555))
        return httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{LISTENER_PORT}")

    def message(self, full_name: str) -> type[Message]:
        return message_factory.GetMessageClass(self.snapshot.pool.FindMessageTypeByName(full_name))
