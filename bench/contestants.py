"""Start the processes under test: backends, Envoy, meshgate, the sidecar pair.

Every starter is a context manager that yields a :class:`Running` and stops
what it started on exit, whatever happens inside.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.envoy import (
    SidecarPorts,
    _grpc_proxy_config,
    run_envoy,
    sidecar_configs,
    transcoder_config,
)
from tests.support.gateway import wait_ready
from tests.support.net import free_port, wait_for_port
from tests.support.processes import REPO, Process, echo_backend, python_module
from tests.support.protos import echo_descriptor_set

SERVICE = "meshgate.test.v1.EchoService"
ECHO_PATH = f"/{SERVICE}/Echo"


@dataclass(frozen=True)
class Running:
    """A contestant that is up: where to send requests, and which process tree to measure."""

    name: str
    url: str  # full URL of the Echo method
    grpc: bool  # True: HTTP/2 gRPC; False: HTTP/1.1 JSON
    pid: int | None  # root of the process tree whose CPU and memory are measured
    workers: int = 1
    headers: tuple[str, ...] = ()  # extra request headers ("name: value")


@contextmanager
def go_backend(binary: Path) -> Iterator[Running]:
    port = free_port()
    process = Process(
        [str(binary), "--port", str(port), "--name", "go-backend"], env={"GOMAXPROCS": "1"}
    )
    try:
        process.wait_for_line("READY", timeout=15)
        wait_for_port(port)
        yield Running("go backend", f"http://127.0.0.1:{port}{ECHO_PATH}", True, process.proc.pid)
    finally:
        process.stop()


@contextmanager
def python_backend() -> Iterator[Running]:
    port = free_port()
    with echo_backend(port, name="python-backend") as process:
        wait_for_port(port)
        yield Running(
            "python backend", f"http://127.0.0.1:{port}{ECHO_PATH}", True, process.proc.pid
        )


@contextmanager
def grpc_gateway(backend: Running, binary: Path, cores: int = 1) -> Iterator[Running]:
    """grpc-gateway v2's reverse proxy (bench/gobackend/cmd/grpcgateway) on ``cores``
    (GOMAXPROCS)."""
    port = free_port()
    process = Process(
        [str(binary), "--port", str(port), "--backend", f"127.0.0.1:{backend_port(backend)}"],
        env={"GOMAXPROCS": str(cores)},
    )
    try:
        process.wait_for_line("READY", timeout=15)
        wait_for_port(port)
        yield Running(
            f"grpc-gateway c{cores}",
            f"http://127.0.0.1:{port}{ECHO_PATH}",
            False,
            process.proc.pid,
            cores,
        )
    finally:
        process.stop()


def backend_port(backend: Running) -> int:
    return int(backend.url.split("/")[2].rsplit(":", 1)[1])


@contextmanager
def envoy_transcoder(backend: Running, concurrency: int) -> Iterator[Running]:
    config = transcoder_config(
        free_port(), free_port(), backend_port(backend), echo_descriptor_set(), [SERVICE]
    )
    with run_envoy(config, concurrency=concurrency, log_level="error") as envoy:
        yield Running(
            f"envoy transcoder c{concurrency}",
            f"{envoy.listen_url}{ECHO_PATH}",
            False,
            envoy.process.proc.pid,
            concurrency,
        )


def meshgate_config(upstream_port: int, stream: str = "array") -> dict[str, Any]:
    return {
        "descriptors": [{"file": str(echo_descriptor_set())}],
        "listeners": [
            {
                "name": "bench",
                "routes": [
                    {
                        "name": "rpc",
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True, "stream": stream},
                        "cluster": "backend",
                        "timeout": "10s",
                    }
                ],
            }
        ],
        "clusters": [
            {
                "name": "backend",
                "protocol": "grpc",
                "endpoints": [{"address": f"127.0.0.1:{upstream_port}"}],
            }
        ],
    }


def gateway_source() -> Path:
    """The meshgate tree to run: MESHGATE_BENCH_SOURCE (e.g. an export of a commit) or this one."""
    return Path(os.environ.get("MESHGATE_BENCH_SOURCE") or REPO)


GRANIAN_RUNNER = Path(__file__).resolve().parent / "granian_runner.py"


@contextmanager
def meshgate(
    upstream_port: int,
    workers: int,
    name: str | None = None,
    *,
    stream: str = "array",
    server: str = "uvicorn",
    config: dict[str, Any] | None = None,
    path: str = ECHO_PATH,
    python: str | None = None,
) -> Iterator[Running]:
    """``python -m gateway run`` started in the source tree, so that tree's code is what runs.

    ``server="granian"`` runs bench/granian_runner.py instead (one worker); ``config``
    replaces the echo config (its admin and first listener addresses are filled in);
    ``python`` is the interpreter to run it with (default: this one), which needs
    meshgate's dependencies but still runs this source tree's code (the working
    directory comes first on ``-m``'s path).
    """
    config = config if config is not None else meshgate_config(upstream_port, stream)
    admin = f"127.0.0.1:{free_port()}"
    listen = f"127.0.0.1:{free_port()}"
    config["admin"] = {"address": admin}
    config["listeners"][0]["address"] = listen
    with tempfile.TemporaryDirectory(prefix="meshgate-bench-") as workdir:
        config_path = Path(workdir) / "meshgate.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        if server == "granian":
            assert workers == 1, "the granian runner serves one worker"
            args = [sys.executable, str(GRANIAN_RUNNER), "-c", str(config_path)]
            env = {"PYTHONPATH": str(gateway_source())}
        else:
            args = python_module(
                "gateway", "run", "-c", str(config_path), "--workers", str(workers)
            )
            env = {}
        if python is not None:
            args[0] = python
        process = Process(args, env=env, cwd=gateway_source())
        try:
            wait_ready(f"http://{admin}", process)
            yield Running(
                name or f"meshgate w{workers}",
                f"http://{listen}{path}",
                config["listeners"][0].get("protocol") == "grpc",
                process.proc.pid,
                workers,
            )
        finally:
            process.stop()


def passthrough_config(upstream_port: int) -> dict[str, Any]:
    """A ``protocol: grpc`` listener passing every call to the backend untouched."""
    return {
        "listeners": [
            {
                "name": "bench",
                "protocol": "grpc",
                "routes": [{"name": "rpc", "match": {"prefix": "/"}, "cluster": "backend"}],
            }
        ],
        "clusters": [
            {
                "name": "backend",
                "protocol": "grpc",
                "endpoints": [{"address": f"127.0.0.1:{upstream_port}"}],
            }
        ],
    }


@contextmanager
def envoy_grpc_proxy(backend: Running, concurrency: int) -> Iterator[Running]:
    """Envoy's HTTP/2 router in front of the backend: the passthrough reference."""
    config = _grpc_proxy_config("grpc_proxy", free_port(), free_port(), backend_port(backend), None)
    with run_envoy(config, concurrency=concurrency, log_level="error") as envoy:
        yield Running(
            f"envoy grpc proxy c{concurrency}",
            f"{envoy.listen_url}{ECHO_PATH}",
            True,
            envoy.process.proc.pid,
            concurrency,
        )


@contextmanager
def sidecar_pair(backend: Running, concurrency: int = 1) -> Iterator[Running]:
    """Envoy outbound -> Envoy inbound -> backend; the yielded URL is the outbound listener."""
    ports = SidecarPorts(free_port(), free_port(), free_port(), free_port())
    outbound, inbound = sidecar_configs(ports, backend_port(backend))
    with ExitStack() as stack:
        stack.enter_context(run_envoy(inbound, concurrency=concurrency, log_level="error"))
        out = stack.enter_context(run_envoy(outbound, concurrency=concurrency, log_level="error"))
        yield Running(
            "envoy sidecar pair", f"{out.listen_url}{ECHO_PATH}", True, out.process.proc.pid
        )


def grpc_gateway_binary() -> Path:
    """grpc-gateway's reverse proxy, built by bench/run.sh (bench/gobackend/cmd/grpcgateway)."""
    path = os.environ.get("MESHGATE_BENCH_GRPCGATEWAY")
    if not path:
        raise SystemExit("MESHGATE_BENCH_GRPCGATEWAY is not set: run bench/run.sh")
    return Path(path)


def go_backend_binary() -> Path:
    """The binary bench/run.sh built; its path is passed in the environment."""
    path = os.environ.get("MESHGATE_BENCH_GOBACKEND")
    if not path:
        raise SystemExit("MESHGATE_BENCH_GOBACKEND is not set: run bench/run.sh")
    return Path(path)
