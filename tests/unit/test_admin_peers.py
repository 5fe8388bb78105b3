"""Workers asking each other for their admin views over the state directory's
Unix sockets (gateway.admin_peers): two GatewayApps in one process, real sockets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.admin import build_admin
from gateway.admin_peers import LEVEL_FILE, ViewServer, ask_workers, serve_views, socket_path
from gateway.app import GatewayApp
from gateway.config import load_config_text
from gateway.readiness import Readiness
from gateway.snapshot import compile_snapshot
from gateway.sources import load_sources
from gateway.upstream.clusters import StaticCluster

pytestmark = pytest.mark.anyio

ADMIN_PORT = 19901
YAML = """
admin: {address: "127.0.0.1:19901"}
listeners:
  - name: public
    address: 127.0.0.1:18080
    routes: [{match: {prefix: /}, transcode: {auto_mapping: true}, cluster: shop}]
clusters:
  - name: shop
    endpoints: [{address: "127.0.0.1:1"}, {address: "127.0.0.1:2"}]
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def worker_app(state_dir: Path, index: int, count: int) -> GatewayApp:
    loaded = load_config_text(YAML, base_dir=Path())
    snapshot = compile_snapshot(loaded, load_sources(loaded))
    readiness = Readiness(state_dir, index, count)
    return GatewayApp(snapshot, admin_port=ADMIN_PORT, admin=build_admin, readiness=readiness)


def shop(app: GatewayApp) -> StaticCluster:
    cluster = app.active.snapshot.clusters["shop"]
    assert isinstance(cluster, StaticCluster)
    return cluster


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[GatewayApp, GatewayApp]]:
    first, second = worker_app(tmp_path, 0, 2), worker_app(tmp_path, 1, 2)
    server = await serve_views(second)
    assert server is not None
    yield first, second
    await server.close()
    logging.getLogger().setLevel(logging.WARNING)


async def admin_get(app: GatewayApp, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=f"http://127.0.0.1:{ADMIN_PORT}"
    ) as client:
        return await client.get(path)


async def test_either_worker_answers_with_both_views(
    pair: tuple[GatewayApp, GatewayApp],
) -> None:
    first, second = pair
    shop(first).requests.in_flight = 2
    shop(second).requests.in_flight = 3
    answer = (await admin_get(first, "/clusters")).json()
    assert answer["static"]["shop"]["in_flight"] == 5
    assert [w["worker"] for w in answer["workers"]] == [0, 1]
    assert not any("error" in w for w in answer["workers"])


async def test_a_missing_worker_is_not_running_and_a_silent_one_not_live(tmp_path: Path) -> None:
    app = worker_app(tmp_path, 0, 3)
    # Worker 2 accepts connections but its loop never answers (a hung worker).
    hung: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)

    silent = await asyncio.start_unix_server(never_answer, path=str(socket_path(tmp_path, 2)))
    try:
        views = await ask_workers(app, "ping")
        assert views[1].error == "not running (starting or being replaced)"
        assert not views[1].unresponsive
        assert views[2].unresponsive and views[2].error == "did not answer within 2s"
        reply = await admin_get(app, "/healthz")
        assert reply.status_code == 503
        assert reply.text == "NOT LIVE: worker 3 of 3: did not answer within 2s\n"
    finally:
        for writer in hung:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def test_a_bad_request_on_the_socket_gets_an_error(
    pair: tuple[GatewayApp, GatewayApp], tmp_path: Path
) -> None:
    reader, writer = await asyncio.open_unix_connection(str(socket_path(tmp_path, 1)))
    writer.write(b'{"op": "shutdown"}\n')
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert b"bad request" in answer


async def test_a_level_set_through_logging_is_kept_for_a_worker_that_starts_later(
    pair: tuple[GatewayApp, GatewayApp], tmp_path: Path
) -> None:
    first, _ = pair
    transport = httpx.ASGITransport(app=first)
    async with httpx.AsyncClient(
        transport=transport, base_url=f"http://127.0.0.1:{ADMIN_PORT}"
    ) as client:
        assert (await client.post("/logging", params={"level": "nope"})).status_code == 400
        assert (await client.post("/logging")).status_code == 400
        reply = await client.post("/logging", params={"level": "WARN"})
    assert reply.status_code == 200
    assert [w["levels"]["meshgate"] for w in reply.json()["workers"]] == ["warning"] * 2
    assert (tmp_path / LEVEL_FILE).read_text() == "warning"
    logging.getLogger().setLevel(logging.WARNING)
    # A replacement worker applies the saved level when it starts serving its views.
    server = await serve_views(worker_app(tmp_path, 2, 3))
    assert isinstance(server, ViewServer)
    await server.close()
    assert logging.getLogger().level == logging.WARNING
