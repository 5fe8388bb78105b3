"""meshgate w1 on newer CPythons beside the dev venv's, back to back.

Python 3.11's ``asyncio.get_running_loop()`` compares the loop's pid with
``getpid()`` on every call, and grpc.aio calls it many times per RPC; 3.12
dropped that check. This section measures what that and the rest of a newer
interpreter give: the same source tree and config on the dev venv's Python
(the baseline) and on each venv bench/python_venvs.sh made (named in
MESHGATE_BENCH_PYTHONS), in front of the same backend. Each interpreter is
also probed in process: its version, the versions of the packages on the hot
path, and the time of one ``get_running_loop()`` call inside a running loop.
``bench/run.sh --only-python-versions`` runs this section alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import report
from bench.answers import Answer, answers
from bench.contestants import Running, backend_port, meshgate
from bench.measure import ContestantResult, Durations, FixedRate, measure

PAYLOADS = ("small", "medium")
# The minor versions bench/python_venvs.sh makes venvs for.
WANTED = ("3.12", "3.13")
HOT_PACKAGES = ("grpcio", "protobuf", "uvicorn", "uvloop", "httptools", "orjson")

# Run by each interpreter: prints its version, its hot-path packages' versions
# and the best of five timings of get_running_loop() (ns per call).
PROBE = """
import asyncio, json, platform, sys, time
from importlib import metadata

def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

async def calls(n):
    started = time.perf_counter()
    for _ in range(n):
        asyncio.get_running_loop()
    return (time.perf_counter() - started) / n * 1e9

best = min(asyncio.run(calls(200_000)) for _ in range(5))
print(json.dumps({
    "version": platform.python_version(),
    "packages": {name: version(name) for name in sys.argv[1:]},
    "get_running_loop_ns": best,
}))
"""


@dataclass(frozen=True)
class Interpreter:
    executable: str
    version: str
    packages: dict[str, str | None]
    get_running_loop_ns: float

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass
class PythonVersions:
    """The section's results: the first interpreter and result are the baseline."""

    interpreters: list[Interpreter] = field(default_factory=list)
    results: list[ContestantResult] = field(default_factory=list)
    same: dict[str, dict[str, bool]] = field(default_factory=dict)  # name -> payload -> same
    skipped: list[str] = field(default_factory=list)


def probe(executable: str) -> Interpreter:
    done = subprocess.run(
        [executable, "-c", PROBE, *HOT_PACKAGES],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(done.stdout)
    return Interpreter(
        executable, found["version"], found["packages"], found["get_running_loop_ns"]
    )


def executables() -> list[str]:
    """This interpreter (the dev venv's, the baseline), then the ones bench/run.sh made."""
    return [sys.executable, *os.environ.get("MESHGATE_BENCH_PYTHONS", "").split()]


def contestant_name(interpreter: Interpreter) -> str:
    return f"meshgate w1, Python {interpreter.version}"


def run_python_versions(
    backend: Running, bodies: Path, rates: dict[str, FixedRate], durations: Durations
) -> PythonVersions:
    """The baseline first, then each newer interpreter; each answers as the baseline?"""
    out = PythonVersions(interpreters=[probe(executable) for executable in executables()])
    have = {interpreter.minor for interpreter in out.interpreters}
    out.skipped = [
        f"Python {minor}: no venv (see bench/run.sh's output)"
        for minor in WANTED
        if minor not in have
    ]
    baseline: dict[str, Answer] = {}
    for interpreter in out.interpreters:
        name = contestant_name(interpreter)
        port = backend_port(backend)
        with meshgate(port, 1, name, python=interpreter.executable) as gateway:
            got = answers(gateway.url, bodies, PAYLOADS)
            baseline = baseline or got
            out.same[name] = {payload: got[payload] == baseline[payload] for payload in PAYLOADS}
            out.results.append(measure(gateway, bodies, list(PAYLOADS), rates, durations))
    return out


HEADER = (
    "payload",
    "Python",
    "RPS at saturation",
    "vs base",
    "c=1 p50 ms",
    "c=1 vs base",
    "CPU s / 10k req",
    "CPU vs base",
    "peak RSS MiB",
    "same responses",
)


def rows(found: PythonVersions) -> list[list[str]]:
    """Each interpreter against the first (the dev venv's), per payload."""
    results = found.results
    out = []
    for payload in PAYLOADS:
        base = next((r for r in results[0].rows if r.payload == payload), None)
        for result in results:
            row = next((r for r in result.rows if r.payload == payload), None)
            if row is None:
                continue
            other = result is not results[0] and base is not None
            same = found.same.get(result.name, {}).get(payload)
            out.append(
                [
                    payload,
                    result.name.removeprefix("meshgate w1, Python "),
                    report.fmt(row.rps, 0) + (f" ({row.errors} errors)" if row.errors else ""),
                    report.ratio(row.rps, base.rps) if other and base else "—",
                    report.fmt(row.single.percentile(50), 3),
                    report.ratio(row.single.percentile(50), base.single.percentile(50))
                    if other and base
                    else "—",
                    report.fmt(row.cpu_per_10k),
                    report.ratio(row.cpu_per_10k, base.cpu_per_10k) if other and base else "—",
                    report.fmt(max(result.peak_rss_mib), 1) if result.peak_rss_mib else "—",
                    ("yes" if same else "**no**") if other else "—",
                ]
            )
    return out


def interpreter_lines(interpreters: Sequence[Interpreter]) -> list[str]:
    lines = []
    for i, interpreter in enumerate(interpreters):
        packages = ", ".join(
            f"{name} {version or 'missing'}" for name, version in interpreter.packages.items()
        )
        role = " (baseline)" if i == 0 else ""
        lines.append(
            f"- Python {interpreter.version}{role}: `{interpreter.executable}`; {packages}; "
            f"`get_running_loop()` {interpreter.get_running_loop_ns:.0f} ns per call"
        )
    return lines


def section(found: PythonVersions) -> list[str]:
    skipped = [f"- Not run: {reason}." for reason in found.skipped]
    return [
        "## meshgate w1 on Python 3.11, 3.12 and 3.13 (backend as above)",
        "",
        "The same source tree and config, one interpreter after another: the dev venv's "
        "(the base), then a venv per newer CPython made by bench/python_venvs.sh "
        "(`pip install .`, runtime dependencies). The machine's load moves throughput; CPU "
        's / 10k req is the steadier figure. "Same responses": one request per payload, '
        "same status, content type and JSON as the base.",
        "",
        report.table(HEADER, rows(found)),
        "",
        *interpreter_lines(found.interpreters),
        *skipped,
        "",
    ]
