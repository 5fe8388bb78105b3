"""The request bodies every contestant is sent: one JSON text and its protobuf twin.

Each payload is a ``meshgate.test.v1.EchoRequest`` as JSON (for the
transcoders) and the same message serialized and framed for gRPC (for the
direct h2load runs). The backend echoes the request, so replies are about as
large as requests.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format

from tests.support.protos import echo_descriptor_set, load_pool, message_class

REQUEST_TYPE = "meshgate.test.v1.EchoRequest"
KIB = 1024


@dataclass(frozen=True)
class Payload:
    name: str
    json_body: bytes
    proto_body: bytes

    @property
    def grpc_frame(self) -> bytes:
        """The length-prefixed gRPC message: flag 0 (uncompressed), 4-byte big-endian length."""
        return struct.pack(">BI", 0, len(self.proto_body)) + self.proto_body


def small_request() -> dict[str, Any]:
    return {
        "message": "hello from the benchmark",
        "tags": ["alpha", "beta"],
        "big": "1234567890",
        "flag": True,
        "kind": "KIND_BOOK",
    }


def _tree(prefix: str, depth: int, fanout: int) -> dict[str, Any]:
    node: dict[str, Any] = {"name": f"node-{prefix}", "count": len(prefix) * 7 + depth}
    if depth > 0:
        node["children"] = [_tree(f"{prefix}{i}", depth - 1, fanout) for i in range(fanout)]
    return node


def structured_request(target_bytes: int) -> dict[str, Any]:
    """Nested messages, repeated fields and a map, grown until the JSON reaches the target."""
    request: dict[str, Any] = {
        "message": "structured benchmark request",
        "big": "-9007199254740993",
        "ubig": "18446744073709551615",
        "ratio": 0.25,
        "kind": "KIND_MAGAZINE",
        "when": "2024-02-29T23:59:59.123Z",
        "ttl": "30s",
        "nested": {"name": "root", "count": 1, "children": []},
        "tags": [],
        "labels": {},
    }
    children: list[dict[str, Any]] = request["nested"]["children"]
    i = 0
    while len(orjson.dumps(request)) < target_bytes:
        children.append(_tree(str(i), depth=2, fanout=2))
        request["tags"].append(f"tag-{i:05d}-{'x' * 24}")
        request["labels"][f"label-{i:05d}"] = f"value-{i:05d}"
        i += 1
    return request


def build_payloads() -> list[Payload]:
    pool = load_pool(echo_descriptor_set())
    request_cls = message_class(pool, REQUEST_TYPE)
    requests = {
        "small": small_request(),
        "medium": structured_request(4 * KIB),
        "large": structured_request(256 * KIB),
    }
    payloads = []
    for name, data in requests.items():
        message = request_cls()
        json_format.ParseDict(data, message, descriptor_pool=pool)
        payloads.append(Payload(name, orjson.dumps(data), message.SerializeToString()))
    return payloads


def stream_payload(count: int) -> Payload:
    """The ServerStream request: ``big`` is how many replies the Go backend sends."""
    pool = load_pool(echo_descriptor_set())
    data = {"message": "stream", "big": str(count)}
    message = message_class(pool, REQUEST_TYPE)()
    json_format.ParseDict(data, message, descriptor_pool=pool)
    return Payload(f"stream{count}", orjson.dumps(data), message.SerializeToString())
