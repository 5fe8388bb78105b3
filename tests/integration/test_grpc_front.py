"""gRPC-Web and Connect through a real meshgate process (HTTP/1.1, uvicorn) to
the tests' grpcio echo backend, checked byte for byte against the specs:
grpc/doc/PROTOCOL-WEB.md and connectrpc.com/docs/protocol.

One ``protocol: grpc`` listener (every route passthrough, no filters) and one
``http`` listener whose route opts in with ``grpc: {}`` behind the cors and
api_key filters.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import python_module, running
from tests.support.protos import echo_descriptor_set, load_pool, message_class

pytestmark = pytest.mark.integration

SERVICE = "meshgate.test.v1.EchoService"
ECHO = f"/{SERVICE}/Echo"
STREAM = f"/{SERVICE}/ServerStream"
API_KEY = "grpc-front-key"
ORIGIN = "https://app.example"
POOL = load_pool(echo_descriptor_set())
EchoRequest = message_class(POOL, "meshgate.test.v1.EchoRequest")
EchoReply = message_class(POOL, "meshgate.test.v1.EchoReply")


def frame(payload: bytes, flags: int = 0) -> bytes:
    return bytes((flags,)) + len(payload).to_bytes(4, "big") + payload


def frames(body: bytes) -> list[tuple[int, bytes]]:
    out = []
    while body:
        length = int.from_bytes(body[1:5], "big")
        out.append((body[0], body[5 : 5 + length]))
        body = body[5 + length :]
    return out


def text_frames(body: bytes) -> list[tuple[int, bytes]]:
    """grpc-web-text: padded base64 chunks, concatenated."""
    decoded = b""
    for end in range(4, len(body) + 1, 4):
        decoded += base64.b64decode(body[end - 4 : end])
    return frames(decoded)


def proto(**fields: Any) -> bytes:
    data: bytes = EchoRequest(**fields).SerializeToString()
    return data


def reply(payload: bytes) -> Message:
    return EchoReply.FromString(payload)


@dataclass
class Gateways:
    rpc: RunningGateway
    web_url: str


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateways]:
    backend_port = free_port()
    web_address = f"127.0.0.1:{free_port()}"
    config = {
        "descriptors": [{"file": str(echo_descriptor_set())}],
        "listeners": [
            {
                "name": "rpc",
                "protocol": "grpc",
                "routes": [{"match": {"prefix": f"/{SERVICE}/"}, "cluster": "echo"}],
            },
            {
                "name": "web",
                "address": web_address,
                "filters": [
                    {
                        "name": "cors",
                        "config": {
                            "allow_origins": [ORIGIN],
                            "allow_methods": ["POST", "GET"],
                            "allow_headers": [
                                "content-type",
                                "x-grpc-web",
                                "x-user-agent",
                                "grpc-timeout",
                                "connect-protocol-version",
                                "connect-timeout-ms",
                                "x-api-key",
                            ],
                            "expose_headers": ["grpc-status", "grpc-message"],
                        },
                    },
                    {"name": "api_key", "config": {"keys_env": "MESHGATE_GRPC_FRONT_KEYS"}},
                ],
                "routes": [{"match": {"prefix": "/"}, "grpc": {}, "cluster": "echo"}],
            },
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": f"127.0.0.1:{backend_port}"}]}],
    }
    env = {**os.environ, "MESHGATE_GRPC_FRONT_KEYS": API_KEY}
    with (
        running(
            python_module("tests.support.backend", "--port", str(backend_port), "--name", "b1"),
            "READY",
        ),
        run_gateway(config, tmp_path_factory.mktemp("grpc-front"), env=env) as gateway,
    ):
        yield Gateways(gateway, f"http://{web_address}")


@pytest.fixture
def http(gateways: Gateways) -> Iterator[httpx.Client]:
    with gateways.rpc.client() as client:
        yield client


GRPC_WEB = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
GRPC_WEB_TEXT = {"content-type": "application/grpc-web-text", "x-grpc-web": "1"}


def test_grpc_web_unary_reply_then_the_trailers_frame(http: httpx.Client) -> None:
    body = frame(proto(message="hi", reply_trailers={"x-t": "1"}, reply_headers={"x-h": "2"}))
    response = http.post(ECHO, content=body, headers=GRPC_WEB)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/grpc-web+proto"
    assert response.headers["x-h"] == "2"  # initial metadata as headers
    [(flags, message), trailers] = frames(response.content)
    assert flags == 0 and reply(message).request.message == "hi"
    assert trailers == (0x80, b"grpc-status: 0\r\nx-t: 1\r\n")
    # The trailers frame is the body's last 5 + 24 bytes, exactly.
    assert response.content.endswith(b"\x80\x00\x00\x00\x18grpc-status: 0\r\nx-t: 1\r\n")


def test_grpc_web_text_unary_and_server_streaming(http: httpx.Client) -> None:
    body = base64.b64encode(frame(proto(message="t")))
    unary = http.post(ECHO, content=body, headers=GRPC_WEB_TEXT)
    assert unary.headers["content-type"] == "application/grpc-web-text+proto"
    [(_, message), trailers] = text_frames(unary.content)
    assert reply(message).request.message == "t" and trailers == (0x80, b"grpc-status: 0\r\n")
    # The request in two base64 chunks, each padded, sent as one body.
    raw = frame(proto(message="s", tags=["a", "b", "c"]))
    chunked = base64.b64encode(raw[:4]) + base64.b64encode(raw[4:])
    streamed = http.post(STREAM, content=chunked, headers=GRPC_WEB_TEXT)
    *messages, last = text_frames(streamed.content)
    assert [reply(m).request.message for _, m in messages] == ["s#0", "s#1", "s#2"]
    assert last == (0x80, b"grpc-status: 0\r\n")


def test_grpc_web_failure_is_a_status_in_the_trailers_frame(http: httpx.Client) -> None:
    body = frame(proto(fail_code=5, fail_message="no such book", fail_with_details=True))
    response = http.post(ECHO, content=body, headers=GRPC_WEB)
    [(flags, block)] = frames(response.content)
    assert flags == 0x80 and response.status_code == 200
    fields = dict(line.split(": ", 1) for line in block.decode().split("\r\n") if line)
    assert fields["grpc-status"] == "5" and fields["grpc-message"] == "no such book"
    details = status_pb2.Status.FromString(base64.b64decode(fields["grpc-status-details-bin"]))
    assert details.code == 5 and details.details[0].Is(error_details_pb2.BadRequest.DESCRIPTOR)


def test_grpc_web_request_without_a_route_gets_unimplemented(http: httpx.Client) -> None:
    response = http.post("/other.v1.Nothing/Here", content=frame(b""), headers=GRPC_WEB)
    assert response.status_code == 200
    assert response.headers["grpc-status"] == "12"  # trailers-only, in the headers


CONNECT_JSON = {"content-type": "application/json", "connect-protocol-version": "1"}


def test_connect_unary_json_proto_and_get(http: httpx.Client) -> None:
    posted = http.post(
        ECHO, json={"message": "j", "replyTrailers": {"x-t": "1"}}, headers=CONNECT_JSON
    )
    assert posted.status_code == 200 and posted.headers["content-type"] == "application/json"
    assert posted.json()["request"]["message"] == "j"
    assert posted.headers["trailer-x-t"] == "1"
    binary = http.post(
        ECHO, content=proto(message="p"), headers={"content-type": "application/proto"}
    )
    assert binary.headers["content-type"] == "application/proto"
    assert reply(binary.content).request.message == "p"
    as_json = http.get(ECHO, params={"encoding": "json", "message": '{"message":"g"}'})
    assert as_json.json()["request"]["message"] == "g"
    encoded = base64.urlsafe_b64encode(proto(message="g2")).rstrip(b"=").decode()
    as_proto = http.get(
        ECHO, params={"encoding": "proto", "base64": "1", "message": encoded, "connect": "v1"}
    )
    assert reply(as_proto.content).request.message == "g2"


def test_connect_unary_on_a_streaming_method_is_unimplemented(http: httpx.Client) -> None:
    response = http.post(STREAM, json={"message": "many"}, headers=CONNECT_JSON)
    assert response.status_code == 501 and response.json()["code"] == "unimplemented"


def test_connect_unary_error_json_and_http_status(http: httpx.Client) -> None:
    failed = http.post(
        ECHO,
        json={"failCode": 5, "failMessage": "gone", "failWithDetails": True},
        headers=CONNECT_JSON,
    )
    assert failed.status_code == 404
    error = failed.json()
    assert error["code"] == "not_found" and error["message"] == "gone"
    [detail] = error["details"]
    assert detail["type"] == "google.rpc.BadRequest"
    value = base64.b64decode(detail["value"] + "=" * (-len(detail["value"]) % 4))
    assert error_details_pb2.BadRequest.FromString(value).field_violations[0].field == "message"
    bad = http.post(ECHO, content=b"{not json", headers=CONNECT_JSON)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"


def test_a_connect_request_without_a_route_is_unimplemented(http: httpx.Client) -> None:
    response = http.post("/other.v1.Unknown/Call", json={}, headers=CONNECT_JSON)
    assert response.status_code == 501  # Connect's HTTP status for unimplemented
    assert response.json()["code"] == "unimplemented"
    assert "no route" in response.json()["message"]


def test_connect_json_for_a_service_without_descriptors(gateways: Gateways) -> None:
    with httpx.Client(base_url=gateways.web_url, timeout=10.0) as web:
        response = web.post(
            "/other.v1.Unknown/Call",
            json={},
            headers={**CONNECT_JSON, "x-api-key": API_KEY},
        )
    assert response.status_code == 501
    error = response.json()
    assert error["code"] == "unimplemented" and "no descriptors" in error["message"]


def test_connect_server_streaming_envelopes_and_end_of_stream(http: httpx.Client) -> None:
    body = frame(json.dumps({"message": "s", "tags": ["x", "y"]}).encode())
    response = http.post(STREAM, content=body, headers={"content-type": "application/connect+json"})
    assert response.headers["content-type"] == "application/connect+json"
    *messages, (flags, end) = frames(response.content)
    assert [json.loads(m)["request"]["message"] for _, m in messages] == ["s#0", "s#1"]
    assert flags == 0x02 and json.loads(end) == {}
    failing = frame(proto(message="f", fail_code=14, fail_message="mid-stream"))
    response = http.post(
        STREAM, content=failing, headers={"content-type": "application/connect+proto"}
    )
    *messages, (flags, end) = frames(response.content)
    assert response.status_code == 200 and len(messages) == 3 and flags == 0x02
    assert json.loads(end)["error"] == {"code": "unavailable", "message": "mid-stream"}


def test_a_filter_refusal_is_a_status_in_each_protocol(gateways: Gateways) -> None:
    with httpx.Client(base_url=gateways.web_url, timeout=10.0) as web:
        grpc_web = web.post(ECHO, content=frame(proto(message="x")), headers=GRPC_WEB)
        connect = web.post(ECHO, json={"message": "x"}, headers=CONNECT_JSON)
        stream = web.post(
            STREAM, content=frame(b"{}"), headers={"content-type": "application/connect+json"}
        )
        allowed = web.post(
            ECHO, content=frame(proto(message="ok")), headers={**GRPC_WEB, "x-api-key": API_KEY}
        )
    assert grpc_web.status_code == 200 and grpc_web.headers["grpc-status"] == "16"
    assert connect.status_code == 401 and connect.json()["code"] == "unauthenticated"
    [(flags, end)] = frames(stream.content)
    assert flags == 0x02 and json.loads(end)["error"]["code"] == "unauthenticated"
    assert frames(allowed.content)[-1] == (0x80, b"grpc-status: 0\r\n")


def test_cors_preflight_and_exposed_grpc_web_headers(gateways: Gateways) -> None:
    with httpx.Client(base_url=gateways.web_url, timeout=10.0) as web:
        preflight = web.options(
            ECHO,
            headers={
                "origin": ORIGIN,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,x-grpc-web,x-user-agent",
            },
        )
        actual = web.post(
            ECHO,
            content=frame(proto(message="c")),
            headers={**GRPC_WEB, "origin": ORIGIN, "x-api-key": API_KEY},
        )
    assert preflight.status_code == 204
    allowed = preflight.headers["access-control-allow-headers"]
    assert {"x-grpc-web", "x-user-agent", "grpc-timeout"} <= set(allowed.split(", "))
    assert actual.headers["access-control-allow-origin"] == ORIGIN
    exposed = actual.headers["access-control-expose-headers"]
    assert {"grpc-status", "grpc-message"} <= set(exposed.split(", "))
