"""The OpenAPI document a listener serves, over the bookstore backend.

Checked three ways: openapi-spec-validator says it is valid OpenAPI 3.1;
its content is what the proto says (bindings, parameters, the proto3 JSON
mapping, comments); and schemathesis calls every operation against the live
gateway and backend, finding no 5xx and no reply outside its schema.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from tests.support.bookstore_backend import EXTRAS_SERVICE, SERVICE
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import REPO, python_module, running

pytestmark = pytest.mark.integration

PROTOS = REPO / "tests" / "protos"
BOOKSTORE_PROTO = PROTOS / "meshgate" / "test" / "v1" / "bookstore.proto"
SCHEMATHESIS_EXAMPLES = 5
SCHEMATHESIS_TIMEOUT = 480


def bookstore_config(backend_port: int) -> dict[str, Any]:
    return {
        "descriptors": [{"proto": str(BOOKSTORE_PROTO), "include": [str(PROTOS)]}],
        "listeners": [
            {
                "name": "public",
                "openapi": {"title": "bookstore"},
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "transcode": {"services": [SERVICE, EXTRAS_SERVICE], "auto_mapping": True},
                        "cluster": "bookstore",
                        "timeout": "5s",
                    }
                ],
            }
        ],
        "clusters": [
            {"name": "bookstore", "endpoints": [{"address": f"127.0.0.1:{backend_port}"}]}
        ],
    }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    port = free_port()
    with (
        running(python_module("tests.support.bookstore_backend", "--port", str(port)), "READY"),
        run_gateway(bookstore_config(port), tmp_path_factory.mktemp("openapi")) as running_gateway,
    ):
        yield running_gateway


@pytest.fixture(scope="module")
def document(gateway: RunningGateway) -> dict[str, Any]:
    reply = httpx.get(f"{gateway.url}/openapi.json", timeout=30)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    parsed: dict[str, Any] = reply.json()
    return parsed


def operation(document: dict[str, Any], verb: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][verb]
    return found


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_binding_and_auto_mapped_method_is_an_operation(document: dict[str, Any]) -> None:
    operations = {(verb, path) for path, item in document["paths"].items() for verb in item}
    expected_rest = {
        ("get", "/v1/shelves/{shelf}"),
        ("post", "/v1/shelves"),
        ("post", "/v1/shelves/{shelf}:archive"),
        ("get", "/v1/shelves/{shelf}/books"),
        ("get", "/v1/shelves/{shelf}:export"),
        ("get", "/v1/shelves/{shelf}/books/{book}"),
        ("post", "/v1/shelves/{shelf}/books"),
        ("patch", "/v1/{book_name}"),
        ("delete", "/v1/shelves/{shelf}/books/{book}"),
        ("get", "/v1/files/{path}"),
        ("get", "/v1/shelves/{shelf}/books:stream"),
        ("get", "/v1/shelves/{shelf}/cover"),
        ("post", "/v1/shelves/{shelf}/cover"),
        ("get", "/v1/books:search"),
    }
    assert expected_rest <= operations
    assert ("post", f"/{SERVICE}/GetShelf") in operations
    assert ("post", f"/{EXTRAS_SERVICE}/SearchBooks") in operations
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_parameters_come_from_the_template_and_the_request_fields(
    document: dict[str, Any],
) -> None:
    get_book = operation(document, "get", "/v1/shelves/{shelf}/books/{book}")
    by_name = {p["name"]: p for p in get_book["parameters"]}
    assert by_name["shelf"]["in"] == "path"
    assert by_name["shelf"]["schema"]["type"] == "string"  # int64 as a string
    list_books = operation(document, "get", "/v1/shelves/{shelf}/books")
    query = {p["name"]: p for p in list_books["parameters"] if p["in"] == "query"}
    assert query["ids"]["schema"] == {
        "type": "array",
        "items": {"type": "string", "pattern": "^-?[0-9]+$", "format": "int64"},
    }
    assert "shelf" not in query  # bound by the path
    update = operation(document, "patch", "/v1/{book_name}")
    [name] = [p for p in update["parameters"] if p["in"] == "path"]
    assert "book.name" in name["description"]
    get_file = operation(document, "get", "/v1/files/{path}")
    [path] = [p for p in get_file["parameters"] if p["in"] == "path"]
    assert "slashes" in path["description"]  # {path=**}


def test_bodies_and_replies_follow_the_http_rule(document: dict[str, Any]) -> None:
    create = operation(document, "post", "/v1/shelves")
    body_schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/meshgate.test.v1.Shelf"}  # body: "shelf"
    export = operation(document, "get", "/v1/shelves/{shelf}:export")
    assert "*/*" in export["responses"]["200"]["content"]  # response_body: an HttpBody
    cover = operation(document, "get", "/v1/shelves/{shelf}/cover")
    assert cover["responses"]["200"]["content"] == {
        "*/*": {"schema": {"type": "string", "format": "binary"}}
    }
    stream = operation(document, "get", "/v1/shelves/{shelf}/books:stream")
    streamed = stream["responses"]["200"]["content"]["application/json"]["schema"]
    assert streamed["type"] == "array"
    error = create["responses"]["default"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/google.rpc.Status"}
    search = operation(document, "get", "/v1/books:search")
    reply = search["responses"]["200"]["content"]["application/json"]["schema"]
    assert reply["type"] == "array"  # response_body: "books"


def test_messages_use_the_proto3_json_mapping(document: dict[str, Any]) -> None:
    book = schema(document, "meshgate.test.v1.Book")["properties"]
    assert book["copiesSold"]["type"] == "string"  # uint64
    assert book["pages"]["type"] == "integer"
    assert book["genre"]["enum"][0] == "GENRE_UNSPECIFIED"
    assert book["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert book["published"] == {"$ref": "#/components/schemas/google.protobuf.Timestamp"}
    assert schema(document, "google.protobuf.Timestamp")["format"] == "date-time"
    assert book["isbnDigest"]["contentEncoding"] == "base64"


def test_descriptions_come_from_proto_comments(document: dict[str, Any]) -> None:
    stream_request = schema(document, "meshgate.test.v1.StreamBooksRequest")["properties"]
    assert stream_request["count"]["description"] == "How many books to stream (default 3)."


def test_the_offline_document_is_the_served_one(
    gateway: RunningGateway, document: dict[str, Any]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "openapi", "-c", str(gateway.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    offline = json.loads(result.stdout)
    assert offline["servers"] == [{"url": gateway.url}]
    assert {**offline, "servers": None, "info": None} == {
        **document,
        "servers": None,
        "info": None,
    }


def test_the_browsable_page_lists_the_operations(gateway: RunningGateway) -> None:
    page = httpx.get(f"{gateway.url}/docs", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text


def test_schemathesis_finds_no_server_error_and_no_reply_outside_its_schema(
    gateway: RunningGateway, document: dict[str, Any], tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{gateway.url}/openapi.json",
            "--url", gateway.url,
            "--checks", "not_a_server_error,response_schema_conformance,"
            "status_code_conformance,content_type_conformance",
            "--max-examples", str(SCHEMATHESIS_EXAMPLES),
            "--generation-deterministic",
            "--request-timeout", "10",
            "--report", "junit", "--report-junit-path", str(junit),
        ],
        capture_output=True,
        text=True,
        timeout=SCHEMATHESIS_TIMEOUT,
        check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:]
    operations = {
        f"{verb.upper()} {path}" for path, item in document["paths"].items() for verb in item
    }
    called = {case.get("name") for case in ElementTree.parse(junit).getroot().iter("testcase")}
    assert operations <= called, sorted(operations - called)


def test_swagger_ui_shows_every_operation_and_calls_one(
    gateway: RunningGateway, document: dict[str, Any]
) -> None:
    """The page in headless Chromium (Debian's, installed by make peers), driven by
    playwright: Swagger UI loads the document, lists every operation, and its
    "Try it out" reaches the backend through the gateway."""
    from gateway.openapi.serve import ui_assets_present
    from tests.support.toolchain import missing, require_binary

    chromium = require_binary("chromium", "scripts/install_browser.sh installs it")
    if not ui_assets_present():
        missing("Swagger UI is not vendored: run scripts/vendor_swagger_ui.sh")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (the test extra)")
        return
    operations = sum(len(item) for item in document["paths"].values())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(f"{gateway.url}/docs", timeout=30_000)
            page.wait_for_selector(".opblock", timeout=30_000)
            assert page.locator(".opblock").count() == operations
            assert "bookstore" in page.locator(".info .title").inner_text()
            get_shelf = page.locator(".opblock-get").filter(has_text="/v1/shelves/{shelf}").first
            get_shelf.locator(".opblock-summary").click()
            get_shelf.locator("button.try-out__btn").click()
            get_shelf.locator("input[placeholder='shelf']").fill("1")
            get_shelf.locator("button.execute").click()
            status = get_shelf.locator(".live-responses-table .response .response-col_status")
            status.first.wait_for(timeout=30_000)
            assert status.first.inner_text().strip() == "200"
        finally:
            browser.close()
