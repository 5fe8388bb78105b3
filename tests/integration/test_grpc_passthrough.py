"""gRPC passthrough end to end: grpcio clients → meshgate (h2c, a real process)
→ a grpc.aio backend (tests/support/raw_grpc_backend.py, its own process),
for every streaming kind, metadata and trailers byte for byte, deadlines,
cancellation, retries and the gateway's own errors as gRPC statuses; and
gRPC-Web and Connect over HTTP/2."""

from __future__ import annotations

import base64
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest

from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import Process, python_module, running
from tests.support.raw_grpc_backend import DETAILS, SERVICE, TRAILER_BYTES
from tests.support.tls_ca import make_loopback_certs

pytestmark = pytest.mark.integration

ROUTE_TIMEOUT_S = 20
WAIT_S = 30.0


@dataclass
class Setup:
    gateway: RunningGateway
    backend: Process
    address: str
    tls_address: str
    ca: bytes


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    port = free_port()
    address = f"127.0.0.1:{free_port()}"
    tls_address = f"127.0.0.1:{free_port()}"
    dead = f"127.0.0.1:{free_port()}"  # nothing listens here
    certs = make_loopback_certs(tmp_path_factory.mktemp("passthrough-certs"))
    config = {
        "listeners": [
            {
                "name": "rpc-tls",
                "address": tls_address,
                "protocol": "grpc",
                "tls": {"cert": str(certs.cert), "key": str(certs.key)},
                "routes": [{"match": {"prefix": f"/{SERVICE}/"}, "cluster": "raw"}],
            },
            {
                "name": "rpc",
                "address": address,
                "protocol": "grpc",
                "routes": [
                    {
                        "match": {
                            "prefix": f"/{SERVICE}/",
                            "headers": [{"name": "x-route", "exact": "retry"}],
                        },
                        "cluster": "half-dead",
                        "retry": {"attempts": 3, "on": ["unavailable"]},
                    },
                    {
                        "match": {"prefix": f"/{SERVICE}/"},
                        "cluster": "raw",
                        "timeout": f"{ROUTE_TIMEOUT_S}s",
                    },
                ],
            },
        ],
        "clusters": [
            {"name": "raw", "endpoints": [{"address": f"127.0.0.1:{port}"}]},
            {
                "name": "half-dead",
                "endpoints": [{"address": dead}, {"address": f"127.0.0.1:{port}"}],
            },
        ],
    }
    with (
        running(
            python_module("tests.support.raw_grpc_backend", "--port", str(port)), "READY"
        ) as backend,
        run_gateway(config, tmp_path_factory.mktemp("passthrough")) as gateway,
    ):
        yield Setup(gateway, backend, address, tls_address, certs.ca.read_bytes())


@pytest.fixture
def channel(setup: Setup) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(setup.address) as channel:
        yield channel


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"


