"""Which HTTP/2 server: meshgate's own (gateway.http2 under uvicorn) against
hypercorn and granian, measured with h2load (docs/benchmarks.md, "HTTP/2
server choice").

Two targets, each served by every contestant in turn, all contestants
running side by side and measured in interleaved rounds (the machine is
shared; the median round is reported):

* ``trivial``: an ASGI app answering 13 bytes, GET /;
* ``gateway``: meshgate's real app (GatewayApp, an auto-mapped Echo route)
  in front of the Go backend (bench/gobackend, GOMAXPROCS=1), POST of the
  small JSON payload.

Each at 1 and 16 concurrent streams on one connection (HTTP/1.1 reference
rows: 1 and 16 connections). Requests/s, and p50/p99 latency from h2load's
per-request log.

    python -m bench.http2_servers --gobackend PATH [--seconds 5] [--rounds 3]
    python -m bench.http2_servers serve-ours --port P           (trivial app)
    python -m bench.http2_servers serve-gateway --server hypercorn|granian -c FILE
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.payloads import small_request

REPO = Path(__file__).resolve().parents[1]
BODY = b"hello, world\n"
ZTTP_REQUESTS = 4000
WARM_UP = 1


async def trivial_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


# -- servers ------------------------------------------------------------------


def serve_ours(port: int) -> None:
    """The trivial app on uvicorn with the listeners' protocol selection."""
    import uvicorn
    import uvloop

    from gateway.config import ListenerLimitsConfig
    from gateway.http2.select import serving_protocol

    config = uvicorn.Config(
        trivial_app,
        host="127.0.0.1",
        port=port,
        http=serving_protocol(lambda _: ListenerLimitsConfig()),
        lifespan="off",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
    )
    uvloop.run(uvicorn.Server(config).serve())


def serve_gateway(server: str, config_path: Path) -> None:
    """meshgate's app on hypercorn, granian or uvicorn's zttp HTTP/2, one worker, uvloop."""
    import uvloop

    from gateway.workers import build_app

    app = build_app(config_path)
    listener = app.active.snapshot.listeners[0]
    if server == "hypercorn":
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"{listener.host}:{listener.port}"]
        config.accesslog = None
        config.loglevel = "WARNING"
        # Its default ends a connection after 1,000 requests (GOAWAY).
        config.keep_alive_max_requests = 1 << 30
        uvloop.run(serve(app, config))  # type: ignore[arg-type]
        return
    if server == "zttp":
        import uvicorn

        zconfig = uvicorn.Config(
            app,
            host=listener.host,
            port=listener.port,
            http="zttp",
            http2=True,
            lifespan="on",
            access_log=False,
            log_level="warning",
            proxy_headers=False,
            server_header=False,
        )
        uvloop.run(uvicorn.Server(zconfig).serve())
        return
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    from bench.granian_runner import IntPortScope

    granian = Server(
        IntPortScope(app),
        address=listener.host,
        port=listener.port,
        interface=Interfaces.ASGI,
        runtime_threads=1,
        http=HTTPModes.http2,
        websockets=False,
        log_level=LogLevels.warning,
        log_access=False,
    )
    uvloop.run(granian.serve())


# -- measuring ------------------------------------------------------------------


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    # CPU of the server's processes per request (robust on a shared machine).
    cpu_ms: float


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its descendants so far."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    tree, grown = {pid}, True
    while grown:
        children = {child for child, parent in parents.items() if parent in tree} - tree
        grown = bool(children)
        tree |= children
    return sum(times.get(p, 0.0) for p in tree)


