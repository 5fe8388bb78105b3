"""Ask istiod, as a proxyless gRPC node would, for LDS -> RDS -> CDS -> EDS and dump them.

It follows the chain the way grpcio's xDS client does on one ADS stream: LDS for
the ``host:port`` of the xds:/// target, RDS for the route config that listener
names, CDS for every cluster the routes use, EDS for every EDS cluster, each
response ACKed. The result (every resource as proto3 JSON) is what meshgate's
xDS client must understand.

Against a running istiod::

    python -m tests.istio.dump_resources --xds 127.0.0.1:15010 --out dump.json

Or let it start istiod with the templates of tests/istio/config (this is how
docs/istiod-resources-sample.json is made)::

    python -m tests.istio.dump_resources --start --out docs/istiod-resources-sample.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import envoy
import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2,
)
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from tests.support.istiod import DEFAULT_NODE_ID, node_metadata

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

DEFAULT_TARGET = "shop.default.svc.cluster.local:50051"
SAMPLE_VALUES = {
    "V1_PORT": 50061,
    "V2_PORT": 50062,
    "ABORT_PERCENT": 50,
    "TIMEOUT": "5s",
    "V1_WEIGHT": 80,
    "V2_WEIGHT": 20,
}


def _register_envoy_types() -> None:
    """Import every envoy message module so Any fields can be printed as JSON."""
    for module in pkgutil.walk_packages(envoy.__path__, "envoy."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)


def node_proto(node_id: str, namespace: str) -> base_pb2.Node:
    metadata = struct_pb2.Struct()
    metadata.update(node_metadata(namespace))
    return base_pb2.Node(
        id=node_id,
        metadata=metadata,
        user_agent_name="meshgate-dump-resources",
        client_features=["envoy.lb.does_not_support_overprovisioning"],
    )


class AdsSession:
    """One ADS stream; requests go in through a queue, responses are read in order."""

    def __init__(self, xds_address: str, node: base_pb2.Node) -> None:
        self.node = node
        self.channel = grpc.insecure_channel(xds_address)
        self.outbox: queue.Queue[discovery_pb2.DiscoveryRequest | None] = queue.Queue()
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        self.responses = stub.StreamAggregatedResources(self._requests())
        self.first_request = True

    def _requests(self) -> Iterator[discovery_pb2.DiscoveryRequest]:
        while (request := self.outbox.get()) is not None:
            yield request

    def send(self, type_url: str, names: list[str], version: str = "", nonce: str = "") -> None:
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url, resource_names=names, version_info=version, response_nonce=nonce
        )
        # Like grpcio, the node goes only on the first request of the stream.
        if self.first_request:
            request.node.CopyFrom(self.node)
            self.first_request = False
        self.outbox.put(request)

    def fetch(
        self, type_url: str, names: list[str], timeout: float
    ) -> discovery_pb2.DiscoveryResponse:
        """Subscribe to ``names`` of ``type_url``; ACK and return the first answer of that type."""
        self.send(type_url, names)
        result: list[discovery_pb2.DiscoveryResponse] = []
        failure: list[BaseException] = []

        def read() -> None:
            try:
                for response in self.responses:
                    self.send(
                        response.type_url,
                        names if response.type_url == type_url else [],
                        response.version_info,
                        response.nonce,
                    )
                    if response.type_url == type_url:
                        result.append(response)
                        return
            except grpc.RpcError as error:
                failure.append(error)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if failure:
            raise failure[0]
        if not result:
            raise TimeoutError(f"no {type_url} response for {names} in {timeout}s")
        return result[0]

    def close(self) -> None:
        self.outbox.put(None)
        self.channel.close()


def _clusters_of(route_config: route_pb2.RouteConfiguration) -> list[str]:
    names: list[str] = []
    for virtual_host in route_config.virtual_hosts:
        for route in virtual_host.routes:
            action = route.route
            if action.cluster:
                names.append(action.cluster)
            names.extend(weighted.name for weighted in action.weighted_clusters.clusters)
    return sorted(set(names))


def _as_json(
    response: discovery_pb2.DiscoveryResponse, message_type: type[Message]
) -> dict[str, Any]:
    resources = []
    for packed in response.resources:
        message = message_type()
        if not packed.Unpack(message):
            raise ValueError(f"{packed.type_url} is not {message_type.DESCRIPTOR.full_name}")
        resources.append(json_format.MessageToDict(message))
    return {
        "type_url": response.type_url,
        "version_info": response.version_info,
        "control_plane": json_format.MessageToDict(response.control_plane),
        "resources": resources,
    }


def dump(
    xds_address: str, target: str, node_id: str, namespace: str, timeout: float = 20.0
) -> dict[str, Any]:
    """Walk LDS -> RDS -> CDS -> EDS for ``target`` and return every response as JSON."""
    _register_envoy_types()
    session = AdsSession(xds_address, node_proto(node_id, namespace))
    try:
        lds = session.fetch(LISTENER_TYPE, [target], timeout)
        route_names = []
        for packed in lds.resources:
            listener = listener_pb2.Listener()
            packed.Unpack(listener)
            manager = http_connection_manager_pb2.HttpConnectionManager()
            listener.api_listener.api_listener.Unpack(manager)
            route_names.append(manager.rds.route_config_name)
        rds = session.fetch(ROUTE_TYPE, route_names, timeout)
        cluster_names: list[str] = []
        for packed in rds.resources:
            route_config = route_pb2.RouteConfiguration()
            packed.Unpack(route_config)
            cluster_names.extend(_clusters_of(route_config))
        cds = session.fetch(CLUSTER_TYPE, sorted(set(cluster_names)), timeout)
        eds_names = []
        for packed in cds.resources:
            cluster = cluster_pb2.Cluster()
            packed.Unpack(cluster)
            if cluster.type == cluster_pb2.Cluster.EDS:
                eds_names.append(cluster.eds_cluster_config.service_name or cluster.name)
        eds = session.fetch(ENDPOINT_TYPE, sorted(eds_names), timeout)
    finally:
        session.close()
    return {
        "lds": _as_json(lds, listener_pb2.Listener),
        "rds": _as_json(rds, route_pb2.RouteConfiguration),
        "cds": _as_json(cds, cluster_pb2.Cluster),
        "eds": _as_json(eds, endpoint_pb2.ClusterLoadAssignment),
    }


# Each scenario starts istiod on its own set of templates: the full set the
# tests use, and the bare service (no DestinationRule, no VirtualService) to
# show the defaults istiod fills in when the user configured nothing.
SCENARIOS: dict[str, tuple[str, ...]] = {
    "virtual_service_and_subsets": (),
    "service_entry_only": ("service-entry.yaml", "workload-entries.yaml"),
}


def _capture_scenario(
    templates: tuple[str, ...], target: str, node_id: str, namespace: str
) -> dict[str, Any]:
    from tests.support.istiod import render_config, running_istiod

    with tempfile.TemporaryDirectory(prefix="meshgate-istiod-") as scratch:
        config_dir = Path(scratch) / "config"
        written = render_config(config_dir, SAMPLE_VALUES, only=templates)
        with running_istiod(config_dir) as istiod:
            xds = dump(istiod.xds_address, target, node_id, namespace)
        return {
            "istio_config": {path.name: path.read_text() for path in written},
            "xds": xds,
        }


def _document(
    scenarios: dict[str, Any], target: str, node_id: str, namespace: str
) -> dict[str, Any]:
    from tests.support.istiod import grpc_bootstrap

    return {
        "about": (
            "What a real istiod sends to a proxyless gRPC node (GENERATOR=grpc) for "
            f"xds:///{target}, captured by tests/istio/dump_resources.py. "
            "See docs/istiod.md."
        ),
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": target,
        "bootstrap": grpc_bootstrap("127.0.0.1:15010", node_id, namespace),
        "scenarios": scenarios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--xds", help="host:port of a running istiod's plaintext xDS")
    where.add_argument(
        "--start", action="store_true", help="start istiod with the tests/istio/config templates"
    )
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("--node-id", default=DEFAULT_NODE_ID)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--out", type=Path, help="write JSON here instead of stdout")
    args = parser.parse_args()

    if args.start:
        scenarios = {
            name: _capture_scenario(templates, args.target, args.node_id, args.namespace)
            for name, templates in SCENARIOS.items()
        }
    else:
        scenarios = {
            "running_istiod": {
                "istio_config": {},
                "xds": dump(args.xds, args.target, args.node_id, args.namespace),
            }
        }

    text = (
        json.dumps(_document(scenarios, args.target, args.node_id, args.namespace), indent=2) + "\n"
    )
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