def backend_line(backend: Process, prefix: str, after: int) -> str:
    """The first line starting with ``prefix`` the backend printed after offset ``after``."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for line in backend.output[after:].splitlines():
            if line.startswith(prefix):
                return line
        time.sleep(0.05)
    raise AssertionError(f"backend never printed {prefix!r}:\n{backend.output[-2000:]}")


def test_unary_metadata_and_trailers_round_trip_byte_for_byte(channel: grpc.Channel) -> None:
    blob = bytes(range(255, -1, -1))
    unary = channel.unary_unary(method("Unary"))
    response, call = unary.with_call(
        b"\x00payload\xff",
        metadata=(("x-echo-text", "hello"), ("x-echo-blob-bin", blob)),
        timeout=WAIT_S,
    )
    assert response == b"\x00payload\xff"
    initial = dict(call.initial_metadata())
    trailing = dict(call.trailing_metadata())
    assert initial["x-echo-text"] == "hello" and initial["x-echo-blob-bin"] == blob
    assert trailing["x-echo-blob-bin"] == blob
    assert trailing["x-trailer-bin"] == TRAILER_BYTES
    assert call.code() == grpc.StatusCode.OK


def test_client_server_and_bidi_streaming(channel: grpc.Channel) -> None:
    joined = channel.stream_unary(method("ClientStream"))(iter([b"a", b"b", b"c"]), timeout=WAIT_S)
    assert joined == b"a|b|c"
    replies = list(channel.unary_stream(method("ServerStream"))(b"4", timeout=WAIT_S))
    assert replies == [b"reply 0", b"reply 1", b"reply 2", b"reply 3"]
    # Full duplex: each reply comes back before the next request is sent.
    requests: queue.Queue[bytes | None] = queue.Queue()

    def outgoing() -> Iterator[bytes]:
        while (item := requests.get(timeout=WAIT_S)) is not None:
            yield item

    stream = channel.stream_stream(method("Bidi"))(outgoing(), timeout=WAIT_S)
    for i in range(5):
        requests.put(f"m{i}".encode())
        assert next(stream) == f"echo m{i}".encode()
    requests.put(None)
    assert list(stream) == [] and stream.code() == grpc.StatusCode.OK


def test_a_backend_error_keeps_code_message_and_details(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        channel.unary_unary(method("Fail"))(b"9", timeout=WAIT_S)
    error = failed.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert error.details() == "failed as asked: 100% ✓"  # type: ignore[attr-defined]
    trailing = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    assert trailing["grpc-status-details-bin"] == DETAILS


def test_the_deadline_reaches_the_backend_shortened_by_the_route(
    setup: Setup, channel: grpc.Channel
) -> None:
    mark = len(setup.backend.output)
    channel.unary_unary(method("Unary"))(b"short", timeout=5)
    line = backend_line(setup.backend, "CALL Unary", mark)
    assert 0 < float(line.split("remaining=")[1]) <= 5.5
    mark = len(setup.backend.output)
    list(channel.unary_stream(method("ServerStream"))(b"1", timeout=3600))
    line = backend_line(setup.backend, "CALL ServerStream", mark)
    assert 5.5 < float(line.split("remaining=")[1]) <= ROUTE_TIMEOUT_S + 1
    with pytest.raises(grpc.RpcError) as expired:
        channel.unary_unary(method("Hang"))(b"x", timeout=0.5)
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]


def test_a_client_cancel_reaches_the_backend(setup: Setup, channel: grpc.Channel) -> None:
    mark = len(setup.backend.output)
    future = channel.unary_unary(method("Hang")).future(b"x", timeout=WAIT_S)
    backend_line(setup.backend, "CALL Hang", mark)
    assert future.cancel()
    backend_line(setup.backend, "CANCELLED Hang", mark)


def test_no_route_is_a_grpc_status(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        channel.unary_unary("/other.v1.Service/Method")(b"", timeout=WAIT_S)
    assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
    assert "no route" in missing.value.details()  # type: ignore[attr-defined]


def test_retries_skip_a_dead_endpoint(channel: grpc.Channel) -> None:
    unary = channel.unary_unary(method("Unary"))
    for i in range(6):  # round robin puts the dead endpoint first every other call
        assert unary(f"r{i}".encode(), metadata=(("x-route", "retry"),), timeout=WAIT_S) == (
            f"r{i}".encode()
        )


def test_grpc_web_and_connect_over_http2(setup: Setup) -> None:
    with httpx.Client(
        base_url=f"http://{setup.address}", http1=False, http2=True, timeout=WAIT_S
    ) as h2:
        body = b"\x00" + (2).to_bytes(4, "big") + b"hi"
        web = h2.post(
            method("Unary"), content=body, headers={"content-type": "application/grpc-web+proto"}
        )
        assert web.http_version == "HTTP/2"
        assert web.content.startswith(body)
        trailers = web.content[len(body) :]
        assert trailers[0] == 0x80 and b"grpc-status: 0\r\n" in trailers
        block = trailers[5:].decode()
        blob = block.split("x-trailer-bin: ")[1].split("\r\n")[0]
        assert base64.b64decode(blob) == TRAILER_BYTES
        connect = h2.post(
            method("Unary"), content=b"raw", headers={"content-type": "application/proto"}
        )
        assert connect.http_version == "HTTP/2" and connect.content == b"raw"
        assert base64.b64decode(connect.headers["trailer-x-trailer-bin"]) == TRAILER_BYTES
        # Connect client streaming: envelopes in, one envelope and end-of-stream out.
        envelopes = b"".join(b"\x00" + (1).to_bytes(4, "big") + m for m in (b"a", b"b"))
        streamed = h2.post(
            method("ClientStream"),
            content=envelopes,
            headers={"content-type": "application/connect+proto"},
        )
        assert streamed.content == b"\x00\x00\x00\x00\x03a|b" + b"\x02\x00\x00\x00\x02{}"


def test_h2_over_tls_by_alpn(setup: Setup) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=setup.ca)
    with grpc.secure_channel(setup.tls_address, credentials) as channel:
        blob = bytes(range(256))
        response, call = channel.unary_unary(method("Unary")).with_call(
            b"over tls", metadata=(("x-echo-blob-bin", blob),), timeout=WAIT_S
        )
        assert response == b"over tls"
        assert dict(call.trailing_metadata())["x-echo-blob-bin"] == blob
        replies = channel.stream_stream(method("Bidi"))(iter([b"1", b"2"]), timeout=WAIT_S)
        assert list(replies) == [b"echo 1", b"echo 2"]
