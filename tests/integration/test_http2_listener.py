"""HTTP/2 on the gateway's listeners, against a real meshgate process and
grpcio backends on loopback: h2c with prior knowledge, h2 over TLS chosen by
ALPN beside HTTP/1.1 on the same listener, many streams on one connection,
a client's RST_STREAM reaching the backend as a cancellation, the stream
limit, a slow reader that must not grow the worker, and the graceful GOAWAY
on drain.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from h2.errors import ErrorCodes
from h2.settings import Settings
from hyperframe.frame import DataFrame, GoAwayFrame

from tests.support.gateway import RunningGateway, run_gateway
from tests.support.h2_client import H2Client, parse_frames
from tests.support.net import free_port
from tests.support.processes import echo_backend
from tests.support.protos import echo_descriptor_set, load_pool, message_class
from tests.support.tls_ca import ServerFiles, make_loopback_certs

pytestmark = pytest.mark.integration

SERVICE = "meshgate.test.v1.EchoService"
ECHO = f"/{SERVICE}/Echo"
STREAM = f"/{SERVICE}/ServerStream"
JSON = [("content-type", "application/json")]
HANG = [*JSON, ("x-backend", "hang")]
NDJSON = [*JSON, ("x-stream", "ndjson")]
TIGHT_STREAMS = 2
MIB = 1024 * 1024
# How far the worker's RSS may rise while a client reads nothing of a
# response of about 150 MB: 5-9 MiB measured; with the socket's back-pressure
# removed it grew past 64 MiB in the same 6 seconds.
RSS_SLACK = 32 * MIB


class HangingBackend:
    """EchoService/Echo on a grpcio server in this process: each call waits
    until the caller cancels it (at most a minute); both are counted."""

    def __init__(self) -> None:
        pool = load_pool(echo_descriptor_set())
        self._request = message_class(pool, "meshgate.test.v1.EchoRequest")
        self._reply = message_class(pool, "meshgate.test.v1.EchoReply")
        self._lock = threading.Lock()
        self.calls = 0
        self.cancelled = 0
        self.port = free_port()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        handler = grpc.unary_unary_rpc_method_handler(
            self._echo,
            request_deserializer=self._request.FromString,
            response_serializer=self._reply.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Echo": handler}),)
        )
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")

    def _echo(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.calls += 1
        deadline = time.monotonic() + 60
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not context.is_active():
            with self._lock:
                self.cancelled += 1
        return self._reply(served_by="hang")


@dataclass
class Gateway:
    running: RunningGateway
    public: tuple[str, int]
    tight: tuple[str, int]
    secure: tuple[str, int]
    certs: ServerFiles
    hang: HangingBackend

    def url(self, address: tuple[str, int], scheme: str = "http") -> str:
        return f"{scheme}://{address[0]}:{address[1]}"

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certs.ca))


def routes() -> list[dict[str, Any]]:
    rpc = {"auto_mapping": True}
    return [
        {
            "name": "hang",
            "match": {"prefix": "/", "headers": [{"name": "x-backend", "exact": "hang"}]},
            "transcode": rpc,
            "cluster": "hang",
            "timeout": "60s",
        },
        {
            "name": "ndjson",
            "match": {"prefix": "/", "headers": [{"name": "x-stream", "exact": "ndjson"}]},
            "transcode": {**rpc, "stream": "ndjson"},
            "cluster": "echo",
            "timeout": "60s",
        },
        {"name": "rpc", "match": {"prefix": "/"}, "transcode": rpc, "cluster": "echo"},
    ]


def gateway_config(
    echo_port: int, hang_port: int, certs: ServerFiles, addresses: list[str]
) -> dict[str, Any]:
    public, tight, secure = addresses
    return {
        "descriptors": [{"file": str(echo_descriptor_set())}],
        "listeners": [
            {"name": "public", "address": public, "routes": routes()},
            {
                "name": "tight",
                "address": tight,
                "limits": {"max_concurrent_streams": TIGHT_STREAMS},
                "routes": routes(),
            },
            {
                "name": "secure",
                "address": secure,
                "tls": {"cert": str(certs.cert), "key": str(certs.key)},
                "routes": routes(),
            },
        ],
        "clusters": [
            {"name": "echo", "endpoints": [{"address": f"127.0.0.1:{echo_port}"}]},
            {"name": "hang", "endpoints": [{"address": f"127.0.0.1:{hang_port}"}]},
        ],
    }


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("http2")
    certs = make_loopback_certs(directory)
    hang = HangingBackend()
    hang.server.start()
    echo_port = free_port()
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    try:
        with (
            echo_backend(echo_port, "echo"),
            run_gateway(gateway_config(echo_port, hang.port, certs, addresses), directory) as gw,
        ):
            public, tight, secure = (split(a) for a in addresses)
            yield Gateway(gw, public, tight, secure, certs, hang)
    finally:
        hang.server.stop(0)


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def echo_body(message: str, **fields: Any) -> bytes:
    return json.dumps({"message": message, **fields}).encode()


def worker_rss(gateway: RunningGateway) -> int:
    """RSS bytes of the worker (one worker: the process itself)."""
    status = Path(f"/proc/{gateway.process.proc.pid}/status").read_text()
    return (
        next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        * 1024
    )


# -- h2c -------------------------------------------------------------------------------


def test_h2c_prior_knowledge_rest_post_and_get(gateway: Gateway) -> None:
    with httpx.Client(
        base_url=gateway.url(gateway.public), http1=False, http2=True, timeout=15
    ) as client:
        reply = client.post(ECHO, json={"message": "over h2c"})
        assert reply.http_version == "HTTP/2"
        assert reply.status_code == 200, reply.text
        assert reply.json()["request"]["message"] == "over h2c"
        missing = client.get("/no.such.Service/Method")
        assert missing.http_version == "HTTP/2"
        assert missing.status_code == 404
        assert missing.json()["code"] == 5


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_http2_prior_knowledge(gateway: Gateway) -> None:
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2-prior-knowledge",
            "-H",
            "content-type: application/json",
            "--data",
            '{"message": "from curl"}',
            "-w",
            "\\n%{http_version} %{http_code}",
            gateway.url(gateway.public) + ECHO,
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    body, _, summary = result.stdout.decode().rpartition("\n")
    assert summary == "2 200"
    assert json.loads(body)["request"]["message"] == "from curl"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_http2_upgrades_cleartext_with_its_body(gateway: Gateway) -> None:
    # curl --http2 on http:// asks for h2c by Upgrade on its first request;
    # the body must survive the switch, and the second request rides h2.
    url = gateway.url(gateway.public) + ECHO
    request = ["--http2", "-H", "content-type: application/json", "-w", "\\n%{http_version}\\n"]
    first = [*request, "-d", '{"message": "one"}', url]
    second = [*request, "-d", '{"message": "two"}', url]
    result = subprocess.run(
        ["curl", "-sS", *first, "--next", *second],
        capture_output=True,
        timeout=30,
        check=True,
    )
    lines = result.stdout.decode().split()
    assert [json.loads(line)["request"]["message"] for line in lines[0::2]] == ["one", "two"]
    assert lines[1::2] == ["2", "2"]


def test_http_1_1_still_served_on_the_same_cleartext_listener(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url(gateway.public), timeout=15) as client:
        reply = client.post(ECHO, json={"message": "over h1"})
    assert reply.http_version == "HTTP/1.1"
    assert reply.json()["request"]["message"] == "over h1"


# -- TLS and ALPN -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"), [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")]
)
def test_alpn_picks_the_protocol(gateway: Gateway, offered: list[str], chosen: str) -> None:
    context = gateway.tls_context()
    context.set_alpn_protocols(offered)
    with (
        socket.create_connection(gateway.secure, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.selected_alpn_protocol() == chosen


def test_h2_over_tls_and_http_1_1_beside_it(gateway: Gateway) -> None:
    base = gateway.url(gateway.secure, "https")
    with httpx.Client(base_url=base, http2=True, verify=gateway.tls_context(), timeout=15) as h2:
        reply = h2.post(ECHO, json={"message": "h2 over tls"})
        assert (reply.http_version, reply.status_code) == ("HTTP/2", 200)
        assert reply.json()["request"]["message"] == "h2 over tls"
    with httpx.Client(base_url=base, verify=gateway.tls_context(), timeout=15) as h1:
        reply = h1.post(ECHO, json={"message": "h1 over tls"})
        assert (reply.http_version, reply.status_code) == ("HTTP/1.1", 200)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_http2_over_tls(gateway: Gateway) -> None:
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2",
            "--cacert",
            str(gateway.certs.ca),
            "-H",
            "content-type: application/json",
            "--data",
            '{"message": "curl tls"}',
            "-w",
            "\\n%{http_version} %{http_code}",
            gateway.url(gateway.secure, "https") + ECHO,
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    body, _, summary = result.stdout.decode().rpartition("\n")
    assert summary == "2 200"
    assert json.loads(body)["request"]["message"] == "curl tls"


# -- streams ----------------------------------------------------------------------------------


def test_many_concurrent_streams_on_one_connection(gateway: Gateway) -> None:
    with H2Client.connect(gateway.public) as client:
        streams = {
            client.request("POST", ECHO, JSON, echo_body(f"m{i}", delay_seconds=0.3)): f"m{i}"
            for i in range(60)
        }
        for stream, message in streams.items():
            result = client.wait(stream, timeout=60)
            assert result.status == 200, bytes(result.body)
            assert json.loads(result.body)["request"]["message"] == message


def test_rest_server_streaming_as_ndjson_over_h2(gateway: Gateway) -> None:
    with (
        httpx.Client(
            base_url=gateway.url(gateway.public), http1=False, http2=True, timeout=30
        ) as client,
        client.stream(
            "POST", STREAM, json={"message": "s", "tags": ["a", "b", "c"]}, headers=dict(NDJSON)
        ) as reply,
    ):
        assert reply.http_version == "HTTP/2"
        assert reply.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in reply.iter_lines() if line.strip()]
    assert [line["request"]["message"] for line in lines] == ["s#0", "s#1", "s#2"]


def test_client_reset_cancels_the_backend_call(gateway: Gateway) -> None:
    hang = gateway.hang
    calls, cancelled = hang.calls, hang.cancelled
    with H2Client.connect(gateway.public) as client:
        stream = client.request("POST", ECHO, HANG, echo_body("hold"))
        assert wait_for(lambda: hang.calls == calls + 1)
        client.reset(stream, ErrorCodes.CANCEL)
        assert wait_for(lambda: hang.cancelled == cancelled + 1), "the backend call went on"
        # The connection serves the next stream.
        after = client.wait(client.request("POST", ECHO, JSON, echo_body("after")))
        assert after.status == 200


def test_streams_past_the_listeners_limit_are_refused(gateway: Gateway) -> None:
    hang = gateway.hang
    calls = hang.calls
    with H2Client.connect(gateway.tight) as client:
        client.read_until(lambda: client.settings_received)
        assert client.conn.remote_settings.max_concurrent_streams == TIGHT_STREAMS
        held = [client.request("POST", ECHO, HANG, echo_body("hold")) for _ in range(TIGHT_STREAMS)]
        assert wait_for(lambda: hang.calls == calls + TIGHT_STREAMS)
        # A client that ignores the limit: h2 would not send this one.
        client.conn.remote_settings = Settings(client=False)
        refused = client.request("POST", ECHO, JSON, echo_body("one too many"))
        result = client.wait(refused)
        assert result.reset == ErrorCodes.REFUSED_STREAM
        for stream in held:
            client.reset(stream)
        # Below the limit again: served.
        again = client.wait(client.request("POST", ECHO, JSON, echo_body("now")))
        assert again.status == 200


# -- back-pressure ----------------------------------------------------------------------------


@pytest.mark.parametrize("stalls", ["window", "socket"])
def test_a_slow_reader_does_not_grow_the_worker(gateway: Gateway, stalls: str) -> None:
    """The client takes the head and a little data, then "window": never
    acknowledges DATA (h2 flow control stops the gateway), or "socket": has
    granted a huge window but stops reading the socket (TCP stops it)."""
    with httpx.Client(base_url=gateway.url(gateway.public), timeout=15) as warm:
        for _ in range(10):
            assert warm.post(ECHO, json={"message": "warm"}).status_code == 200
    baseline = worker_rss(gateway.running)
    # About 3,000 replies of ~50 KB of JSON each: 150 MB if buffered.
    body = echo_body("x" * 32 * 1024, tags=["t"] * 3000)
    window = 1 << 30 if stalls == "socket" else None
    with H2Client.connect(gateway.public, auto_ack=False, window=window) as client:
        stream = client.request("POST", STREAM, NDJSON, body)
        client.read_until(lambda: len(client.streams[stream].body) > 0, timeout=30)
        assert client.streams[stream].status == 200
        peak = baseline
        for _ in range(12):  # the client reads nothing from here on
            time.sleep(0.5)
            peak = max(peak, worker_rss(gateway.running))
        # Meanwhile the worker serves others.
        with httpx.Client(base_url=gateway.url(gateway.public), timeout=15) as other:
            assert other.post(ECHO, json={"message": "still here"}).status_code == 200
    assert peak - baseline < RSS_SLACK, f"RSS grew by {(peak - baseline) / MIB:.0f} MiB"


# -- drain -------------------------------------------------------------------------------------


def test_drain_sends_goaway_and_finishes_the_stream_in_flight(
    tmp_path: Path, gateway: Gateway
) -> None:
    echo_port = free_port()
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    config = gateway_config(echo_port, gateway.hang.port, gateway.certs, addresses)
    config["drain_timeout"] = "20s"
    with (
        echo_backend(echo_port, "echo"),
        run_gateway(config, tmp_path) as running,
        H2Client.connect(split(addresses[0])) as client,
    ):
        stream = client.request("POST", ECHO, JSON, echo_body("slow", delay_seconds=2))
        time.sleep(0.5)
        running.process.proc.send_signal(signal.SIGTERM)
        # Raw frames: h2's own client stops at a GOAWAY, real clients
        # (curl, grpc) read the streams it lets finish.
        sent = parse_frames(client.read_raw())
    (goaway,) = [f for f in sent if isinstance(f, GoAwayFrame)]
    assert (goaway.last_stream_id, goaway.error_code) == (stream, ErrorCodes.NO_ERROR)
    after = sent[sent.index(goaway) :]
    data = [f for f in after if isinstance(f, DataFrame) and f.stream_id == stream]
    assert b'"slow"' in b"".join(f.data for f in data)
    assert "END_STREAM" in data[-1].flags
