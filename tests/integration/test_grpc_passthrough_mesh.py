"""gRPC passthrough to an ``xds:///`` cluster: the mesh core's RDS routing
(header match to a subset, weighted split) and fault injection apply to
grpcio clients through meshgate as to REST requests."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.support import xds_builders as b
from tests.support.gateway import run_gateway
from tests.support.net import free_port
from tests.support.processes import echo_backend
from tests.support.protos import echo_descriptor_set, load_pool, message_class
from tests.support.xds_server import XdsServer, serve_service

pytestmark = pytest.mark.integration

HOST, PORT = "echo.default.svc.cluster.local", 50051
ECHO = "/meshgate.test.v1.EchoService/Echo"
POOL = load_pool(echo_descriptor_set())
EchoRequest = message_class(POOL, "meshgate.test.v1.EchoRequest")
EchoReply = message_class(POOL, "meshgate.test.v1.EchoReply")
WAIT_S = 30.0


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    ports = {name: free_port() for name in ("v1", "v2")}
    address = f"127.0.0.1:{free_port()}"
    with echo_backend(ports["v1"], "v1"), echo_backend(ports["v2"], "v2"), XdsServer() as xds:
        service = b.Service(HOST, PORT, {v: [("127.0.0.1", p)] for v, p in ports.items()})
        routes: list[Any] = [
            b.route(
                name="canary",
                headers=[b.header("x-canary", exact="true")],
                cluster=service.cluster("v2"),
            ),
            b.route(
                name="abort",
                headers=[b.header("x-fault", exact="abort")],
                cluster=service.cluster("v1"),
                fault=b.abort(8),
            ),
            b.route(name="split", weights={service.cluster("v1"): 50, service.cluster("v2"): 50}),
        ]
        serve_service(xds, service, *routes)
        tmp = tmp_path_factory.mktemp("passthrough-mesh")
        bootstrap = tmp / "bootstrap.json"
        bootstrap.write_text(json.dumps(xds.bootstrap()))
        config = {
            "listeners": [
                {
                    "name": "rpc",
                    "address": address,
                    "protocol": "grpc",
                    "routes": [{"match": {"prefix": "/"}, "cluster": f"xds:///{HOST}:{PORT}"}],
                }
            ],
            "mesh": {"xds": {"bootstrap": str(bootstrap)}},
        }
        with run_gateway(config, tmp), grpc.insecure_channel(address) as channel:
            yield channel


def served_by(channel: grpc.Channel, **metadata: str) -> str:
    echo = channel.unary_unary(ECHO)
    raw = echo(
        EchoRequest(message="m").SerializeToString(),
        metadata=tuple(metadata.items()),
        timeout=WAIT_S,
    )
    return str(EchoReply.FromString(raw).served_by)


def test_rds_routes_passthrough_calls(channel: grpc.Channel) -> None:
    assert Counter(served_by(channel, **{"x-canary": "true"}) for _ in range(10)) == {"v2": 10}
    split = Counter(served_by(channel) for _ in range(60))
    assert set(split) == {"v1", "v2"}, split


def test_mesh_fault_injection_is_a_grpc_status(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as aborted:
        served_by(channel, **{"x-fault": "abort"})
    assert aborted.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
