"""What an optional feature costs: meshgate w1 with it off, then on, back to back.

Each variant is a name and the YAML keys it adds to the bench config (given
a scratch directory and a local OTLP sink); the table gives its saturation
throughput and c=1 latency as a ratio of the plain gateway's. The sink is
the tests' OTLP receiver, counting spans in the benchmark's own process so
its CPU is not charged to meshgate. ``bench/run.sh --only-features`` runs
this section alone.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import report
from bench.contestants import Running, backend_port, meshgate, meshgate_config
from bench.measure import ContestantResult, Durations, FixedRate, measure
from tests.support.otlp_receiver import otlp_receiver

PAYLOADS = ("small", "medium")
BASELINE = "meshgate w1 (features off)"

# name -> the keys it adds to the config, given a scratch directory for files
# and the OTLP sink's address.
Variant = tuple[str, Callable[[Path, str], dict[str, Any]]]
VARIANTS: list[Variant] = [
    (
        "meshgate w1 + access log (JSON to a file)",
        lambda scratch, _: {"access_log": {"path": str(scratch / "access.log")}},
    ),
    (
        "meshgate w1 + tracing (every request, spans over OTLP)",
        lambda _, otlp: {
            "tracing": {"otlp": {"endpoint": otlp, "schedule_delay": "1s"}, "sampling": 1.0}
        },
    ),
    (
        "meshgate w1 + tracing (propagation only)",
        lambda _, otlp: {"tracing": {"sampling": 1.0}},
    ),
]

HEADER = (
    "payload",
    "variant",
    "RPS at saturation",
    "vs off",
    "fixed rate: p50 / p90 / p99 ms",
    "c=1 p50 ms",
    "c=1 vs off",
    "CPU s / 10k req",
)


@contextmanager
def _gateway(backend: Running, name: str, extra: dict[str, Any]) -> Iterator[Running]:
    config = {**meshgate_config(backend_port(backend)), **extra}
    with meshgate(backend_port(backend), 1, name, config=config) as gateway:
        yield gateway


def run_feature_costs(
    backend: Running, bodies: Path, rates: dict[str, FixedRate], durations: Durations
) -> list[ContestantResult]:
    """The plain gateway first, then each variant."""
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="meshgate-bench-features-") as scratch,
        otlp_receiver(keep_spans=False) as sink,
    ):
        plain: Variant = (BASELINE, lambda _, __: {})
        for name, extra in [plain, *VARIANTS]:
            with _gateway(backend, name, extra(Path(scratch), sink.endpoint)) as gateway:
                results.append(measure(gateway, bodies, list(PAYLOADS), rates, durations))
    return results


def rows(results: Sequence[ContestantResult]) -> list[list[str]]:
    """Each variant against the first result (the plain gateway), per payload."""
    out = []
    for payload in PAYLOADS:
        base = next((r for r in results[0].rows if r.payload == payload), None)
        for result in results:
            row = next((r for r in result.rows if r.payload == payload), None)
            if row is None:
                continue
            other = result is not results[0] and base is not None
            out.append(
                [
                    payload,
                    result.name,
                    report.fmt(row.rps, 0) + (f" ({row.errors} errors)" if row.errors else ""),
                    report.ratio(row.rps, base.rps) if other and base else "—",
                    report.triple(row.fixed),
                    report.fmt(row.single.percentile(50), 3),
                    report.ratio(row.single.percentile(50), base.single.percentile(50))
                    if other and base
                    else "—",
                    report.fmt(row.cpu_per_10k),
                ]
            )
    return out


def section(results: Sequence[ContestantResult]) -> list[str]:
    return [
        "## The cost of optional features (meshgate w1, backend as above)",
        "",
        "The same gateway and config, back to back, with one feature turned on per row; "
        "\"vs off\" is the row's throughput (or c=1 latency) over the plain gateway's.",
        "",
        report.table(HEADER, rows(results)),
        "",
    ]
