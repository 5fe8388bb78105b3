"""Flow control through the passthrough, measured: a slow reader on either
side holds the other back instead of growing the gateway's memory.

* A backend floods 80 MB of replies to a client that stops reading: the
  backend cannot finish (it is held by HTTP/2 flow control all the way back)
  and the gateway's RSS stays near where it was.
* A client streams 80 MB to a backend that does not read for a while: the
  client cannot send it all (held back the same way), and the gateway's RSS
  stays near where it was.
* A bidi echo of 100k messages whose client reads nothing for a while: both
  directions back up and the gateway's RSS stays near where it was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import Process, python_module, running
from tests.support.raw_grpc_backend import FLOOD_BYTES, SERVICE

pytestmark = pytest.mark.integration

MESSAGES = 20_000  # 80 MB of 4 KiB messages
PAUSE_S = 4.0
# HTTP/2 windows (the client's, the gateway's on both sides, grpc's BDP
# probing) hold a few MB; 80 MB buffered would be far past this.
RSS_SLACK = 40 * 1024 * 1024
WAIT_S = 120.0


@dataclass
class Setup:
    gateway: RunningGateway
    backend: Process
    address: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    port = free_port()
    address = f"127.0.0.1:{free_port()}"
    config = {
        "listeners": [
            {
                "name": "rpc",
                "address": address,
                "protocol": "grpc",
                "routes": [{"match": {"prefix": f"/{SERVICE}/"}, "cluster": "raw", "timeout": 0}],
            }
        ],
        "clusters": [{"name": "raw", "endpoints": [{"address": f"127.0.0.1:{port}"}]}],
    }
    with (
        running(
            python_module("tests.support.raw_grpc_backend", "--port", str(port)), "READY"
        ) as backend,
        run_gateway(config, tmp_path_factory.mktemp("backpressure")) as gateway,
    ):
        yield Setup(gateway, backend, address)


def rss(gateway: RunningGateway) -> int:
    """The worker's RSS (one worker: the gateway process itself)."""
    status = Path(f"/proc/{gateway.process.proc.pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))


def test_a_client_that_stops_reading_holds_the_backend_back(setup: Setup) -> None:
    with grpc.insecure_channel(setup.address) as channel:
        warm = channel.unary_stream(f"/{SERVICE}/Flood")(b"100", timeout=WAIT_S)
        assert len(list(warm)) == 100
        before = rss(setup.gateway) * 1024
        replies = channel.unary_stream(f"/{SERVICE}/Flood")(str(MESSAGES).encode(), timeout=WAIT_S)
        assert len(next(replies)) == FLOOD_BYTES
        mark = len(setup.backend.output)
        time.sleep(PAUSE_S)  # the client reads nothing
        paused = rss(setup.gateway) * 1024
        assert "FLOODED" not in setup.backend.output[mark:]
        assert paused - before < RSS_SLACK, f"RSS grew {(paused - before) >> 20} MiB"
        assert sum(1 for _ in replies) == MESSAGES - 1
    print(f"flood: gateway RSS {before >> 20} MiB -> {paused >> 20} MiB while paused")


def test_a_backend_that_does_not_read_holds_the_client_back(setup: Setup) -> None:
    sent = 0
    lock = threading.Lock()

    def requests() -> Iterator[bytes]:
        nonlocal sent
        chunk = b"s" * FLOOD_BYTES
        for _ in range(MESSAGES):
            with lock:
                sent += 1
            yield chunk

    with grpc.insecure_channel(setup.address) as channel:
        sink = channel.stream_unary(f"/{SERVICE}/SlowSink")
        assert sink(iter([b"x"]), timeout=WAIT_S) == b"1"
        before = rss(setup.gateway) * 1024
        future = sink.future(requests(), metadata=(("x-hold", str(PAUSE_S * 2)),), timeout=WAIT_S)
        time.sleep(PAUSE_S)  # the backend reads nothing yet
        paused = rss(setup.gateway) * 1024
        with lock:
            sent_while_held = sent
        assert sent_while_held < MESSAGES, "the client sent everything: nothing held it back"
        assert paused - before < RSS_SLACK, f"RSS grew {(paused - before) >> 20} MiB"
        assert future.result(timeout=WAIT_S) == str(MESSAGES).encode()
    print(
        f"sink: {sent_while_held} of {MESSAGES} messages sent while held; "
        f"gateway RSS {before >> 20} MiB -> {paused >> 20} MiB"
    )


BIDI_MESSAGES = 100_000  # the figure: 100k 1 KiB messages, about 100 MB each way


def test_a_bidi_stream_through_a_slow_reader_does_not_grow_the_gateway(setup: Setup) -> None:
    """The client sends 100k messages on a bidi echo and reads none of the
    echoes for a while: the backend's replies back up, it stops reading, and
    the client's sends are held, with the gateway's memory flat throughout."""
    sent = 0
    lock = threading.Lock()

    def requests() -> Iterator[bytes]:
        nonlocal sent
        chunk = b"b" * 1024
        for _ in range(BIDI_MESSAGES):
            with lock:
                sent += 1
            yield chunk

    with grpc.insecure_channel(setup.address) as channel:
        bidi = channel.stream_stream(f"/{SERVICE}/Bidi")
        assert list(bidi(iter([b"warm"]), timeout=WAIT_S)) == [b"echo warm"]
        before = rss(setup.gateway) * 1024
        replies = bidi(requests(), timeout=WAIT_S)
        assert next(replies) == b"echo " + b"b" * 1024
        time.sleep(PAUSE_S)  # the client reads nothing
        paused = rss(setup.gateway) * 1024
        with lock:
            sent_while_held = sent
        assert sent_while_held < BIDI_MESSAGES, "the client sent everything: nothing held it back"
        assert paused - before < RSS_SLACK, f"RSS grew {(paused - before) >> 20} MiB"
        assert sum(1 for _ in replies) == BIDI_MESSAGES - 1
        after = rss(setup.gateway) * 1024
    print(
        f"bidi: {sent_while_held} of {BIDI_MESSAGES} messages sent while the reader paused; "
        f"gateway RSS {before >> 20} -> {paused >> 20} MiB paused, {after >> 20} MiB after"
    )
