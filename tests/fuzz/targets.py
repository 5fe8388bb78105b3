"""Fuzz targets: one function of bytes per parser that reads untrusted input.

Each target feeds the bytes to a parser and lets through only the errors the
parser documents for bad input; anything else (a crash, a RecursionError, an
IndexError, a broken round trip) escapes and is a finding. The same targets
run under atheris (tests/fuzz/run.py, ``make fuzz``) and, on their seeds,
in the unit suite (tests/unit/test_fuzz_targets.py) so they stay runnable.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from envoy.config.route.v3 import route_pb2
from google.protobuf.message import DecodeError

from gateway.dubbo.errors import DubboCodecError
from gateway.dubbo.hessian2_decode import Hessian2Decoder
from gateway.dubbo.protocol import FrameDecoder
from gateway.errors import BadRequest
from gateway.transcode.json_codec import MessageCodec
from gateway.transcode.path_template import TemplateError, parse_template
from gateway.upstream.metadata import deadline_from_headers
from mesh.errors import ResourceError
from mesh.xds.route_config import route_config
from tests.support.protos import echo_descriptor_set, load_pool, message_class

Target = Callable[[bytes], None]


def path_template(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        template = parse_template(text)
    except TemplateError:
        return
    assert template is not None


@cache
def _echo_codec() -> MessageCodec:
    pool = load_pool(echo_descriptor_set())
    return MessageCodec(message_class(pool, "meshgate.test.v1.EchoRequest"), pool)


def json_protobuf(data: bytes) -> None:
    codec = _echo_codec()
    try:
        message = codec.parse_json(data)
    except BadRequest:
        return
    # What the gateway renders, it must read back as the same message.
    again = codec.parse_json(codec.render(message))
    assert again == message, (message, again)


def hessian2(data: bytes) -> None:
    try:
        Hessian2Decoder(data).read()
    except DubboCodecError:
        return


def dubbo2_frames(data: bytes) -> None:
    decoder = FrameDecoder(max_body_length=1 << 16)
    try:
        # Split once in the middle: frames cut across reads must not matter.
        middle = len(data) // 2
        decoder.feed(data[:middle])
        decoder.feed(data[middle:])
    except DubboCodecError:
        return


def timeout_headers(data: bytes) -> None:
    text = data.decode("latin-1")
    for grpc_timeout, request_timeout in ((text, None), (None, text)):
        try:
            timeout = deadline_from_headers(5.0, grpc_timeout, request_timeout)
        except BadRequest:
            continue
        # A client may only shorten the route's deadline, never lift it.
        assert timeout is not None and 0 < timeout <= 5.0, (text, timeout)


def xds_route_config(data: bytes) -> None:
    try:
        proto = route_pb2.RouteConfiguration.FromString(data)
    except DecodeError:
        return
    try:
        route_config(proto)
    except ResourceError:
        return


TARGETS: dict[str, Target] = {
    "path_template": path_template,
    "json_protobuf": json_protobuf,
    "hessian2": hessian2,
    "dubbo2_frames": dubbo2_frames,
    "timeout_headers": timeout_headers,
    "xds_route_config": xds_route_config,
}

# A few valid and broken inputs per target: the fuzzer's starting corpus.
SEEDS: dict[str, list[bytes]] = {
    "path_template": [b"/v1/{name=shelves/*}/books/{book}:get", b"/a/**", b"/{x=**}/y", b"/{"],
    "json_protobuf": [
        b'{"message": "hi", "tags": ["a"], "nested": {"name": "n"}}',
        b'{"big": "9007199254740993", "kind": "KIND_BOOK", "ttl": "1.5s"}',
        b'{"extra": {"x": [1, "two", null]}, "when": "2024-01-02T03:04:05Z"}',
        b'{"message": 1}',
        b"[]",
    ],
    "hessian2": [
        b"\x91",
        b"S\x00\x02hi",
        b"H\x91\x92Z",
        b"C\x0bexample.Car\x91\x05colorO\x90\x03red",
    ],
    "dubbo2_frames": [
        b"\xda\xbb\xc2\x00" + b"\x00" * 8 + b"\x00\x00\x00\x01N",
        b"\xda\xbb\x22\x14" + b"\x00" * 7 + b"\x01" + b"\x00\x00\x00\x02\x91N",
    ],
    "timeout_headers": [b"100m", b"5S", b"250ms", b"1.5s", b"0n", b"1" + b" " * 40 + b"x"],
    "xds_route_config": [
        route_pb2.RouteConfiguration(
            name="r",
            virtual_hosts=[
                {
                    "name": "v",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"safe_regex": {"regex": "/a/.*"}},
                            "route": {"cluster": "c", "timeout": {"seconds": 1}},
                        },
                        {"match": {"prefix": "/"}, "route": {"cluster": "d"}},
                    ],
                }
            ],
        ).SerializeToString()
    ],
}
