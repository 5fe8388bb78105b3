"""gRPC and Triple clients through meshgate's passthrough to the Java Dubbo and
dubbo-go Triple servers (tests/peers): Triple's gRPC mode is gRPC on the wire,
the client's tri-* headers go along, and a Triple cluster's group and version
are added when the client sends none. The Triple consumer here is the Apache Dubbo
Python SDK (tests/peers/python_dubbo/client.py); the Java and Go peers' own
Triple clients go through meshgate in test_triple_clients.py."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.gateway import run_gateway
from tests.support.net import free_port
from tests.support.peers import (
    PROTO_DIR,
    REPO,
    peer_or_skip,
    python_peer_interpreter,
    python_peer_stubs,
)
from tests.support.protos import compile_descriptor_set, load_pool, message_class

pytestmark = pytest.mark.integration

GREETER = "meshgate.interop.v1.Greeter"
WAIT_S = 60.0


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    out = tmp_path_factory.mktemp("greeter") / "greeter.pb"
    pool = load_pool(compile_descriptor_set("greeter.proto", out, root=PROTO_DIR))
    return (
        message_class(pool, "meshgate.interop.v1.HelloRequest"),
        message_class(pool, "meshgate.interop.v1.HelloReply"),
    )


@pytest.fixture(scope="module", params=["java", "go"])
def channel(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, grpc.Channel, str]]:
    with peer_or_skip(request.param) as peer:
        address = f"127.0.0.1:{free_port()}"
        config = {
            "listeners": [
                {
                    "name": "rpc",
                    "address": address,
                    "protocol": "grpc",
                    "routes": [{"match": {"prefix": f"/{GREETER}/"}, "cluster": "greeter"}],
                }
            ],
            "clusters": [
                {
                    "name": "greeter",
                    "protocol": "triple",
                    "group": "g1",
                    "version": "1.0.0",
                    "endpoints": [{"address": peer.triple_address}],
                }
            ],
        }
        with (
            run_gateway(config, Path(tmp_path_factory.mktemp(f"tri-{peer.name}"))),
            grpc.insecure_channel(address) as channel,
        ):
            yield peer.name, channel, address


def test_a_grpc_client_reaches_the_triple_server_with_its_group(
    channel: tuple[str, grpc.Channel, str], messages: tuple[Any, Any]
) -> None:
    name, rpc, _ = channel
    request_cls, reply_cls = messages
    say = rpc.unary_unary(f"/{GREETER}/SayHello")
    by_cluster = reply_cls.FromString(
        say(request_cls(name="ada").SerializeToString(), timeout=WAIT_S)
    )
    assert by_cluster.message == "hello ada" and by_cluster.served_by == f"{name} g1/1.0.0"
    chosen = (("tri-service-group", "g2"), ("tri-service-version", "2.0.0"))
    by_client = reply_cls.FromString(
        say(request_cls(name="bo").SerializeToString(), metadata=chosen, timeout=WAIT_S)
    )
    assert by_client.served_by == f"{name} g2/2.0.0"


def test_triple_server_streaming_and_errors(
    channel: tuple[str, grpc.Channel, str], messages: tuple[Any, Any]
) -> None:
    _, rpc, _ = channel
    request_cls, reply_cls = messages
    stream = rpc.unary_stream(f"/{GREETER}/SayHelloStream")
    replies = [
        reply_cls.FromString(m)
        for m in stream(request_cls(name="cy").SerializeToString(), timeout=WAIT_S)
    ]
    assert len(replies) >= 2 and all("cy" in r.message for r in replies)
    with pytest.raises(grpc.RpcError) as failed:
        rpc.unary_unary(f"/{GREETER}/Fail")(
            request_cls(name="x").SerializeToString(), timeout=WAIT_S
        )
    assert failed.value.code() != grpc.StatusCode.OK  # type: ignore[attr-defined]
    assert failed.value.code() != grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


def test_a_dubbo_python_triple_consumer_through_meshgate(
    channel: tuple[str, grpc.Channel, str],
) -> None:
    name, _, address = channel
    python = python_peer_interpreter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(python_peer_stubs()), str(REPO)])}
    run = subprocess.run(
        [str(python), "-m", "tests.peers.python_dubbo.client", "--address", address],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert run.returncode == 0 and "DONE" in run.stdout, run.stdout + run.stderr
    replies = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert replies[0] == {"message": "hello dubbo", "served_by": f"{name} g1/1.0.0"}
    assert len(replies) >= 3 and all("dubbo" in r["message"] for r in replies[1:])
