"""A peer that dies without a word: keepalive, not the deadline, ends the call.

The backend sits behind a relay that goes silent (no FIN, no RST), as a host
that vanished. With the cluster's keepalive at 1 s + 1 s, a call on the dead
connection fails in a few seconds with a 503, and the next one reconnects,
instead of each hanging until the route's 60 s deadline. Once from YAML
(``keepalive``), once from CDS (``http2_protocol_options.connection_keepalive``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import xds_builders as b
from tests.support.freezing_relay import FreezingRelay, freezing_relay
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import echo_backend
from tests.support.xds_server import CLUSTER, XdsServer, serve_service

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"
HOST, PORT = "shop.default.svc.cluster.local", 50051
# What the client waits for at most: far below the route's deadline and the
# default keepalive's 10 s wait for a ping's ack, well above the configured 1 s
# + 1 s.
CLIENT_TIMEOUT = 8.0


@pytest.fixture
def relay() -> Iterator[FreezingRelay]:
    port = free_port()
    with echo_backend(port, "silent"), freezing_relay(port) as relay:
        yield relay


def route(cluster: str) -> dict[str, object]:
    return {
        "match": {"prefix": "/"},
        "transcode": {"auto_mapping": True},
        "cluster": cluster,
        "timeout": "60s",
    }


def a_call_on_the_dead_connection_fails(gateway: RunningGateway, relay: FreezingRelay) -> None:
    with gateway.client(timeout=CLIENT_TIMEOUT) as client:
        assert client.post(ECHO, json={"message": "warm"}).status_code == 200
        relay.freeze()
        try:
            answer = client.post(ECHO, json={"message": "into the void"})
        except httpx.TimeoutException:
            pytest.fail(f"the call hung for {CLIENT_TIMEOUT}s on a dead connection")
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == 14  # UNAVAILABLE


def test_static_cluster_keepalive_ends_calls_on_a_silent_peer(
    relay: FreezingRelay, echo_set: Path, tmp_path: Path
) -> None:
    config = {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [{"name": "public", "routes": [route("silent")]}],
        "clusters": [
            {
                "name": "silent",
                "endpoints": [{"address": f"127.0.0.1:{relay.port}"}],
                "keepalive": {"time": "1s", "timeout": "1s"},
            }
        ],
    }
    with run_gateway(config, tmp_path) as gateway:
        a_call_on_the_dead_connection_fails(gateway, relay)


def test_cds_keepalive_ends_calls_on_a_silent_peer(
    relay: FreezingRelay, echo_set: Path, tmp_path: Path
) -> None:
    with XdsServer() as xds:
        service = b.Service(HOST, PORT, {"all": [("127.0.0.1", relay.port)]})
        serve_service(xds, service, b.route(cluster=service.cluster("all")))
        clusters = service.clusters()
        for proto in clusters:
            ping = proto.http2_protocol_options.connection_keepalive
            ping.interval.seconds = 1
            ping.timeout.seconds = 1
        xds.set(CLUSTER, clusters)
        bootstrap = tmp_path / "bootstrap.json"
        bootstrap.write_text(json.dumps(xds.bootstrap()))
        config = {
            "descriptors": [{"file": str(echo_set)}],
            "listeners": [{"name": "public", "routes": [route(f"xds:///{HOST}:{PORT}")]}],
            "mesh": {"xds": {"bootstrap": str(bootstrap)}},
        }
        with run_gateway(config, tmp_path) as gateway:
            a_call_on_the_dead_connection_fails(gateway, relay)
