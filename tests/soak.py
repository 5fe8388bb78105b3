"""Soak: good and hostile clients, backend kills and reloads against one worker.

    python -m tests.soak --seconds 300      (``make soak``)

Everything is on loopback and bounded: the run stops after ``--seconds``,
every client call has a timeout, and the backend and gateway are stopped on
the way out. It prints one report (and writes it as JSON with ``--json``):

* requests sent and how each kind ended: good requests answered 200, good
  requests refused while the backend was down (a 5xx within BACKEND_GRACE
  seconds of a kill, which is the right answer), hostile requests answered
  with the status their case expects, and failures (anything else, a
  connection error to the gateway, a timeout);
* the worker's RSS and open fds after warm-up and after the load stops.

``tests/integration/test_soak.py`` runs the short form in ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import Process, python_module
from tests.support.protos import echo_descriptor_set

ECHO = "/meshgate.test.v1.EchoService/Echo"
STREAM = "/meshgate.test.v1.EchoService/ServerStream"
MIB = 1024 * 1024
# After a backend kill, 5xx answers to good requests are right for this long.
BACKEND_GRACE = 4.0
GOOD_CLIENTS = 4
CALL_TIMEOUT = 10.0


@dataclass
class SoakReport:
    seconds: float
    sent: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    backend_kills: int = 0
    reloads: int = 0
    rss_start_mib: float = 0.0
    rss_end_mib: float = 0.0
    fds_start: int = 0
    fds_end: int = 0
    worker_alive: bool = True

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def text(self) -> str:
        lines = [
            f"soak: {self.seconds:.0f}s, {self.sent} requests sent, {self.failed} failed",
            f"  outcomes: {dict(sorted(self.outcomes.items()))}",
            f"  failures: {dict(sorted(self.failures.items())) or 'none'}",
            f"  backend kills: {self.backend_kills}, reloads (SIGHUP): {self.reloads}",
            f"  worker RSS: {self.rss_start_mib:.1f} MiB -> {self.rss_end_mib:.1f} MiB",
            f"  worker fds: {self.fds_start} -> {self.fds_end}",
            f"  worker alive at the end: {self.worker_alive}",
        ]
        return "\n".join(lines)


def soak_config(backend_port: int) -> dict[str, Any]:
    return {
        "descriptors": [{"file": str(echo_descriptor_set())}],
        "listeners": [
            {
                "name": "soak",
                "limits": {
                    "max_request_header_bytes": 16 * 1024,
                    "header_read_timeout": "1s",
                    "body_read_timeout": "1s",
                    "idle_timeout": "5s",
                },
                "routes": [
                    {
                        "match": {"regex": r"/api/(\w+/?)*/run"},
                        "transcode": {"auto_mapping": True},
                        "cluster": "echo",
                    },
                    {
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True},
                        "cluster": "echo",
                        "timeout": "3s",
                        "max_response_bytes": MIB,
                    },
                ],
            }
        ],
        "clusters": [
            {
                "name": "echo",
                "endpoints": [{"address": f"127.0.0.1:{backend_port}"}],
                "max_requests": 16,
            }
        ],
    }


class Backend:
    """The echo backend, killed (SIGKILL) and started again on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: Process | None = None
        self.last_kill = float("-inf")
        self.start()

    def start(self) -> None:
        args = python_module("tests.support.backend", "--port", str(self.port), "--name", "soak")
        self.process = Process(args)
        self.process.wait_for_line("READY", 30)

    def kill(self) -> None:
        assert self.process is not None
        self.last_kill = time.monotonic()
        os.killpg(self.process.proc.pid, signal.SIGKILL)
        self.process.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def recently_down(self) -> bool:
        return time.monotonic() - self.last_kill < BACKEND_GRACE


