"""The admin answers for the whole gateway with ``--workers 2``, and its status page.

A real meshgate process with two workers, over real grpcio backends: the
echo backend (alive, serves gRPC health), a port nobody listens on (dead:
the active health check marks it unhealthy) and the bookstore (REST
bindings for /routes); and the tests' ADS server, which gives each worker
its own xDS stream. Each admin connection is a fresh one, so the kernel
hands it to either worker; the answers must not depend on which.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import xds_builders as b
from tests.support.bookstore_backend import SERVICE
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import REPO, echo_backend, python_module, running
from tests.support.xds_server import XdsServer, serve_service

pytestmark = pytest.mark.integration

PROTOS = REPO / "tests" / "protos"
BOOKSTORE_PROTO = PROTOS / "meshgate" / "test" / "v1" / "bookstore.proto"
ECHO = "/meshgate.test.v1.EchoService/Echo"
MESH_HOST, MESH_PORT = "shop.default.svc.cluster.local", 50051
MESH_CLUSTER = b.cluster_name(MESH_HOST, MESH_PORT, "v1")
HEALTH_CHECK = {"grpc": {}, "interval": "300ms", "timeout": "300ms", "unhealthy_threshold": 2}
SETTLE_S = 30.0
# Requests held at the echo backend at once, over separate connections (so both workers get some).
HELD = 8


@dataclass
class Stack:
    gateway: RunningGateway
    alive: str
    dead: str
    bookstore: str


def admin_config(
    echo_set: Path, alive: str, dead: str, bookstore: str, bootstrap: Path
) -> dict[str, Any]:
    return {
        "descriptors": [
            {"file": str(echo_set)},
            {"proto": str(BOOKSTORE_PROTO), "include": [str(PROTOS)]},
        ],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    {
                        "name": "shelves",
                        "match": {"prefix": "/v1/"},
                        "transcode": {"services": [SERVICE]},
                        "cluster": "bookstore",
                    },
                    {
                        "name": "mesh-rpc",
                        "match": {"prefix": "/", "headers": [{"name": "x-mesh", "present": True}]},
                        "transcode": {"auto_mapping": True},
                        "cluster": f"xds:///{MESH_HOST}:{MESH_PORT}",
                    },
                    {
                        "name": "echo-rpc",
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True},
                        "cluster": "shop",
                        "timeout": "20s",
                    },
                ],
            }
        ],
        "clusters": [
            {
                "name": "shop",
                "health_check": HEALTH_CHECK,
                "endpoints": [{"address": alive}, {"address": dead}],
            },
            {"name": "bookstore", "endpoints": [{"address": bookstore}]},
        ],
        "mesh": {"xds": {"bootstrap": str(bootstrap)}},
    }


@pytest.fixture(scope="module")
def stack(echo_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    alive, dead, bookstore = (f"127.0.0.1:{free_port()}" for _ in range(3))
    alive_port = int(alive.rsplit(":", 1)[1])
    tmp = tmp_path_factory.mktemp("admin")
    with ExitStack() as stack:
        stack.enter_context(echo_backend(alive_port, "alive"))
        xds = stack.enter_context(XdsServer())
        mesh = b.Service(MESH_HOST, MESH_PORT, {"v1": [("127.0.0.1", alive_port)]})
        serve_service(xds, mesh, b.route(cluster=MESH_CLUSTER))
        bootstrap = tmp / "bootstrap.json"
        bootstrap.write_text(json.dumps(xds.bootstrap()))
        config = admin_config(echo_set, alive, dead, bookstore, bootstrap)
        book_port = bookstore.rsplit(":", 1)[1]
        stack.enter_context(
            running(python_module("tests.support.bookstore_backend", "--port", book_port), "READY")
        )
        gateway = stack.enter_context(run_gateway(config, tmp, workers=2))
        found = Stack(gateway, alive, dead, bookstore)
        wait_for(lambda: endpoint_health(found) == {alive: "healthy", dead: "unhealthy"})
        yield found


def admin(stack: Stack, path: str) -> Any:
    # A fresh connection per call: the kernel picks the worker each time.
    reply = httpx.get(f"{stack.gateway.admin_url}{path}", timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def wait_for(condition: Callable[[], bool], timeout: float = SETTLE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.2)


def endpoint_health(stack: Stack) -> dict[str, str]:
    shop = admin(stack, "/clusters")["static"]["shop"]
    return {e["address"]: e["health"] for e in shop["endpoints"]}


def settled(stack: Stack, path: str) -> Any:
    """Poll until two consecutive answers agree; then ten more must equal it."""
    previous = admin(stack, path)
    deadline = time.monotonic() + SETTLE_S
    while (current := admin(stack, path)) != previous:
        assert time.monotonic() < deadline, f"{path} never settled"
        previous = current
        time.sleep(0.2)
    for _ in range(10):
        assert admin(stack, path) == current
    return current


@pytest.mark.parametrize("path", ["/clusters", "/routes", "/config_dump", "/version"])
def test_every_answer_is_the_same_whichever_worker_gives_it(stack: Stack, path: str) -> None:
    answer = settled(stack, path)
    if path != "/routes":
        workers = answer["workers"]
        assert [w["worker"] for w in workers] == [0, 1]
        assert len({w["pid"] for w in workers}) == 2, workers
        assert not any("error" in w for w in workers), workers


def test_clusters_show_each_endpoints_health(stack: Stack) -> None:
    shop = settled(stack, "/clusters")["static"]["shop"]
    endpoints = {e["address"]: e for e in shop["endpoints"]}
    assert endpoints[stack.alive]["health"] == "healthy"
    assert endpoints[stack.dead]["health"] == "unhealthy"
    assert endpoints[stack.dead]["active_health"] == "unhealthy"
    assert endpoints[stack.alive]["weight"] == 1
    assert endpoints[stack.alive]["ejected"] is False
    assert shop["health_check"] == "grpc"


def test_in_flight_is_summed_over_the_workers(stack: Stack) -> None:
    def hold(i: int) -> int:
        with stack.gateway.client(timeout=30) as client:
            return client.post(ECHO, json={"message": str(i), "delaySeconds": 4.0}).status_code

    counts: list[int] = []

    def all_held() -> bool:
        counts.append(admin(stack, "/clusters")["static"]["shop"]["in_flight"])
        return counts[-1] == HELD

    with ThreadPoolExecutor(HELD) as pool:
        held = [pool.submit(hold, i) for i in range(HELD)]
        try:
            wait_for(all_held, 15)
        except TimeoutError:
            raise AssertionError(f"in flight seen: {counts}") from None
        assert [f.result() for f in held] == [200] * HELD
    wait_for(lambda: admin(stack, "/clusters")["static"]["shop"]["in_flight"] == 0)


def test_routes_give_each_rest_binding(stack: Stack) -> None:
    public = settled(stack, "/routes")["public"]
    assert public["address"] == stack.gateway.url.removeprefix("http://")
    shelves, mesh, echo = public["routes"]
    assert (shelves["name"], shelves["kind"], shelves["cluster"]) == (
        "shelves",
        "transcode",
        "bookstore",
    )
    assert shelves["match"] == "prefix /v1/"
    bindings = {b["http"]: b["rpc"] for b in shelves["bindings"]}
    assert bindings["GET /v1/shelves/{shelf}"] == f"{SERVICE}/GetShelf"
    assert bindings["POST /v1/shelves"] == f"{SERVICE}/CreateShelf"
    assert bindings["POST /v1/shelves/{shelf}:archive"] == f"{SERVICE}/ArchiveShelf"
    assert (mesh["name"], mesh["cluster"]) == ("mesh-rpc", f"xds:///{MESH_HOST}:{MESH_PORT}")
    assert mesh["match"] == "prefix /; header x-mesh"
    assert (echo["name"], echo["cluster"], echo["timeout"]) == ("echo-rpc", "shop", 20.0)
    assert echo["bindings"] == [
        {"http": "POST /{service}/{method}", "rpc": "every service (auto_mapping)"}
    ]


def test_version_names_the_build_config_and_workers(stack: Stack) -> None:
    version = settled(stack, "/version")
    assert version["meshgate"] == "0.1.0"
    assert re.fullmatch(r"3\.\d+\.\d+", version["python"])
    assert re.fullmatch(r"[0-9a-f]{64}", version["config_hash"])
    assert version["config_hash_agreed"] is True
    assert version["worker_count"] == 2
    assert all(w["config_hash"] == version["config_hash"] for w in version["workers"])
    assert version["started"] <= min(w["started"] for w in version["workers"])
    dump = settled(stack, "/config_dump")
    assert dump["config_hash"] == version["config_hash"]
    assert dump["config"]["clusters"][0]["name"] == "shop"


def test_config_dump_gives_each_workers_xds_stream(stack: Stack) -> None:
    dump = settled(stack, "/config_dump")
    assert dump["xds"]["connected"] is True
    types = {r["type"] for r in dump["xds"]["resources"]}
    assert types == {"lds", "rds", "cds", "eds"}
    assert all(r["state"] == "acked" for r in dump["xds"]["resources"]), dump["xds"]["resources"]
    for worker in dump["workers"]:
        assert worker["xds"]["connected"] is True
        versions = {t: ack["version"] for t, ack in worker["xds"]["acks"].items()}
        assert versions == dict.fromkeys(("lds", "rds", "cds", "eds"), "1")
    # Each worker reports its own ADS stream (the server's nonces differ per stream).
    assert len({w["xds"]["acks"]["lds"]["nonce"] for w in dump["workers"]}) == 2
    mesh = settled(stack, "/clusters")["xds"][MESH_CLUSTER]
    assert [e["address"] for e in mesh["endpoints"]] == [stack.alive]


def test_healthz_asks_every_worker(stack: Stack) -> None:
    reply = httpx.get(f"{stack.gateway.admin_url}/healthz?verbose", timeout=10)
    assert reply.status_code == 200
    assert reply.json()["live"] is True
    assert len({w["pid"] for w in reply.json()["workers"]}) == 2


def test_logging_level_changes_in_every_worker(stack: Stack) -> None:
    url = f"{stack.gateway.admin_url}/logging"
    before = admin(stack, "/logging")
    assert before["levels"]["meshgate"] == "info"
    pids = {w["pid"] for w in before["workers"]}
    assert len(pids) == 2
    bad = httpx.post(url, params={"level": "loud"}, timeout=10)
    assert bad.status_code == 400
    assert bad.json()["code"] == 3 and "loud" in bad.json()["message"]
    try:
        changed = httpx.post(url, params={"level": "debug"}, timeout=10)
        assert changed.status_code == 200, changed.text
        # Each worker reports the level it now has (read in that worker's process).
        assert [w["levels"]["meshgate"] for w in changed.json()["workers"]] == ["debug"] * 2
        for _ in range(10):
            assert admin(stack, "/logging")["levels"] == {"meshgate": "debug"}

        # And both processes now log at DEBUG: each names its pid when it answers.
        def both_log_debug() -> bool:
            admin(stack, "/version")
            output = stack.gateway.process.output
            return all(re.search(rf"DEBUG .*worker pid {pid} answered", output) for pid in pids)

        wait_for(both_log_debug)
    finally:
        httpx.post(url, params={"level": "info"}, timeout=10)
    assert admin(stack, "/logging")["levels"]["meshgate"] == "info"


def test_the_status_page_in_chromium(stack: Stack, tmp_path: Path) -> None:
    """Headless Chromium (Debian's, scripts/install_browser.sh) loads the page under
    its CSP, waits for the live refresh, and shows listeners, routes, clusters,
    endpoints with their health, and the xDS state."""
    from tests.support.toolchain import missing, require_binary

    chromium = require_binary("chromium", "scripts/install_browser.sh installs it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (the test extra)")
        return
    page_reply = httpx.get(f"{stack.gateway.admin_url}/", timeout=10)
    assert "script-src 'self'" in page_reply.headers["content-security-policy"]
    problems: list[str] = []
    screenshot = tmp_path / "status.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # A CSP violation or a script error shows up here.
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type == "error" else None,
            )
            page.on(
                "response",
                lambda reply: (
                    problems.append(f"{reply.status} {reply.url}")
                    if reply.status >= 400 and "/ready" not in reply.url
                    else None
                ),
            )
            page.goto(f"{stack.gateway.admin_url}/", timeout=30_000)
            # Polled from here: the page's CSP forbids the evaluated script of
            # wait_for_function. Two refreshes: the live refresh ran again.
            stamp = page.locator("#refreshed")
            wait_for(lambda: int(stamp.get_attribute("data-refreshes") or 0) >= 2)
            text = page.inner_text("body")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    for expected in (
        "listener public",
        "shelves",
        "echo-rpc",
        "GET /v1/shelves/{shelf} → meshgate.test.v1.Bookstore/GetShelf",
        "shop",
        "bookstore",
        stack.alive,
        stack.dead,
        stack.bookstore,
        "healthy",
        "unhealthy",
        MESH_CLUSTER,
        "mesh-rpc",
        "acked",
        "ready",
    ):
        assert expected in text, f"{expected!r} not on the page:\n{text}"
    assert screenshot.stat().st_size > 1000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
