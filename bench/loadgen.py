"""Load generators: wrk for HTTP/1.1 saturation, h2load for everything else.

* Saturation (closed loop): ``wrk -t2 -c64`` for the HTTP/1.1 contestants and
  ``h2load -t2 -c64 -m1`` for direct gRPC: 64 requests in flight, each
  connection sends its next request when the previous answer arrives.
* Fixed rate and concurrency 1: ``h2load --rps`` (``--h1`` for HTTP/1.1) with
  ``--log-file``; percentiles come from the per-request latencies in the log,
  not from h2load's summary (which has no percentiles).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")
JSON_HEADERS = ("content-type: application/json",)
SATURATION_CONNECTIONS = 64
SATURATION_THREADS = 2

WRK_SCRIPT = """
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
{extra}"""


class LoadError(RuntimeError):
    """The load generator failed or every request failed."""


@dataclass(frozen=True)
class Target:
    """Where to send and what: an HTTP/1.1 JSON endpoint or an HTTP/2 gRPC one."""

    url: str
    body_file: Path
    grpc: bool
    extra_headers: tuple[str, ...] = ()  # "name: value", e.g. Triple's tri-service-group

    @property
    def headers(self) -> tuple[str, ...]:
        return (GRPC_HEADERS if self.grpc else JSON_HEADERS) + self.extra_headers


@dataclass(frozen=True)
class Throughput:
    requests: int
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Latencies:
    """Per-request latencies in milliseconds, sorted, plus the rate actually achieved."""

    millis: tuple[float, ...]
    errors: int
    achieved_rps: float

    def percentile(self, p: float) -> float:
        if not self.millis:
            return float("nan")
        rank = min(len(self.millis) - 1, max(0, round(p / 100 * len(self.millis)) - 1))
        return self.millis[rank]


def _run(args: list[str], timeout: float) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise LoadError(f"{args[0]} exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


_WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def wrk_saturation(
    target: Target, seconds: float, connections: int = SATURATION_CONNECTIONS
) -> Throughput:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        extra = "".join(
            f'wrk.headers["{name}"] = "{value.strip()}"\n'
            for name, value in (header.split(":", 1) for header in target.extra_headers)
        )
        script.write(WRK_SCRIPT.format(body=target.body_file, extra=extra))
    try:
        out = _run(
            [
                "wrk",
                f"-t{SATURATION_THREADS}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                target.url,
            ],
            timeout=seconds + 30,
        )
    finally:
        Path(script.name).unlink()
    total = _WRK_TOTAL.search(out)
    if total is None:
        raise LoadError(f"unexpected wrk output:\n{out}")
    errors = 0
    if m := _WRK_NON_2XX.search(out):
        errors += int(m.group(1))
    if m := _WRK_SOCKET.search(out):
        errors += sum(int(g) for g in m.groups())
    requests = int(total.group(1))
    elapsed = float(total.group(2)) * _UNIT_SECONDS[total.group(3)]
    return Throughput(requests - min(errors, requests), errors, elapsed)


def _h2load_args(
    target: Target,
    *,
    clients: int,
    threads: int,
    streams: int,
    seconds: float,
    rps: float | None,
    log_file: Path | None,
) -> list[str]:
    args = [
        "h2load",
        "-c",
        str(clients),
        "-t",
        str(threads),
        "-m",
        str(streams),
        "-D",
        f"{round(seconds * 1000)}ms",
        "-d",
        str(target.body_file),
        "-T",
        "10",
    ]
    for header in target.headers:
        args += ["-H", header]
    if not target.grpc:
        args.append("--h1")
    if rps is not None:
        args += ["--rps", f"{rps:g}"]
    if log_file is not None:
        args += ["--log-file", str(log_file)]
    return [*args, target.url]


_H2_DONE = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored, (\d+) timeout"
)
_H2_FINISHED = re.compile(r"finished in ([\d.]+)(us|ms|s|m)")


def h2load_saturation(
    target: Target, seconds: float, connections: int = SATURATION_CONNECTIONS
) -> Throughput:
    out = _run(
        _h2load_args(
            target,
            clients=connections,
            threads=SATURATION_THREADS,
            streams=1,
            seconds=seconds,
            rps=None,
            log_file=None,
        ),
        timeout=seconds + 30,
    )
    done, finished = _H2_DONE.search(out), _H2_FINISHED.search(out)
    if done is None or finished is None:
        raise LoadError(f"unexpected h2load output:\n{out}")
    succeeded, failed = int(done.group(4)), int(done.group(5))
    elapsed = float(finished.group(1)) * _UNIT_SECONDS[finished.group(2)]
    return Throughput(succeeded, failed, elapsed)


def saturation(
    target: Target, seconds: float, connections: int = SATURATION_CONNECTIONS
) -> Throughput:
    if target.grpc:
        return h2load_saturation(target, seconds, connections)
    return wrk_saturation(target, seconds, connections)


def paced_latencies(
    target: Target, seconds: float, *, clients: int, rps_per_client: float | None
) -> Latencies:
    """``clients`` connections, one request in flight each, optionally paced.

    h2load's pacing is per connection and does not start a request while the
    previous one is unanswered, so a stall delays later requests instead of
    queueing them (coordinated omission): the achieved rate is reported next
    to the percentiles so a contestant that fell behind is visible.
    """
    with tempfile.TemporaryDirectory(prefix="meshgate-bench-") as workdir:
        log_file = Path(workdir) / "requests.log"
        out = _run(
            _h2load_args(
                target,
                clients=clients,
                threads=1,
                streams=1,
                seconds=seconds,
                rps=rps_per_client,
                log_file=log_file,
            ),
            timeout=seconds + 30,
        )
        millis: list[float] = []
        errors = 0
        for line in log_file.read_text().splitlines():
            _start_us, status, latency_us = line.split("\t")[:3]
            if status == "200":
                millis.append(int(latency_us) / 1000)
            else:
                errors += 1
    finished = _H2_FINISHED.search(out)
    elapsed = float(finished.group(1)) * _UNIT_SECONDS[finished.group(2)] if finished else seconds
    return Latencies(tuple(sorted(millis)), errors, len(millis) / elapsed)
