"""meshgate as a process, in front of the tests' own grpcio backend."""

from __future__ import annotations

import base64
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.errors import GRPC_TO_HTTP
from tests.support.errors import error_body
from tests.support.gateway import RunningGateway, run_gateway, wait_ready
from tests.support.net import free_port
from tests.support.processes import echo_backend

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"


def gateway_config(echo_set: Path, endpoints: list[str], **route: Any) -> dict[str, Any]:
    transcode = {"auto_mapping": True, **route.pop("transcode", {})}
    return {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    {
                        "name": "rpc",
                        "match": {"prefix": "/"},
                        "transcode": transcode,
                        "cluster": "echo",
                        **route,
                    }
                ],
            }
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": a} for a in endpoints]}],
    }


@pytest.fixture(scope="module")
def gateway(
    echo_set: Path, backend_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    config = gateway_config(
        echo_set, [f"127.0.0.1:{backend_port}"], timeout="2s", max_request_bytes=64 * 1024
    )
    with run_gateway(config, tmp_path_factory.mktemp("gw")) as running:
        yield running


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with gateway.client() as c:
        yield c


def test_unary_call_returns_proto3_json(client: httpx.Client) -> None:
    body = {
        "message": "hi",
        "big": "9007199254740993",
        "tags": ["a", "b"],
        "nested": {"name": "n", "count": 2, "children": [{"name": "c"}]},
        "labels": {"k": "v"},
        "data": base64.b64encode(b"\x00\xff").decode(),
        "kind": "KIND_BOOK",
        "when": "2024-01-02T03:04:05.500Z",
        "ttl": "1.5s",
        "maybe": 7,
        "extra": {"x": [1, "two", None]},
        "ratio": 0.25,
        "flag": True,
        "snake_case_field": "original name accepted",
    }
    response = client.post(ECHO, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    reply = response.json()
    assert reply["servedBy"] == "primary"
    echoed = reply["request"]
    assert echoed["big"] == "9007199254740993"  # int64 stays exact, as a string
    assert echoed["snakeCaseField"] == "original name accepted"  # lowerCamel on output
    assert echoed["when"] == "2024-01-02T03:04:05.500Z"
    assert echoed["ttl"] == "1.500s"
    assert echoed["kind"] == "KIND_BOOK"
    assert echoed["data"] == "AP8="
    assert echoed["extra"] == {"x": [1, "two", None]}
    assert echoed["nested"]["children"] == [{"name": "c"}]


def test_empty_body_is_the_empty_message(client: httpx.Client) -> None:
    response = client.post("/meshgate.test.v1.EchoService/Ping")
    assert response.status_code == 200
    assert response.json() == {}


@pytest.mark.parametrize("code", range(1, 17))
def test_every_grpc_status_maps_to_its_http_status(client: httpx.Client, code: int) -> None:
    response = client.post(ECHO, json={"failCode": code, "failMessage": f"failure {code}"})
    assert response.status_code == GRPC_TO_HTTP[code]
    assert error_body(response) == {"code": code, "message": f"failure {code}", "details": []}


def test_status_ok_maps_to_200(client: httpx.Client) -> None:
    assert GRPC_TO_HTTP[0] == 200
    assert client.post(ECHO, json={"failCode": 0}).status_code == 200


def test_status_details_are_decoded(client: httpx.Client) -> None:
    response = client.post(
        ECHO, json={"failCode": 3, "failMessage": "bad", "failWithDetails": True}
    )
    assert response.status_code == 400
    assert error_body(response) == {
        "code": 3,
        "message": "bad",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "message", "description": "is not acceptable"}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "malformed JSON"),
        (b'{"bogus": 1}', "bogus"),
        (b'{"big": "abc"}', "big"),
        (b'{"tags": "not-a-list"}', "tags"),
        (b'{"kind": "KIND_NOPE"}', "kind"),
        (b"[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    client: httpx.Client, body: bytes, needle: str
) -> None:
    response = client.post(ECHO, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == 3
    assert needle in error["message"]


def test_body_over_the_limit_is_413(client: httpx.Client) -> None:
    response = client.post(ECHO, json={"message": "x" * (65 * 1024)})
    assert response.status_code == 413
    assert response.json()["code"] == 8


def test_unknown_service_or_method_is_404(client: httpx.Client) -> None:
    for path in ("/meshgate.test.v1.EchoService/Nope", "/nope.Service/Echo", "/"):
        response = client.post(path, json={})
        assert response.status_code == 404, path
        assert response.json()["code"] == 5


def test_wrong_http_method_is_405_with_allow(client: httpx.Client) -> None:
    response = client.get(ECHO)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_request_headers_reach_the_backend_as_metadata(client: httpx.Client) -> None:
    binary = base64.b64encode(b"\x01\x02\xfe").decode().rstrip("=")
    response = client.post(
        ECHO,
        json={"echoMetadata": True},
        headers={
            "x-tenant": "acme",
            "x-trace-bin": binary,
            "connection": "keep-alive",
            "grpc-foo": "reserved",
            "user-agent": "curl/8",
        },
    )
    metadata = response.json()["metadata"]
    assert metadata["x-tenant"] == "acme"
    assert metadata["x-trace-bin"] == "0102fe"  # the backend shows bytes as hex
    for dropped in ("connection", "grpc-foo", "host", "content-length"):
        assert dropped not in metadata
    assert "curl/8" not in metadata.get("user-agent", "")


def test_bad_binary_header_is_400(client: httpx.Client) -> None:
    response = client.post(ECHO, json={}, headers={"x-trace-bin": "***"})
    assert response.status_code == 400
    assert "x-trace-bin" in response.json()["message"]


def test_response_metadata_comes_back_as_headers(client: httpx.Client) -> None:
    response = client.post(
        ECHO, json={"replyHeaders": {"x-initial": "one"}, "replyTrailers": {"x-trailing": "two"}}
    )
    assert response.status_code == 200
    assert response.headers["x-initial"] == "one"
    assert response.headers["x-trailing"] == "two"


def test_error_metadata_comes_back_as_headers(client: httpx.Client) -> None:
    response = client.post(ECHO, json={"failCode": 7, "replyTrailers": {"x-why": "policy"}})
    assert response.status_code == 403
    assert response.headers["x-why"] == "policy"


def test_route_timeout_becomes_the_deadline(client: httpx.Client) -> None:
    response = client.post(ECHO, json={"delaySeconds": 3})
    assert response.status_code == 504
    assert response.json()["code"] == 4


@pytest.mark.parametrize("header", [{"grpc-timeout": "200m"}, {"x-request-timeout": "200"}])
def test_client_timeout_shortens_the_deadline(client: httpx.Client, header: dict[str, str]) -> None:
    started = time.monotonic()
    response = client.post(ECHO, json={"delaySeconds": 1.5}, headers=header)
    assert response.status_code == 504
    assert time.monotonic() - started < 1.4


def test_client_timeout_never_extends_the_route_deadline(client: httpx.Client) -> None:
    response = client.post(ECHO, json={"delaySeconds": 2.5}, headers={"grpc-timeout": "10S"})
    assert response.status_code == 504


def test_admin_ready_and_config_dump(gateway: RunningGateway) -> None:
    assert httpx.get(f"{gateway.admin_url}/ready").status_code == 200
    dump = httpx.get(f"{gateway.admin_url}/config_dump").json()
    assert dump["config"]["clusters"][0]["name"] == "echo"
    assert dump["config"]["listeners"][0]["routes"][0]["timeout"] == 2.0
    assert dump["services"] == ["meshgate.test.v1.EchoService"]
    clusters = httpx.get(f"{gateway.admin_url}/clusters").json()
    assert clusters["static"]["echo"]["endpoints"][0]["health"] == "unknown"
    assert clusters["xds"] == {}


def test_metrics_count_requests_by_listener_route_and_status(
    client: httpx.Client, gateway: RunningGateway
) -> None:
    client.post(ECHO, json={"failCode": 7})
    text = httpx.get(f"{gateway.admin_url}/metrics").text
    assert (
        'meshgate_http_server_requests_total{listener="public",route="rpc",status_code="403"}'
        in text
    )
    assert (
        "meshgate_http_server_request_duration_seconds_count"
        '{listener="public",route="rpc",status_class="4xx"}' in text
    )
    # One worker: the state families are read in process.
    assert 'meshgate_http_server_active_requests{listener="public"} 0.0' in text
    assert 'meshgate_process_open_fds{worker="0"}' in text
    assert "meshgate_config_info{hash=" in text


def test_unreachable_backend_is_503(echo_set: Path, tmp_path: Path) -> None:
    config = gateway_config(echo_set, [f"127.0.0.1:{free_port()}"], timeout="2s")
    with run_gateway(config, tmp_path) as gw, gw.client() as client:
        response = client.post(ECHO, json={"message": "anyone?"})
    assert response.status_code == 503
    assert response.json()["code"] == 14


def test_round_robin_spreads_by_weight(echo_set: Path, tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    config = gateway_config(echo_set, [])
    config["clusters"][0]["endpoints"] = [
        {"address": f"127.0.0.1:{ports[0]}", "weight": 3},
        {"address": f"127.0.0.1:{ports[1]}", "weight": 1},
    ]
    with (
        echo_backend(ports[0], "heavy"),
        echo_backend(ports[1], "light"),
        run_gateway(config, tmp_path) as gw,
        gw.client() as client,
    ):
        served = [client.post(ECHO, json={}).json()["servedBy"] for _ in range(40)]
    assert served.count("heavy") == 30
    assert served.count("light") == 10


def test_retry_moves_past_a_dead_endpoint(echo_set: Path, tmp_path: Path) -> None:
    live = free_port()
    config = gateway_config(
        echo_set,
        [f"127.0.0.1:{free_port()}", f"127.0.0.1:{live}"],
        retry={"attempts": 2, "on": ["unavailable"]},
    )
    with echo_backend(live, "live"), run_gateway(config, tmp_path) as gw, gw.client() as client:
        results = [client.post(ECHO, json={}) for _ in range(6)]
    assert [r.status_code for r in results] == [200] * 6
    assert {r.json()["servedBy"] for r in results} == {"live"}


def test_no_retry_without_a_policy(echo_set: Path, tmp_path: Path) -> None:
    live = free_port()
    config = gateway_config(echo_set, [f"127.0.0.1:{free_port()}", f"127.0.0.1:{live}"])
    with echo_backend(live, "live"), run_gateway(config, tmp_path) as gw, gw.client() as client:
        statuses = sorted(client.post(ECHO, json={}).status_code for _ in range(6))
    assert statuses == [200, 200, 200, 503, 503, 503]


def test_ignore_unknown_fields_route_option(
    echo_set: Path, backend_port: int, tmp_path: Path
) -> None:
    config = gateway_config(
        echo_set,
        [f"127.0.0.1:{backend_port}"],
        transcode={"ignore_unknown_fields": True, "preserve_proto_field_names": True},
    )
    with run_gateway(config, tmp_path) as gw, gw.client() as client:
        response = client.post(ECHO, json={"message": "m", "bogus": 1})
    assert response.status_code == 200
    assert response.json()["served_by"] == "primary"


def test_several_workers_share_the_port(echo_set: Path, backend_port: int, tmp_path: Path) -> None:
    config = gateway_config(echo_set, [f"127.0.0.1:{backend_port}"])
    with run_gateway(config, tmp_path, workers=2) as gw:
        for _ in range(40):
            # A fresh connection each time, so the kernel can pick either worker.
            with gw.client() as client:
                assert client.post(ECHO, json={"echoMetadata": True}).status_code == 200
        # The admin answers for both workers (gateway.admin_peers).
        dump = httpx.get(f"{gw.admin_url}/config_dump").json()
        assert len({w["pid"] for w in dump["workers"]}) == 2
        # The counters of both workers add up, whichever worker is scraped.
        text = httpx.get(f"{gw.admin_url}/metrics").text
        assert (
            'meshgate_http_server_requests_total{listener="public",route="rpc",status_code="200"}'
            " 40.0" in text
        )


def test_reload_swaps_config_and_keeps_last_good(
    echo_set: Path, backend_port: int, tmp_path: Path
) -> None:
    config = gateway_config(echo_set, [f"127.0.0.1:{backend_port}"])
    with run_gateway(config, tmp_path) as gw, gw.client() as client:
        assert client.post(ECHO, json={}).status_code == 200
        # A broken file is rejected; the running config keeps serving.
        gw.config_path.write_text("listeners: [oops")
        os.kill(gw.process.proc.pid, signal.SIGHUP)
        time.sleep(0.5)
        assert client.post(ECHO, json={}).status_code == 200
        assert "reload rejected" in gw.process.output
        # A good file takes effect: the route now only matches /other/.
        config["listeners"][0]["address"] = gw.url.removeprefix("http://")
        config["admin"] = {"address": gw.admin_url.removeprefix("http://")}
        config["listeners"][0]["routes"][0]["match"] = {"prefix": "/other/"}
        gw.config_path.write_text(yaml.safe_dump(config))
        os.kill(gw.process.proc.pid, signal.SIGHUP)
        wait_ready(gw.admin_url, gw.process)
        deadline = time.monotonic() + 5
        while client.post(ECHO, json={}).status_code != 404:
            assert time.monotonic() < deadline, gw.process.output
            time.sleep(0.1)