def h2load(row: Row, streams: int, seconds: int) -> Sample:
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        if row.requests is None:
            args = ["h2load", "-D", str(seconds), "--warm-up-time", str(WARM_UP), "-t", "1"]
        else:
            args = ["h2load", "-n", str(row.requests), "-t", "1"]
        args += ["--log-file", log.name]
        # HTTP/2: N streams on one connection; HTTP/1.1: N connections.
        if row.h1:
            args += ["--h1", "-c", str(streams), "-m", "1"]
        else:
            args += ["-c", "1", "-m", str(streams)]
        if row.body is not None:
            args += ["-d", str(row.body), "-H", "content-type: application/json"]
        run = subprocess.Popen([*args, row.url], stdout=subprocess.PIPE, text=True)
        if row.requests is None:
            time.sleep(WARM_UP)  # the CPU of the measured phase only
        cpu = tree_cpu(row.pid)
        out, _ = run.communicate(timeout=seconds + 60)
        cpu = tree_cpu(row.pid) - cpu
        if run.returncode:
            raise RuntimeError(f"h2load failed against {row.url}:\n{out}")
        latencies = sorted(
            int(line.split()[2]) / 1000
            for line in Path(log.name).read_text().splitlines()
            if line.strip() and line.split()[1].startswith("2")
        )
    rps = next(float(line.split()[3]) for line in out.splitlines() if "finished in" in line)
    failed = next(line for line in out.splitlines() if line.startswith("requests:"))
    if " 0 failed" not in failed or not latencies:
        raise RuntimeError(f"h2load saw failures against {row.url}:\n{out}")
    measured = row.requests if row.requests is not None else rps * seconds
    return Sample(rps, _pct(latencies, 50), _pct(latencies, 99), cpu * 1000 / measured)


