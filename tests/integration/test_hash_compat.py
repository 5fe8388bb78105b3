"""Ring hash and Maglev pick the endpoint Envoy picks, key for key.

One set of backends (each answers with its own name), one Envoy and one
meshgate in front of them with the same clusters (same addresses, weights
and order) and the same hash policy (header ``x-key``). 10,000 keys go
through both for each policy; every key must land on the same backend.
A small ring (maximum_ring_size below the natural size) checks the
fractional-share arithmetic too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.envoy import (
    HCM_TYPE,
    HTTP_PROTOCOL_OPTIONS_TYPE,
    ROUTER_TYPE,
    echo_descriptor_set_with_error_details,
    run_envoy,
    transcoder_filter,
)
from tests.support.gateway import run_gateway
from tests.support.net import free_port
from tests.support.pipelined import Request, send_all
from tests.support.processes import echo_backend

pytestmark = pytest.mark.integration

SERVICE = "meshgate.test.v1.EchoService"
ECHO = f"/{SERVICE}/Echo"
WEIGHTS = (1, 2, 3, 1, 5)  # uneven, so the weight arithmetic matters
KEYS = 10_000
SMALL_RING_KEYS = 2_000


@dataclass(frozen=True)
class Policy:
    name: str  # the x-lb header value that selects it on Envoy, and the meshgate listener
    envoy: dict[str, Any]  # lb_policy and its config on an Envoy cluster
    meshgate: dict[str, Any]  # the same on a meshgate cluster
    keys: int


POLICIES = (
    Policy("ring", {"lb_policy": "RING_HASH"}, {"lb": "ring_hash"}, KEYS),
    Policy("maglev", {"lb_policy": "MAGLEV"}, {"lb": "maglev"}, KEYS),
    Policy(
        "small-ring",
        {
            "lb_policy": "RING_HASH",
            "ring_hash_lb_config": {"minimum_ring_size": 50, "maximum_ring_size": 50},
        },
        {"lb": "ring_hash", "ring_hash": {"minimum_ring_size": 50, "maximum_ring_size": 50}},
        SMALL_RING_KEYS,
    ),
)


def envoy_cluster(policy: Policy, ports: list[int]) -> dict[str, Any]:
    return {
        "name": policy.name,
        "type": "STATIC",
        "connect_timeout": "1s",
        **policy.envoy,
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_PROTOCOL_OPTIONS_TYPE,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": policy.name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": "127.0.0.1", "port_value": port}
                                }
                            },
                            "load_balancing_weight": weight,
                        }
                        for port, weight in zip(ports, WEIGHTS, strict=True)
                    ]
                }
            ],
        },
    }


def envoy_config(ports: list[int], descriptors: Path) -> dict[str, Any]:
    routes = [
        {
            "match": {
                "prefix": "/",
                "headers": [{"name": "x-lb", "string_match": {"exact": policy.name}}],
            },
            "route": {
                "cluster": policy.name,
                "hash_policy": [{"header": {"header_name": "x-key"}}],
            },
        }
        for policy in POLICIES
    ]
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": "hash",
        "codec_type": "AUTO",
        "route_config": {
            "name": "local",
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}],
        },
        "http_filters": [
            transcoder_filter(descriptors, [SERVICE]),
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}},
        ],
    }
    listener = {
        "name": "hash",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": free_port()}},
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": free_port()}}
        },
        "static_resources": {
            "listeners": [listener],
            "clusters": [envoy_cluster(policy, ports) for policy in POLICIES],
        },
    }


def meshgate_config(ports: list[int], descriptors: Path) -> dict[str, Any]:
    endpoints = [
        {"address": f"127.0.0.1:{port}", "weight": weight}
        for port, weight in zip(ports, WEIGHTS, strict=True)
    ]
    return {
        "descriptors": [{"file": str(descriptors)}],
        "listeners": [
            {
                "name": policy.name,
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True},
                        "cluster": policy.name,
                    }
                ],
            }
            for policy in POLICIES
        ],
        "clusters": [
            {
                "name": policy.name,
                **policy.meshgate,
                "hash_policy": [{"header": "x-key"}],
                "endpoints": endpoints,
            }
            for policy in POLICIES
        ],
    }


@dataclass(frozen=True)
class Gateways:
    envoy_url: str
    meshgate_urls: dict[str, str]  # policy name -> listener URL


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateways]:
    ports = [free_port() for _ in WEIGHTS]
    descriptors = echo_descriptor_set_with_error_details()
    config = meshgate_config(ports, descriptors)
    with ExitStack() as stack:
        for i, port in enumerate(ports):
            stack.enter_context(echo_backend(port, name=f"b{i}"))
        envoy = stack.enter_context(run_envoy(envoy_config(ports, descriptors)))
        stack.enter_context(run_gateway(config, tmp_path_factory.mktemp("hash")))
        urls = {lst["name"]: f"http://{lst['address']}" for lst in config["listeners"]}
        yield Gateways(envoy.listen_url, urls)


def served_by(url: str, keys: list[str], lb: str) -> dict[str, str]:
    """Send one request per key; the backend each reached. Every seventh key is
    sent as a repeated header (two lines), which Envoy hashes from both values."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    requests = []
    for i, key in enumerate(keys):
        headers = [("x-key", key), ("x-lb", lb), ("content-type", "application/json")]
        if i % 7 == 0:
            headers.append(("x-key", f"second-{i}"))
        requests.append(Request("POST", ECHO, headers, b"{}"))
    answers = asyncio.run(send_all(host, int(port), requests))
    assert len(answers) == len(keys)
    served: dict[str, str] = {}
    for key, answer in zip(keys, answers, strict=True):
        assert answer.status == 200, (key, answer.body)
        served[key] = orjson.loads(answer.body)["servedBy"]
    return served


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_same_endpoint_as_envoy_for_every_key(gateways: Gateways, policy: Policy) -> None:
    # Varied shapes: short, long, non-alphanumeric, numeric.
    keys = [f"user-{i}" if i % 3 else f"{i * 7919}/{'x' * (i % 40)}?&=" for i in range(policy.keys)]
    by_envoy = served_by(gateways.envoy_url, keys, policy.name)
    by_meshgate = served_by(gateways.meshgate_urls[policy.name], keys, "")
    differing = [k for k in keys if by_envoy[k] != by_meshgate[k]]
    assert not differing, f"{len(differing)} of {len(keys)} keys differ, e.g. " + ", ".join(
        f"{k!r}: envoy {by_envoy[k]} meshgate {by_meshgate[k]}" for k in differing[:5]
    )
    # Every backend took some keys: the comparison is not trivially about one endpoint.
    assert set(by_envoy.values()) == {f"b{i}" for i in range(len(WEIGHTS))}
