"""Server streaming: one request, a stream of STREAM_MESSAGES small replies.

The Go backend's ``ServerStream`` sends ``big`` replies, each echoing the
request (about 60 bytes of JSON). Saturation is the usual closed loop
(wrk or h2load, 64 connections) counted in whole streams; messages/s is that
times STREAM_MESSAGES. Time to first message at c=1 is measured by a
blocking HTTP/1.1 client in this process (same client for every
transcoder): from the request's send to the arrival of the first complete
message. h2load cannot see inside a gRPC stream, so for direct gRPC the
column holds the c=1 latency of a one-message stream instead (an upper
bound: it includes the trailers).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.contestants import Running
from bench.loadgen import Latencies, Target, paced_latencies, saturation
from bench.measure import Durations
from bench.payloads import stream_payload
from bench.procstat import TreeUsage

STREAM_MESSAGES = 100
STREAM_PATH = "/meshgate.test.v1.EchoService/ServerStream"
# The end of every reply's JSON: served_by is its last field.
MESSAGE_END = b'"go-backend"}'


def write_stream_bodies(directory: Path) -> None:
    many, one = stream_payload(STREAM_MESSAGES), stream_payload(1)
    (directory / "stream.json").write_bytes(many.json_body)
    (directory / "stream.grpc").write_bytes(many.grpc_frame)
    (directory / "stream1.grpc").write_bytes(one.grpc_frame)


@dataclass(frozen=True)
class StreamResult:
    name: str
    rps: float
    errors: int
    single: Latencies  # whole stream, c=1
    first_message_ms: float  # p50 at c=1
    first_is_proxy: bool  # True: a one-message stream's latency (direct gRPC)
    cpu_per_10k: float | None  # CPU s per 10k streams
    messages_seen: int | None  # messages in one checked response

    @property
    def messages_per_second(self) -> float:
        return self.rps * STREAM_MESSAGES


class StreamError(RuntimeError):
    pass


def _read_response(sock: socket.socket, started: int) -> tuple[int, int, bytes]:
    """(ns to the first complete message, ns to the end, body) of one HTTP/1.1 response."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise StreamError("connection closed in the headers")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise StreamError(f"status {status.decode()}: {body[:200]!r}")
    lower = head.lower()
    chunked = b"transfer-encoding: chunked" in lower
    length = None
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    first = time.perf_counter_ns() - started if MESSAGE_END in body else 0
    while True:
        if chunked and (body.endswith(b"\r\n0\r\n\r\n") or body.startswith(b"0\r\n\r\n")):
            break
        if length is not None and len(body) >= length:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise StreamError("connection closed in the body")
        body += chunk
        if not first and MESSAGE_END in body:
            first = time.perf_counter_ns() - started
    return first, time.perf_counter_ns() - started, body


def first_message_latencies(url: str, body: bytes, seconds: float) -> tuple[list[float], int]:
    """c=1 on one keep-alive connection: first-message latencies (ms), messages per stream."""
    parts = urlsplit(url)
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    firsts: list[float] = []
    messages = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter_ns()
            sock.sendall(request)
            first, _end, response = _read_response(sock, started)
            firsts.append(first / 1e6)
            messages = response.count(MESSAGE_END)
    return sorted(firsts), messages


def measure_stream(running: Running, bodies: Path, durations: Durations) -> StreamResult:
    usage = TreeUsage(running.pid) if running.pid else None
    suffix = "grpc" if running.grpc else "json"
    target = Target(running.url, bodies / f"stream.{suffix}", running.grpc)
    messages: int | None = None
    if not running.grpc:
        _, messages = first_message_latencies(running.url, target.body_file.read_bytes(), 0.01)
        if messages != STREAM_MESSAGES:
            raise StreamError(f"{running.name}: {messages} messages, not {STREAM_MESSAGES}")
    saturation(target, durations.warmup)
    cpu_before = usage.cpu_seconds() if usage else 0.0
    throughput = saturation(target, durations.saturation)
    cpu = usage.cpu_seconds() - cpu_before if usage else None
    single = paced_latencies(target, durations.single, clients=1, rps_per_client=None)
    if running.grpc:
        one = Target(running.url, bodies / "stream1.grpc", True)
        first = paced_latencies(one, durations.single, clients=1, rps_per_client=None)
        first_ms = first.percentile(50)
    else:
        firsts, _ = first_message_latencies(
            running.url, target.body_file.read_bytes(), durations.single
        )
        first_ms = Latencies(tuple(firsts), 0, 0.0).percentile(50)
    cpu_per_10k = (
        cpu / throughput.requests * 10_000 if cpu is not None and throughput.requests else None
    )
    result = StreamResult(
        running.name,
        throughput.rps,
        throughput.errors + single.errors,
        single,
        first_ms,
        running.grpc,
        cpu_per_10k,
        messages,
    )
    print(
        f"  {running.name:<28} {result.rps:8.0f} streams/s {result.messages_per_second:9.0f} "
        f"msg/s  c1 stream p50 {single.percentile(50):6.3f} ms  first msg p50 "
        f"{first_ms:6.3f} ms",
        flush=True,
    )
    return result