def _pct(values: list[float], pct: int) -> float:
    return values[min(len(values) - 1, len(values) * pct // 100)]


@contextmanager
def process(
    args: list[str], port: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` until the block ends; ready once ``port`` accepts."""
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args} did not start") from None
                time.sleep(0.2)
        time.sleep(2)  # start-up beyond the bind (meshgate resolves first)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Row:
    target: str
    contestant: str
    url: str
    pid: int
    h1: bool = False
    body: Path | None = None
    # A fixed number of requests instead of a timed run (see uvicorn zttp).
    requests: int | None = None


def run(gobackend: Path, seconds: int, rounds: int) -> str:
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="meshgate-h2bench-"))
    body = work / "small.json"
    body.write_text(json.dumps(small_request()))
    hypercorn_toml = work / "hypercorn.toml"
    # Its default ends a connection after 1,000 requests (GOAWAY).
    hypercorn_toml.write_text("keep_alive_max_requests = 1073741824\n")
    granian = shutil.which("granian") or str(Path(python).with_name("granian"))
    trivial = "bench.http2_servers:trivial_app"
    # name -> the command serving the trivial app on a port.
    trivial_servers: dict[str, Callable[[int], list[str]]] = {
        "meshgate (own h2)": lambda port: [
            *(python, "-m", "bench.http2_servers", "serve-ours", "--port", str(port)),
        ],
        "uvicorn zttp h2": lambda port: [
            *(python, "-m", "uvicorn", "--http", "zttp", "--http2", "--loop", "uvloop"),
            *("--lifespan", "off", "--no-access-log", "--port", str(port), trivial),
        ],
        "hypercorn": lambda port: [
            *(python, "-m", "hypercorn", "--worker-class", "uvloop"),
            *("--config", str(hypercorn_toml), "-b", f"127.0.0.1:{port}", trivial),
        ],
        "granian": lambda port: [
            *(granian, "--interface", "asgi", "--http", "2", "--loop", "uvloop"),
            *("--workers", "1", "--runtime-threads", "1", "--no-ws"),
            *("--port", str(port), trivial),
        ],
    }
    # name -> the runner of meshgate's app (None: meshgate itself).
    gateway_servers = {
        "meshgate (own h2)": None,
        "meshgate on uvicorn zttp h2": "zttp",
        "meshgate on hypercorn": "hypercorn",
        "meshgate on granian": "granian",
    }
    rows: list[Row] = []
    echo = "/meshgate.test.v1.EchoService/Echo"
    with ExitStack() as stack:
        for name, command in trivial_servers.items():
            port = free_port()
            pid = stack.enter_context(process(command(port), port)).pid
            url = f"http://127.0.0.1:{port}/"
            rows.append(Row("trivial", name, url, pid, requests=_cap(name)))
        ours = rows[0]
        rows.append(
            Row("trivial", "uvicorn httptools HTTP/1.1 (reference)", ours.url, ours.pid, h1=True)
        )
        backend = free_port()
        stack.enter_context(
            process([str(gobackend), "--port", str(backend)], backend, env={"GOMAXPROCS": "1"})
        )
        for name, runner in gateway_servers.items():
            port = free_port()
            config = work / f"gateway-{port}.yaml"
            config.write_text(yaml.safe_dump(_gateway_config(port, backend)))
            if runner is None:
                args = [python, "-m", "gateway", "run", "-c", str(config), "--workers", "1"]
            else:
                args = [python, "-m", "bench.http2_servers", "serve-gateway", "--server", runner]
                args += ["-c", str(config)]
            pid = stack.enter_context(process(args, port)).pid
            url = f"http://127.0.0.1:{port}{echo}"
            rows.append(Row("gateway", name, url, pid, body=body, requests=_cap(name)))
        ours = rows[len(trivial_servers) + 1]
        rows.append(Row("gateway", "meshgate HTTP/1.1 (reference)", ours.url, ours.pid, True, body))
        results: dict[tuple[int, int], list[Sample]] = {}
        for _ in range(rounds):
            for index, row in enumerate(rows):
                for streams in (1, 16):
                    sample = h2load(row, streams, seconds)
                    results.setdefault((index, streams), []).append(sample)
    return _table(rows, results, seconds, rounds)


def _cap(name: str) -> int | None:
    # zttp 0.0.35 fails every stream of a connection after its 4,096th
    # (h2load: "4096 succeeded, N failed"): fixed runs below that.
    return ZTTP_REQUESTS if "zttp" in name else None


def _gateway_config(port: int, backend: int) -> dict[str, Any]:
    from tests.support.protos import echo_descriptor_set

    return {
        "admin": {"address": f"127.0.0.1:{free_port()}"},
        "descriptors": [{"file": str(echo_descriptor_set())}],
        "listeners": [
            {
                "name": "bench",
                "address": f"127.0.0.1:{port}",
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True},
                        "cluster": "echo",
                    }
                ],
            }
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": f"127.0.0.1:{backend}"}]}],
    }


def _table(
    rows: list[Row], results: dict[tuple[int, int], list[Sample]], seconds: float, rounds: int
) -> str:
    lines = [
        f"h2load, {seconds:g} s per run after 1 s of warm-up, median of {rounds} interleaved "
        "rounds; c1/c16: 1 or 16 concurrent streams on one connection (HTTP/1.1: connections).",
        "",
        "| target | server | c1 req/s | c1 p50 ms | c1 p99 ms | c1 CPU ms/req "
        "| c16 req/s | c16 p50 ms | c16 p99 ms | c16 CPU ms/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for index, row in enumerate(rows):
        cells = []
        for streams in (1, 16):
            samples = results[(index, streams)]
            median = sorted(samples, key=lambda s: s.rps)[len(samples) // 2]
            cpu = statistics.median(s.cpu_ms for s in samples)
            cells += [f"{median.rps:,.0f}", f"{median.p50_ms:.2f}", f"{median.p99_ms:.2f}"]
            cells.append(f"{cpu:.3f}")
        lines.append(f"| {row.target} | {row.contestant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command")
    ours = sub.add_parser("serve-ours")
    ours.add_argument("--port", type=int, required=True)
    gateway = sub.add_parser("serve-gateway")
    gateway.add_argument("--server", choices=["hypercorn", "granian", "zttp"], required=True)
    gateway.add_argument("-c", "--config", type=Path, required=True)
    parser.add_argument("--gobackend", type=Path)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.command == "serve-ours":
        serve_ours(args.port)
    elif args.command == "serve-gateway":
        serve_gateway(args.server, args.config)
    else:
        if args.gobackend is None:
            parser.error("--gobackend PATH (bench/run.sh builds it) is required")
        print(run(args.gobackend, args.seconds, args.rounds))


if __name__ == "__main__":
    main()
