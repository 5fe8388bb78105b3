"""The same requests to Envoy's grpc_json_transcoder and to meshgate.

Both sit in front of the same backend with the same descriptor set. For each
case the HTTP status must be equal, and where both answer JSON, the JSON must
be equal too (``details: []``, which meshgate always writes, counts as absent).
Deliberate differences are listed in DIFFERENCES with their reason; the README
repeats them for users.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.envoy import (
    echo_descriptor_set_with_error_details,
    run_envoy,
    transcoder_config,
)
from tests.support.gateway import run_gateway
from tests.support.net import free_port

pytestmark = pytest.mark.integration

SERVICE = "meshgate.test.v1.EchoService"
ECHO = f"/{SERVICE}/Echo"


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes = b"{}"
    path: str = ECHO
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)


def json_case(name: str, body: Any, **kwargs: Any) -> Case:
    return Case(name, orjson.dumps(body), **kwargs)


SAME = [
    json_case(
        "full-message",
        {
            "message": "h\u00e9llo \U0001f600",
            "big": "-9007199254740993",
            "ubig": "18446744073709551615",
            "tags": ["a", "", "c"],
            "nested": {"name": "n", "count": -3, "children": [{"name": "c", "children": [{}]}]},
            "labels": {"k": "v", "": "empty"},
            "data": "AAECAwQ=",
            "kind": "KIND_MAGAZINE",
            "when": "2024-02-29T23:59:59.123456789Z",
            "ttl": "-1.000000001s",
            "maybe": 0,
            "extra": {"a": [1, 2.5, "x", None, True, {"b": {}}]},
            "ratio": 1e-300,
            "flag": True,
        },
    ),
    json_case("proto-field-names", {"snake_case_field": "x", "fail_code": 0}),
    json_case("int64-as-number", {"big": 123}),
    json_case("enum-as-number", {"kind": 2}),
    json_case("null-field", {"message": None}),
    json_case("special-doubles", {"ratio": "Infinity"}),
    json_case("negative-zero-double", {"ratio": -0.0}),
    json_case("timestamp-offset", {"when": "2024-01-01T10:00:00+02:00"}),
    Case("empty-body", b""),
    Case("ping", b"{}", path=f"/{SERVICE}/Ping"),
    *(
        json_case(f"grpc-code-{code}", {"failCode": code, "failMessage": f"boom {code}"})
        for code in range(1, 17)
    ),
    json_case(
        "grpc-message-escaping", {"failCode": 3, "failMessage": 'h\u00e9llo 100% "q" <b>&\'\n'}
    ),
    json_case("status-details", {"failCode": 3, "failMessage": "bad", "failWithDetails": True}),
    json_case("route-timeout", {"delaySeconds": 3}),
    json_case("bad-int64", {"big": "abc"}),
    json_case("fractional-int64", {"big": 1.5}),
    json_case("int32-overflow", {"failCode": 99999999999}),
    json_case("bad-base64", {"data": "!!!"}),
    json_case("unknown-enum", {"kind": "KIND_NOPE"}),
    json_case("bad-timestamp", {"when": "yesterday"}),
    Case("malformed-json", b"{not json"),
    Case("trailing-garbage", b'{"message":"a"} xx'),
    Case("array-root", b"[1,2]"),
]

# name -> (meshgate status, Envoy status, why meshgate differs)
DIFFERENCES: dict[str, tuple[int, int, str]] = {
    "unknown-field": (
        400,
        200,
        "proto3 JSON rejects unknown fields by default; the route "
        "option ignore_unknown_fields gives Envoy's leniency",
    ),
    "unknown-method": (
        404,
        503,
        "Envoy passes unmatched requests to the backend; meshgate "
        "answers 404 and never sends JSON to a gRPC server",
    ),
    "unknown-service": (404, 503, "as unknown-method"),
    "get-on-method": (405, 503, "as unknown-method, with Allow: POST"),
}
DIFFERENT = [
    json_case("unknown-field", {"nope": 1}),
    json_case("unknown-method", {}, path=f"/{SERVICE}/Nope"),
    json_case("unknown-service", {}, path="/x.Y/Z"),
    Case("get-on-method", b"", method="GET"),
]


@dataclass
class Pair:
    envoy: httpx.Client
    meshgate: httpx.Client


@pytest.fixture(scope="module")
def pair(backend_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    descriptors = echo_descriptor_set_with_error_details()
    envoy = transcoder_config(
        free_port(), free_port(), backend_port, descriptors, [SERVICE], route_timeout=2.0
    )
    config = {
        "descriptors": [{"file": str(descriptors)}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True},
                        "cluster": "echo",
                        "timeout": "2s",
                    }
                ],
            }
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": f"127.0.0.1:{backend_port}"}]}],
    }
    with (
        run_envoy(envoy) as running_envoy,
        run_gateway(config, tmp_path_factory.mktemp("diff")) as gateway,
        httpx.Client(base_url=running_envoy.listen_url, timeout=10) as envoy_client,
        gateway.client() as meshgate_client,
    ):
        yield Pair(envoy_client, meshgate_client)


def send(client: httpx.Client, case: Case) -> httpx.Response:
    headers = {"content-type": "application/json", **case.headers}
    return client.request(case.method, case.path, content=case.body, headers=headers)


def normalized_json(response: httpx.Response) -> Any:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return None
    body = response.json()
    if isinstance(body, dict) and "code" in body:
        # meshgate's errors name the request ID; Envoy's do not.
        body.pop("request_id", None)
        if body.get("details") == []:
            body = {k: v for k, v in body.items() if k != "details"}
    return body


@pytest.mark.parametrize("case", SAME, ids=lambda c: c.name)
def test_same_answer_as_envoy(pair: Pair, case: Case) -> None:
    envoy = send(pair.envoy, case)
    mine = send(pair.meshgate, case)
    assert mine.status_code == envoy.status_code, (envoy.text, mine.text)
    # meshgate always answers JSON; Envoy's local replies are plain text.
    assert mine.headers["content-type"] == "application/json"
    expected = normalized_json(envoy)
    if expected is not None:
        assert normalized_json(mine) == expected


@pytest.mark.parametrize("case", DIFFERENT, ids=lambda c: c.name)
def test_documented_differences(pair: Pair, case: Case) -> None:
    mine_status, envoy_status, _why = DIFFERENCES[case.name]
    assert send(pair.envoy, case).status_code == envoy_status
    mine = send(pair.meshgate, case)
    assert mine.status_code == mine_status
    assert mine.json()["code"] in (3, 5, 12)


def test_differences_are_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in DIFFERENCES:
        assert f"`{name}`" in readme, f"README must document the difference {name!r}"
