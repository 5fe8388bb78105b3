"""The sans-IO ADS client: subscriptions, ACK/NACK (gRFC A46), deletion, timers."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message

from mesh.errors import InvalidTransition
from mesh.xds import type_urls as t
from mesh.xds.ads import AdsClient
from mesh.xds.cluster import Cluster
from mesh.xds.resource_state import ResourceEvent, ResourceState, transition
from tests.support import xds_builders as b

HOST, PORT = "shop.default.svc.cluster.local", 50051
TARGET = f"{HOST}:{PORT}"
V1 = b.cluster_name(HOST, PORT, "v1")
V2 = b.cluster_name(HOST, PORT, "v2")


def response(
    type_url: str, version: str, nonce: str, *messages: Message, wrap: bool = False
) -> discovery_pb2.DiscoveryResponse:
    out = discovery_pb2.DiscoveryResponse(type_url=type_url, version_info=version, nonce=nonce)
    for message in messages:
        if wrap:
            name = getattr(message, "name", "") or getattr(message, "cluster_name", "")
            out.resources.append(
                b.packed(discovery_pb2.Resource(name=name, resource=b.packed(message)))
            )
        else:
            out.resources.append(b.packed(message))
    return out


def route_config(*routes: object) -> Message:
    return b.route_config(TARGET, HOST, PORT, list(routes) or [b.route(cluster=V1)])  # type: ignore[arg-type]


@pytest.fixture
def client() -> AdsClient:
    ads = AdsClient(base_pb2.Node(id="n1"))
    ads.connection_made()
    ads.watch(t.LISTENER, TARGET)
    return ads


def names(requests: list[discovery_pb2.DiscoveryRequest]) -> dict[str, list[str]]:
    return {r.type_url: list(r.resource_names) for r in requests}


def test_first_request_carries_node_and_listener_name(client: AdsClient) -> None:
    [request] = client.take_requests(0.0)
    assert request.node.id == "n1"
    assert request.type_url == t.LISTENER
    assert list(request.resource_names) == [TARGET]
    assert request.version_info == "" and request.response_nonce == ""


def test_chain_is_followed_and_acked_with_version_and_nonce(client: AdsClient) -> None:
    client.take_requests(0.0)
    changed = client.receive(response(t.LISTENER, "1", "a", b.listener(TARGET), wrap=True), 1.0)
    assert changed == {(t.LISTENER, TARGET)}
    requests = client.take_requests(1.0)
    ack = next(r for r in requests if r.type_url == t.LISTENER)
    assert (ack.version_info, ack.response_nonce, ack.HasField("error_detail")) == ("1", "a", False)
    assert not ack.HasField("node")
    assert names(requests)[t.ROUTE_CONFIGURATION] == [TARGET]
    client.receive(
        response(t.ROUTE_CONFIGURATION, "1", "b", route_config(b.route(weights={V1: 1, V2: 1}))),
        2.0,
    )
    assert names(client.take_requests(2.0))[t.CLUSTER] == [V1, V2]
    client.receive(response(t.CLUSTER, "1", "c", b.cluster(V1), b.cluster(V2)), 3.0)
    assert names(client.take_requests(3.0))[t.CLUSTER_LOAD_ASSIGNMENT] == [V1, V2]


def test_nack_keeps_valid_resources_and_previous_version(client: AdsClient) -> None:
    client.take_requests(0.0)
    client.receive(response(t.LISTENER, "1", "a", b.listener(TARGET)), 0.0)
    client.receive(response(t.ROUTE_CONFIGURATION, "1", "b", route_config()), 0.0)
    client.receive(response(t.CLUSTER, "1", "c", b.cluster(V1)), 0.0)
    client.take_requests(0.0)
    bad = b.cluster(V1, lb_policy="CLUSTER_PROVIDED")
    client.receive(response(t.CLUSTER, "2", "d", bad), 1.0)
    [nack] = [r for r in client.take_requests(1.0) if r.type_url == t.CLUSTER]
    assert nack.version_info == "1" and nack.response_nonce == "d"
    assert V1 in nack.error_detail.message and "CLUSTER_PROVIDED" in nack.error_detail.message
    entry = client.entry(t.CLUSTER, V1)
    assert entry is not None and entry.state is ResourceState.NACKED
    assert isinstance(entry.resource, Cluster) and entry.resource.lb_policy == "round_robin"
    assert entry.version == "1" and entry.rejected_version == "2"


def test_nack_applies_the_valid_resources_of_the_same_response(client: AdsClient) -> None:
    client.take_requests(0.0)
    client.receive(response(t.LISTENER, "1", "a", b.listener(TARGET)), 0.0)
    client.receive(
        response(t.ROUTE_CONFIGURATION, "1", "b", route_config(b.route(weights={V1: 1, V2: 1}))),
        0.0,
    )
    bad_v1 = b.cluster(V1, lb_policy="CLUSTER_PROVIDED")
    changed = client.receive(response(t.CLUSTER, "7", "c", bad_v1, b.cluster(V2)), 0.0)
    assert changed == {(t.CLUSTER, V2)}
    assert client.entry(t.CLUSTER, V2).state is ResourceState.ACKED  # type: ignore[union-attr]
    assert client.entry(t.CLUSTER, V1).state is ResourceState.NACKED  # type: ignore[union-attr]
    assert client.entry(t.CLUSTER, V2).version == "7"  # type: ignore[union-attr]


def test_invalid_regex_route_config_is_nacked_with_detail(client: AdsClient) -> None:
    client.take_requests(0.0)
    client.receive(response(t.LISTENER, "1", "a", b.listener(TARGET)), 0.0)
    client.take_requests(0.0)
    client.receive(
        response(
            t.ROUTE_CONFIGURATION, "3", "b", route_config(b.route(regex="/(a)\\1", cluster=V1))
        ),
        0.0,
    )
    [nack] = [r for r in client.take_requests(0.0) if r.type_url == t.ROUTE_CONFIGURATION]
    assert nack.version_info == "" and nack.error_detail.code == 3
    assert "RE2" in nack.error_detail.message and TARGET in nack.error_detail.message


def test_listener_absent_from_response_is_deleted_and_rds_unsubscribed(client: AdsClient) -> None:
    client.take_requests(0.0)
    client.receive(response(t.LISTENER, "1", "a", b.listener(TARGET)), 0.0)
    client.receive(response(t.ROUTE_CONFIGURATION, "1", "b", route_config()), 0.0)
    client.take_requests(0.0)
    changed = client.receive(response(t.LISTENER, "2", "c"), 1.0)
    assert (t.LISTENER, TARGET) in changed
    assert client.entry(t.LISTENER, TARGET).state is ResourceState.DOES_NOT_EXIST  # type: ignore[union-attr]
    assert client.entry(t.ROUTE_CONFIGURATION, TARGET) is None
    requests = names(client.take_requests(1.0))
    assert requests[t.ROUTE_CONFIGURATION] == []


def test_route_config_absence_is_not_deletion(client: AdsClient) -> None:
    client.take_requests(0.0)
    client.receive(response(t.LISTENER, "1", "a", b.listener(TARGET)), 0.0)
    client.receive(response(t.ROUTE_CONFIGURATION, "1", "b", route_config()), 0.0)
    client.receive(response(t.ROUTE_CONFIGURATION, "2", "c"), 0.0)
    assert client.entry(t.ROUTE_CONFIGURATION, TARGET).state is ResourceState.ACKED  # type: ignore[union-attr]


def test_does_not_exist_after_15_seconds_only_once_requested(client: AdsClient) -> None:
    assert client.next_deadline() is None
    client.take_requests(100.0)
    assert client.next_deadline() == 115.0
    assert client.tick(114.9) == set()
    assert client.tick(115.0) == {(t.LISTENER, TARGET)}
    assert client.entry(t.LISTENER, TARGET).state is ResourceState.DOES_NOT_EXIST  # type: ignore[union-attr]
    # A late answer still counts.
    client.receive(response(t.LISTENER, "1", "a", b.listener(TARGET)), 200.0)
    assert client.entry(t.LISTENER, TARGET).state is ResourceState.ACKED  # type: ignore[union-attr]


def test_timers_pause_while_disconnected_and_restart_on_new_stream(client: AdsClient) -> None:
    client.take_requests(0.0)
    client.connection_lost()
    assert client.next_deadline() is None
    assert client.take_requests(5.0) == []
    client.connection_made()
    [again] = client.take_requests(30.0)
    assert again.node.id == "n1" and list(again.resource_names) == [TARGET]
    assert client.next_deadline() == 45.0


def test_new_stream_resubscribes_everything_with_last_versions(client: AdsClient) -> None:
    client.take_requests(0.0)
    client.receive(response(t.LISTENER, "4", "a", b.listener(TARGET)), 0.0)
    client.receive(response(t.ROUTE_CONFIGURATION, "5", "b", route_config()), 0.0)
    client.take_requests(0.0)
    client.connection_lost()
    client.connection_made()
    requests = client.take_requests(1.0)
    assert [r.type_url for r in requests] == [t.LISTENER, t.ROUTE_CONFIGURATION, t.CLUSTER]
    assert requests[0].HasField("node") and not requests[1].HasField("node")
    assert [r.version_info for r in requests] == ["4", "5", ""]
    assert all(r.response_nonce == "" for r in requests)
    assert client.resource(t.LISTENER, TARGET) is not None  # kept while disconnected


def test_wildcard_lds_sends_no_names_and_keeps_every_listener() -> None:
    ads = AdsClient(base_pb2.Node(id="n1"))
    ads.connection_made()
    ads.watch_all(t.LISTENER)
    [request] = ads.take_requests(0.0)
    assert list(request.resource_names) == []
    other = "cart.default.svc.cluster.local:8080"
    ads.receive(response(t.LISTENER, "1", "a", b.listener(TARGET), b.listener(other)), 0.0)
    assert {e.name for e in ads.entries() if e.type_url == t.LISTENER} == {TARGET, other}
    ads.receive(response(t.LISTENER, "2", "b", b.listener(other)), 0.0)
    assert ads.resource(t.LISTENER, TARGET) is None


def test_unrequested_resources_are_ignored(client: AdsClient) -> None:
    client.take_requests(0.0)
    client.receive(response(t.LISTENER, "1", "a", b.listener("other:1")), 0.0)
    assert client.entry(t.LISTENER, "other:1") is None


def test_duplicate_names_in_one_response_are_nacked(client: AdsClient) -> None:
    client.take_requests(0.0)
    client.receive(response(t.LISTENER, "1", "a", b.listener(TARGET), b.listener(TARGET)), 0.0)
    [nack] = client.take_requests(0.0)
    assert "duplicate" in nack.error_detail.message


def test_missing_transition_is_a_typed_error() -> None:
    with pytest.raises(InvalidTransition):
        transition(ResourceState.ACKED, ResourceEvent.TIMEOUT)
    assert transition(ResourceState.NACKED, ResourceEvent.VALID) is ResourceState.ACKED


def test_ignore_resource_deletion_keeps_absent_listeners() -> None:
    ads = AdsClient(base_pb2.Node(id="n1"), ignore_resource_deletion=True)
    ads.connection_made()
    ads.watch(t.LISTENER, TARGET)
    ads.take_requests(0.0)
    ads.receive(response(t.LISTENER, "1", "a", b.listener(TARGET)), 0.0)
    assert ads.receive(response(t.LISTENER, "2", "b"), 0.0) == set()
    assert ads.resource(t.LISTENER, TARGET) is not None


def test_each_response_verdict_is_told_to_on_update(client: AdsClient) -> None:
    verdicts: list[tuple[str, bool]] = []
    client.on_update = lambda type_url, accepted: verdicts.append((type_url, accepted))
    client.take_requests(0.0)
    client.receive(response(t.LISTENER, "1", "a", b.listener(TARGET)), 0.0)
    client.receive(response(t.ROUTE_CONFIGURATION, "1", "b", route_config()), 0.0)
    client.receive(response(t.CLUSTER, "1", "c", b.cluster(V1, lb_policy="CLUSTER_PROVIDED")), 0.0)
    assert verdicts == [(t.LISTENER, True), (t.ROUTE_CONFIGURATION, True), (t.CLUSTER, False)]
