"""Real Connect clients through meshgate to the grpcio echo backend: connect-python
(``connectrpc`` on PyPI, in the test extra) and Connect-ES for Node (npm
``@connectrpc/connect-node``), in each protocol they speak (Connect, gRPC-Web,
gRPC over HTTP/2), each codec (proto, JSON; connect-python) and HTTP version
(Node), with connect-python's default gzip request compression."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pyqwest
import pytest
from connectrpc.client import ConnectClientSync
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo
from connectrpc.protocol import ProtocolType

from tests.support.gateway import run_gateway
from tests.support.net import free_port
from tests.support.node_client import run_node_client
from tests.support.processes import python_module, running
from tests.support.protos import echo_descriptor_set, load_pool, message_class

pytestmark = pytest.mark.integration

SERVICE = "meshgate.test.v1.EchoService"
POOL = load_pool(echo_descriptor_set())
EchoRequest = message_class(POOL, "meshgate.test.v1.EchoRequest")
EchoReply = message_class(POOL, "meshgate.test.v1.EchoReply")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    config = {
        "descriptors": [{"file": str(echo_descriptor_set())}],
        "listeners": [
            {
                "name": "rpc",
                "protocol": "grpc",
                "routes": [{"match": {"prefix": f"/{SERVICE}/"}, "cluster": "echo"}],
            }
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": f"127.0.0.1:{port}"}]}],
    }
    with (
        running(python_module("tests.support.backend", "--port", str(port)), "READY"),
        run_gateway(
            config, tmp_path_factory.mktemp("connect-client"), env=dict(os.environ)
        ) as gateway,
    ):
        yield gateway.url


def method(name: str) -> Any:
    level = IdempotencyLevel.NO_SIDE_EFFECTS if name == "Echo" else IdempotencyLevel.UNKNOWN
    return MethodInfo(
        name=name,
        service_name=SERVICE,
        input=EchoRequest,
        output=EchoReply,
        idempotency_level=level,
    )


def client(url: str, protocol: str, json: bool) -> Any:
    kind = {"connect": ProtocolType.CONNECT, "grpc-web": ProtocolType.GRPC_WEB}
    if protocol == "grpc":
        # gRPC needs HTTP/2: prior knowledge over cleartext.
        transport = pyqwest.SyncHTTPTransport(http_version=pyqwest.HTTPVersion.HTTP2)
        return ConnectClientSync(
            url,
            protocol=ProtocolType.GRPC,
            proto_json=json,
            http_client=pyqwest.SyncClient(transport),
            timeout_ms=30_000,
        )
    return ConnectClientSync(url, protocol=kind[protocol], proto_json=json, timeout_ms=30_000)


@pytest.mark.parametrize("json", [False, True], ids=["proto", "json"])
@pytest.mark.parametrize("protocol", ["connect", "grpc-web", "grpc"])
def test_unary_streaming_and_errors(url: str, protocol: str, json: bool) -> None:
    rpc = client(url, protocol, json)
    reply = rpc.execute_unary(request=EchoRequest(message="hi", tags=["a"]), method=method("Echo"))
    assert reply.request.message == "hi" and list(reply.request.tags) == ["a"]
    streamed = rpc.execute_server_stream(
        request=EchoRequest(message="s", tags=["1", "2"]), method=method("ServerStream")
    )
    assert [r.request.message for r in streamed] == ["s#0", "s#1"]
    with pytest.raises(ConnectError) as failed:
        rpc.execute_unary(
            request=EchoRequest(fail_code=7, fail_message="not yours"), method=method("Echo")
        )
    assert failed.value.code == Code.PERMISSION_DENIED and failed.value.message == "not yours"


def test_connect_get(url: str) -> None:
    for json in (False, True):
        reply = client(url, "connect", json).execute_unary(
            request=EchoRequest(message="got"), method=method("Echo"), use_get=True
        )
        assert reply.request.message == "got"


@pytest.mark.parametrize(
    ("protocol", "http_version"),
    [("connect", "1.1"), ("grpc-web", "1.1"), ("connect", "2"), ("grpc-web", "2"), ("grpc", "2")],
)
def test_the_connect_es_node_client(url: str, protocol: str, http_version: str) -> None:
    result = run_node_client(echo_descriptor_set(), url, protocol, http_version)
    assert result == {
        "unary": "node",
        "stream": ["s#0", "s#1", "s#2"],
        "error": {"code": 7, "message": "not yours"},  # PERMISSION_DENIED
    }
