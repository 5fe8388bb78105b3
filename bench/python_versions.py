"""meshgate w1 on newer CPythons beside the dev venv's, back to back.

Python 3.11's ``asyncio.get_running_loop()`` compares the loop's pid with
``getpid()`` on every call, and grpc.aio calls it many times per RPC; 3.12
dropped that check. This section measures what that and the rest of a newer
interpreter give: the same source tree and config on the dev venv's Python
(the baseline) and on each venv bench/python_venvs.sh made (named in
MESHGATE_BENCH_PYTHONS), in front of the same backend. The machine is shared,
so the interpreters run in mirrored rounds (A B C, C B A): a load that drifts
during the section weighs on each about equally, and each one's figures are
the mean of its rounds (latencies: the rounds' samples pooled). Each interpreter is
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
from bench.environment import load_average
from bench.loadgen import Latencies
from bench.measure import ContestantResult, Durations, FixedRate, PayloadResult, measure

PAYLOADS = ("small", "medium")
# The minor versions bench/python_venvs.sh makes venvs for.
WANTED = ("3.12", "3.13")
# Two mirrored rounds: A B C, then C B A.
ROUNDS = 2
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
    results: list[ContestantResult] = field(default_factory=list)  # rounds merged
    rounds: dict[str, list[ContestantResult]] = field(default_factory=dict)  # name -> each
    same: dict[str, dict[str, bool]] = field(default_factory=dict)  # name -> payload -> same
    skipped: list[str] = field(default_factory=list)
    # 1/5/15-min load averages at the start and the end: how shared the machine was.
    load: tuple[str, str] = ("", "")


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
    load_before = load_average()
    out = PythonVersions(interpreters=[probe(executable) for executable in executables()])
    have = {interpreter.minor for interpreter in out.interpreters}
    out.skipped = [
        f"Python {minor}: no venv (see bench/run.sh's output)"
        for minor in WANTED
        if minor not in have
    ]
    baseline: dict[str, Answer] = {}
    for interpreter in mirrored(out.interpreters, ROUNDS):
        name = contestant_name(interpreter)
        port = backend_port(backend)
        with meshgate(port, 1, name, python=interpreter.executable) as gateway:
            if name not in out.same:
                got = answers(gateway.url, bodies, PAYLOADS)
                baseline = baseline or got
                out.same[name] = {p: got[p] == baseline[p] for p in PAYLOADS}
            result = measure(gateway, bodies, list(PAYLOADS), rates, durations)
            out.rounds.setdefault(name, []).append(result)
    out.results = [merge(each) for each in out.rounds.values()]
    out.load = (load_before, load_average())
    return out


def mirrored(items: Sequence[Interpreter], rounds: int) -> list[Interpreter]:
    """``rounds`` passes over ``items``, every other one reversed: A B C C B A A B C..."""
    order: list[Interpreter] = []
    for i in range(rounds):
        order += reversed(items) if i % 2 else items
    return order


def _pooled(latencies: Sequence[Latencies]) -> Latencies:
    return Latencies(
        tuple(sorted(ms for lat in latencies for ms in lat.millis)),
        sum(lat.errors for lat in latencies),
        _mean([lat.achieved_rps for lat in latencies]) or 0.0,
    )


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def merge(rounds: Sequence[ContestantResult]) -> ContestantResult:
    """One contestant's rounds as one result: means of the rates and CPU, latency
    samples pooled, errors summed, the highest peak RSS."""
    first = rounds[0]
    rows = []
    for row in first.rows:
        same = [r for result in rounds for r in result.rows if r.payload == row.payload]
        rows.append(
            PayloadResult(
                row.contestant,
                row.payload,
                row.workers,
                _mean([r.rps for r in same]) or 0.0,
                sum(r.errors for r in same),
                _mean([r.cpu_per_10k for r in same]),
                _pooled([r.fixed for r in same]),
                row.fixed_target_rps,
                _pooled([r.single for r in same]),
            )
        )
    peak = max((max(r.peak_rss_mib) for r in rounds if r.peak_rss_mib), default=None)
    return ContestantResult(first.name, rows, [peak] if peak is not None else [])


HEADER = (
    "payload",
    "Python",
    "RPS at saturation",
    "vs base",
    "c=1 p50 ms",
    "c=1 vs base",
    "CPU s / 10k req",
    "CPU vs base",
    "CPU per round",
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
            rounds = each_round(found, result, payload)
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
                    ", ".join(report.fmt(r.cpu_per_10k) for r in rounds),
                    report.fmt(max(result.peak_rss_mib), 1) if result.peak_rss_mib else "—",
                    ("yes" if same else "**no**") if other else "—",
                ]
            )
    return out


def each_round(
    found: PythonVersions, result: ContestantResult, payload: str
) -> list[PayloadResult]:
    rounds = found.rounds.get(result.name, [])
    return [r for one in rounds for r in one.rows if r.payload == payload]


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
        f"(`pip install .`, runtime dependencies). {ROUNDS} mirrored rounds (3.11 3.12 "
        "3.13, 3.13 3.12 3.11); a row is the mean of its rounds, latencies pooled. The "
        "machine's load moves throughput; CPU s / 10k req is the steadier figure. "
        '"Same responses": one request per payload, same status, content type and JSON '
        "as the base.",
        "",
        f"Load average (1/5/15 min): {found.load[0]} before, {found.load[1]} after.",
        "",
        report.table(HEADER, rows(found)),
        "",
        *interpreter_lines(found.interpreters),
        *skipped,
        "",
    ]
