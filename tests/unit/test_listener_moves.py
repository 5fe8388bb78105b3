"""A listener that moves keeps serving on its old port until that port has drained.

In process (ASGI, fake upstream): the app's side of a reload, without sockets.
tests/integration/test_lifecycle.py does the same with real processes and load.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from gateway.config import load_config_text
from gateway.snapshot import compile_snapshot
from gateway.upstream.call import Call, Reply
from tests.support.in_process import REPO, InProcessGateway, _sources

pytestmark = pytest.mark.anyio

OLD, NEW = 18080, 18081
CONFIG = """
descriptors:
  - proto: tests/protos/meshgate/test/v1/bookstore.proto
    include: [tests/protos]
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{prefix: /}}
        transcode: {{auto_mapping: true}}
        cluster: books
clusters:
  - name: books
    endpoints: [{{address: "127.0.0.1:7001"}}]
"""
SHELF = "/meshgate.test.v1.Bookstore/GetShelf"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def status_on(gateway: InProcessGateway, port: int) -> int:
    transport = httpx.ASGITransport(app=gateway.app, client=("127.0.0.9", 5555))
    async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{port}") as c:
        return (await c.post(SHELF, json={"shelf": "1"})).status_code


async def test_old_port_is_served_until_retired() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        return Reply(gateway.message("meshgate.test.v1.Shelf")(id=1).SerializeToString())

    gateway = InProcessGateway(CONFIG.format(port=OLD), handler)
    moved_text = CONFIG.format(port=NEW)
    moved = compile_snapshot(
        load_config_text(moved_text, base_dir=REPO),
        _sources(moved_text),
        previous=gateway.snapshot,
        rng=random.Random(1),
    )
    gateway.app.activate(moved, keep_ports=[OLD])
    assert (await status_on(gateway, NEW), await status_on(gateway, OLD)) == (200, 200)
    gateway.app.retire_ports([OLD])
    assert (await status_on(gateway, NEW), await status_on(gateway, OLD)) == (200, 404)


def moved_to(gateway: InProcessGateway, port: int) -> Any:
    text = CONFIG.format(port=port)
    return compile_snapshot(
        load_config_text(text, base_dir=REPO),
        _sources(text),
        previous=gateway.snapshot,
        rng=random.Random(1),
    )


async def test_a_draining_port_is_served_across_later_reloads() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        return Reply(gateway.message("meshgate.test.v1.Shelf")(id=1).SerializeToString())

    gateway = InProcessGateway(CONFIG.format(port=OLD), handler)
    gateway.app.activate(moved_to(gateway, NEW), keep_ports=[OLD])
    # A second reload (the same listener set) while OLD still drains.
    gateway.app.activate(moved_to(gateway, NEW))
    assert await status_on(gateway, OLD) == 200
    gateway.app.retire_ports([OLD])
    assert await status_on(gateway, OLD) == 404


async def test_a_port_removed_twice_is_held_until_both_drains_end() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        return Reply(gateway.message("meshgate.test.v1.Shelf")(id=1).SerializeToString())

    gateway = InProcessGateway(CONFIG.format(port=OLD), handler)
    gateway.app.activate(moved_to(gateway, NEW), keep_ports=[OLD])  # first drain of OLD
    gateway.app.activate(moved_to(gateway, OLD), keep_ports=[NEW])  # OLD back
    gateway.app.activate(moved_to(gateway, NEW), keep_ports=[OLD])  # second drain of OLD
    gateway.app.retire_ports([OLD])  # the first drain ends; the second still runs
    assert await status_on(gateway, OLD) == 200
    gateway.app.retire_ports([OLD])
    assert await status_on(gateway, OLD) == 404
    assert await status_on(gateway, NEW) == 200


async def test_retiring_a_port_the_snapshot_still_has_changes_nothing() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Any:
        return Reply(gateway.message("meshgate.test.v1.Shelf")(id=1).SerializeToString())

    gateway = InProcessGateway(CONFIG.format(port=OLD), handler)
    gateway.app.retire_ports([OLD])
    assert await status_on(gateway, OLD) == 200
