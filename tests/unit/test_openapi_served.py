"""The listener's /openapi.json and /docs, in process: off by default, behind the
listener's filters, and rebuilt when a reload changes the routes."""

from __future__ import annotations

import pytest

from gateway.config.load import load_config_text
from gateway.snapshot import compile_snapshot
from gateway.sources import load_sources
from gateway.upstream.call import Call, Reply
from tests.support.in_process import REPO, InProcessGateway

pytestmark = pytest.mark.anyio

BOOKSTORE = "meshgate.test.v1.Bookstore"


def config(openapi: str, services: str, filters: str = "[]") -> str:
    return f"""
descriptors:
  - proto: tests/protos/meshgate/test/v1/bookstore.proto
    include: [tests/protos]
listeners:
  - name: public
    address: 127.0.0.1:18080
    filters: {filters}
    {openapi}
    routes:
      - match: {{prefix: /}}
        transcode: {{services: [{services}]}}
        cluster: books
clusters:
  - name: books
    endpoints: [{{address: "127.0.0.1:7001"}}]
"""


async def no_call(address: str, call: Call, timeout: float | None) -> Reply:
    raise AssertionError("the document is the gateway's own answer")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_off_unless_configured() -> None:
    gateway = InProcessGateway(config("", BOOKSTORE), no_call)
    async with gateway.client() as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 404


async def test_served_at_its_path_and_rebuilt_on_reload() -> None:
    text = config("openapi: {path: /api/openapi.json, title: Books}", BOOKSTORE)
    gateway = InProcessGateway(text, no_call)
    async with gateway.client() as client:
        first = (await client.get("/api/openapi.json")).json()
        assert first["info"]["title"] == "Books"
        assert first["servers"] == [{"url": "/"}]
        assert "/v1/shelves/{shelf}" in first["paths"]
        assert "/v1/books:search" not in first["paths"]
        # A reload that adds a service: the next request gets the new document.
        reloaded_text = text.replace(BOOKSTORE, f"{BOOKSTORE}, meshgate.test.v1.BookstoreExtras")
        loaded = load_config_text(reloaded_text, base_dir=REPO)
        gateway.app.activate(compile_snapshot(loaded, load_sources(loaded)))
        second = (await client.get("/api/openapi.json")).json()
    assert "/v1/books:search" in second["paths"]


async def test_the_document_goes_through_the_listener_filters() -> None:
    cors = "[{name: cors, config: {allow_origins: ['https://docs.example']}}]"
    gateway = InProcessGateway(config("openapi: {}", BOOKSTORE, cors), no_call)
    async with gateway.client() as client:
        response = await client.get("/openapi.json", headers={"origin": "https://docs.example"})
        page = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://docs.example"
    assert page.status_code == 200
    assert "/openapi.json" in page.text