def worker_usage(pid: int) -> tuple[float, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def raw(address: tuple[str, int], data: bytes, linger: float = 0.0) -> int:
    """Send ``data``; the status the gateway answers, or 0 if it just closed."""
    with socket.create_connection(address, timeout=CALL_TIMEOUT) as sock:
        sock.sendall(data)
        if linger:
            time.sleep(linger)
            return -1  # the client leaves without reading
        reply = b""
        while b"\r\n" not in reply:
            piece = sock.recv(4096)
            if not piece:
                return 0
            reply += piece
    return int(reply.split(b" ", 2)[1])


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


# Each hostile case: a name, what it sends, the statuses that are right.
HostileCase = tuple[str, Callable[[tuple[str, int]], int], frozenset[int]]
HOSTILE: list[HostileCase] = [
    (
        "huge_header",
        lambda a: raw(a, post(ECHO, b"{}", f"x-big: {'a' * 40_000}\r\n")),
        frozenset({431}),
    ),
    (
        "quadratic_timeout",
        lambda a: raw(a, post(ECHO, b"{}", f"x-request-timeout: 1{' ' * 10_000}x\r\n")),
        frozenset({400}),
    ),
    (
        "zero_deadline",
        lambda a: raw(a, post(ECHO, b"{}", "grpc-timeout: 0n\r\n")),
        frozenset({400}),
    ),
    ("parser_error", lambda a: raw(a, b"NOT HTTP\r\n\r\n"), frozenset({400})),
    ("stalled_body", lambda a: raw(a, post(ECHO, b"{}")[:-1]), frozenset({408})),
    ("trickled_head", lambda a: raw(a, f"POST {ECHO} HTTP/1.1\r\n".encode()), frozenset({408})),
    (
        "abandoned_call",
        lambda a: raw(a, post(ECHO, b'{"delay_seconds": 2}'), linger=0.1),
        frozenset({-1}),
    ),
    (
        "deep_json",
        lambda a: raw(a, post(ECHO, b'{"extra": ' + b'{"a": ' * 600 + b"1" + b"}" * 601)),
        frozenset({400}),
    ),
    (
        "duplicate_keys",
        lambda a: raw(a, post(ECHO, b'{"message": "a", "message": "b"}')),
        frozenset({400}),
    ),
    (
        "exponential_regex",
        lambda a: raw(a, post("/api/" + "a" * 400 + "!/run", b"{}")),
        frozenset({404}),
    ),
    (
        "encoded_slash",
        lambda a: raw(a, post("/meshgate.test.v1.EchoService%2FEcho", b"{}")),
        frozenset({404}),
    ),
    (
        "oversized_reply",
        lambda a: raw(a, post(ECHO, json.dumps({"message": "m" * (2 * MIB)}).encode())),
        frozenset({502, 503}),
    ),
]


@contextmanager
def _stack(config: dict[str, Any], backend_port: int) -> Iterator[tuple[RunningGateway, Backend]]:
    backend = Backend(backend_port)
    try:
        with (
            TemporaryDirectory(prefix="meshgate-soak-") as tmp,
            run_gateway(config, Path(tmp)) as gateway,
        ):
            yield gateway, backend
    finally:
        backend.stop()


def soak(seconds: float, kill_every: float = 20.0, reload_every: float = 10.0) -> SoakReport:
    report = SoakReport(seconds)
    backend_port = free_port()
    lock = threading.Lock()

    def count(outcome: str, failure: str | None = None) -> None:
        with lock:
            report.sent += 1
            report.outcomes[outcome] += 1
            if failure is not None:
                report.failures[failure] += 1

    with _stack(soak_config(backend_port), backend_port) as (gateway, backend):
        pid = gateway.process.proc.pid
        host, _, port = gateway.url.removeprefix("http://").rpartition(":")
        address = (host, int(port))
        with httpx.Client(base_url=gateway.url, timeout=CALL_TIMEOUT) as warm:
            for _ in range(50):
                warm.post(ECHO, json={"message": "warm"})
        report.rss_start_mib, report.fds_start = worker_usage(pid)
        stop_at = time.monotonic() + seconds
        stopping = threading.Event()

        def good_client(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=gateway.url, timeout=CALL_TIMEOUT) as client:
                while not stopping.is_set():
                    try:
                        if rng.random() < 0.1:
                            reply = client.post(STREAM, json={"message": "s", "tags": ["a"] * 5})
                        else:
                            reply = client.post(ECHO, json={"message": "good"})
                    except httpx.HTTPError as exc:
                        count("good_error", f"good: {type(exc).__name__}")
                        continue
                    if reply.status_code == 200:
                        count("good_ok")
                    elif reply.status_code in (502, 503, 504) and backend.recently_down():
                        count("good_backend_down")
                    else:
                        count("good_wrong", f"good: HTTP {reply.status_code}")

        def hostile_client(offset: int) -> None:
            # Every case in turn, so a short run sees each of them.
            turn = offset
            while not stopping.is_set():
                name, send, expected = HOSTILE[turn % len(HOSTILE)]
                turn += 1
                try:
                    status = send(address)
                except OSError as exc:
                    count("hostile_error", f"{name}: {type(exc).__name__}")
                    continue
                if status in expected or (status in (502, 503, 504) and backend.recently_down()):
                    count(f"hostile_{name}")
                else:
                    count("hostile_wrong", f"{name}: HTTP {status}")

        threads = [
            threading.Thread(target=good_client, args=(i,), daemon=True)
            for i in range(GOOD_CLIENTS)
        ] + [
            threading.Thread(target=hostile_client, args=(i * len(HOSTILE) // 2,), daemon=True)
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        next_kill = time.monotonic() + kill_every / 2
        next_reload = time.monotonic() + reload_every / 2
        try:
            while time.monotonic() < stop_at:
                time.sleep(0.2)
                now = time.monotonic()
                if now >= next_kill:
                    backend.kill()
                    report.backend_kills += 1
                    time.sleep(1.0)
                    backend.start()
                    next_kill = now + kill_every
                if now >= next_reload:
                    os.kill(pid, signal.SIGHUP)
                    report.reloads += 1
                    next_reload = now + reload_every
                if gateway.process.proc.poll() is not None:
                    break
        finally:
            stopping.set()
            for thread in threads:
                thread.join(CALL_TIMEOUT + 5)
        report.worker_alive = gateway.process.proc.poll() is None
        if report.worker_alive:
            time.sleep(2.0)  # idle sockets close, abandoned calls end
            report.rss_end_mib, report.fds_end = worker_usage(pid)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    report = soak(args.seconds)
    print(report.text())
    if args.json:
        data = asdict(report) | {"failed": report.failed}
        args.json.write_text(json.dumps(data, indent=2, default=dict))
    sys.exit(0 if report.worker_alive and report.failed == 0 else 1)


if __name__ == "__main__":
    main()
