"""Render the results as Markdown: the main table, the sidecar table, the targets."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.codec_probe import CodecTiming
from bench.dubbo import DubboRow
from bench.loadgen import Latencies
from bench.measure import ContestantResult, PayloadResult
from bench.streaming import StreamResult

DIRECT = "direct gRPC"


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:,.{digits}f}"


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or not reference or math.isnan(value):
        return "—"
    return f"{value / reference:.2f}x"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def triple(lat: Latencies) -> str:
    return " / ".join(fmt(lat.percentile(p)) for p in (50, 90, 99))


@dataclass(frozen=True)
class Section:
    """Contestants run in front of one backend: references are looked up within it."""

    backend: str
    results: list[ContestantResult]
    # Whose rows the meshgate rows are compared with ("vs Envoy"): the
    # transcoder for REST, Envoy's HTTP/2 router for gRPC passthrough.
    reference: str = "envoy transcoder"

    def row(self, contestant: str, payload: str) -> PayloadResult | None:
        for result in self.results:
            if result.name == contestant:
                for row in result.rows:
                    if row.payload == payload:
                        return row
        return None

    def envoy_for(self, row: PayloadResult) -> PayloadResult | None:
        return self.row(f"{self.reference} c{row.workers}", row.payload)

    def grpc_gateway_for(self, row: PayloadResult) -> PayloadResult | None:
        return self.row(f"grpc-gateway c{row.workers}", row.payload)

    def rss(self, contestant: str) -> str:
        for result in self.results:
            if result.name == contestant and result.peak_rss_mib:
                return fmt(max(result.peak_rss_mib), 1)
        return "—"


MAIN_HEADER = (
    "payload",
    "backend",
    "contestant",
    "RPS at saturation",
    "vs Envoy",
    "vs grpc-gateway",
    "vs direct",
    "fixed rate: p50 / p90 / p99 ms",
    "achieved / target rps",
    "p99 vs Envoy",
    "c=1 p50 ms",
    "c=1 added p50 ms",
    "CPU s / 10k req",
    "peak RSS MiB / worker",
)


def main_rows(sections: Sequence[Section], payloads: Sequence[str]) -> list[list[str]]:
    rows = []
    for payload in payloads:
        for section in sections:
            for result in section.results:
                row = section.row(result.name, payload)
                if row is None:
                    continue
                direct = section.row(DIRECT, payload)
                ours = result.name.startswith("meshgate")
                envoy = section.envoy_for(row) if ours else None
                gateway = section.grpc_gateway_for(row) if ours else None
                added = (
                    row.single.percentile(50) - direct.single.percentile(50)
                    if direct and row is not direct
                    else None
                )
                rows.append(
                    [
                        payload,
                        section.backend,
                        result.name,
                        fmt(row.rps, 0) + (f" ({row.errors} errors)" if row.errors else ""),
                        ratio(row.rps, envoy.rps) if envoy else "—",
                        ratio(row.rps, gateway.rps) if gateway else "—",
                        ratio(row.rps, direct.rps) if direct and row is not direct else "—",
                        triple(row.fixed),
                        f"{fmt(row.fixed.achieved_rps, 0)} / {fmt(row.fixed_target_rps, 0)}",
                        ratio(row.fixed.percentile(99), envoy.fixed.percentile(99))
                        if envoy
                        else "—",
                        fmt(row.single.percentile(50), 3),
                        fmt(added, 3),
                        fmt(row.cpu_per_10k),
                        section.rss(result.name),
                    ]
                )
    return rows


@dataclass(frozen=True)
class PathResult:
    name: str
    fixed: Latencies
    single: Latencies


SIDECAR_HEADER = (
    "path",
    "fixed rate: p50 / p90 / p99 ms",
    "achieved rps",
    "c=1 p50 ms",
    "added c=1 p50 ms",
    "added p99 ms at fixed rate",
)


def sidecar_rows(paths: Sequence[PathResult], baselines: dict[str, str]) -> list[list[str]]:
    """``baselines`` maps a path to the path its added latency is measured against."""
    by_name = {path.name: path for path in paths}
    rows = []
    for path in paths:
        base = by_name.get(baselines.get(path.name, ""))
        rows.append(
            [
                path.name,
                triple(path.fixed),
                fmt(path.fixed.achieved_rps, 0),
                fmt(path.single.percentile(50), 3),
                fmt(path.single.percentile(50) - base.single.percentile(50), 3) if base else "—",
                fmt(path.fixed.percentile(99) - base.fixed.percentile(99), 3) if base else "—",
            ]
        )
    return rows


@dataclass(frozen=True)
class Target:
    goal: str
    measured: str
    met: bool | None  # None: could not be measured

    def cells(self) -> list[str]:
        verdict = "n/a" if self.met is None else ("met" if self.met else "**missed**")
        return [self.goal, self.measured, verdict]


def codec_table(codecs: Sequence[CodecTiming]) -> str:
    return table(
        (
            "payload",
            "JSON bytes",
            "parse: json_format",
            "parse: compiled",
            "speed-up",
            "print: json_format",
            "print: compiled",
            "speed-up",
        ),
        [
            [
                c.payload,
                f"{c.json_bytes:,}",
                fmt(c.parse_json_format_us, 1),
                fmt(c.parse_compiled_us, 1),
                ratio(c.parse_json_format_us, c.parse_compiled_us),
                fmt(c.print_json_format_us, 1),
                fmt(c.print_compiled_us, 1),
                ratio(c.print_json_format_us, c.print_compiled_us),
            ]
            for c in codecs
        ],
    )


STREAM_HEADER = (
    "contestant",
    "streams/s at saturation",
    "messages/s",
    "vs Envoy",
    "vs direct",
    "c=1 whole stream p50 ms",
    "c=1 first message p50 ms",
    "CPU s / 10k streams",
    "messages per stream (checked)",
)


def stream_rows(results: Sequence[StreamResult]) -> list[list[str]]:
    direct = next((r for r in results if r.name == DIRECT), None)
    # meshgate's passthrough against Envoy's HTTP/2 router, its transcoding
    # against Envoy's transcoder.
    proxy = next((r for r in results if r.name.startswith("envoy grpc proxy")), None)
    transcoder = next((r for r in results if r.name.startswith("envoy transcoder")), None)
    rows = []
    for r in results:
        envoy = proxy if "grpc" in r.name else transcoder
        first = fmt(r.first_message_ms, 3) + (" (1-message stream)" if r.first_is_proxy else "")
        rows.append(
            [
                r.name,
                fmt(r.rps, 0) + (f" ({r.errors} errors)" if r.errors else ""),
                fmt(r.messages_per_second, 0),
                ratio(r.rps, envoy.rps) if envoy and r.name.startswith("meshgate") else "—",
                ratio(r.rps, direct.rps) if direct and r is not direct else "—",
                fmt(r.single.percentile(50), 3),
                first,
                fmt(r.cpu_per_10k),
                str(r.messages_seen) if r.messages_seen is not None else "—",
            ]
        )
    return rows


DUBBO_HEADER = (
    "path",
    "contestant",
    "RPS at saturation",
    "vs direct",
    "fixed rate: p50 / p90 / p99 ms",
    "achieved / target rps",
    "c=1 p50 ms",
    "c=1 added p50 ms",
    "meshgate CPU s / 10k req",
    "answer (checked)",
)


def dubbo_rows(rows: Sequence[DubboRow], labels: dict[str, str]) -> list[list[str]]:
    direct = {
        row.path: row.result.rows[0]
        for row in rows
        if row.result.rows and not row.contestant.startswith("meshgate")
    }
    out = []
    for row in rows:
        r = row.result.rows[0]
        base = direct.get(row.path) if row.contestant.startswith("meshgate") else None
        out.append(
            [
                labels[row.path],
                row.contestant,
                fmt(r.rps, 0) + (f" ({r.errors} errors)" if r.errors else ""),
                ratio(r.rps, base.rps) if base else "—",
                triple(r.fixed),
                f"{fmt(r.fixed.achieved_rps, 0)} / {fmt(r.fixed_target_rps, 0)}",
                fmt(r.single.percentile(50), 3),
                fmt(r.single.percentile(50) - base.single.percentile(50), 3) if base else "—",
                fmt(r.cpu_per_10k),
                "`" + row.answer.replace("|", "\\|")[:60] + "`",
            ]
        )
    return out


SERVER_HEADER = (
    "payload",
    "server",
    "RPS at saturation",
    "vs uvicorn",
    "fixed rate: p50 / p90 / p99 ms",
    "achieved / target rps",
    "c=1 p50 ms",
    "c=1 vs uvicorn",
    "CPU s / 10k req",
    "peak RSS MiB",
    "same responses",
)


def server_rows(
    results: Sequence[ContestantResult], payloads: Sequence[str], same: dict[str, bool]
) -> list[list[str]]:
    """meshgate w1 on uvicorn (the first result) against the others, per payload."""
    out = []
    for payload in payloads:
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
                    fmt(row.rps, 0) + (f" ({row.errors} errors)" if row.errors else ""),
                    ratio(row.rps, base.rps) if other and base else "—",
                    triple(row.fixed),
                    f"{fmt(row.fixed.achieved_rps, 0)} / {fmt(row.fixed_target_rps, 0)}",
                    fmt(row.single.percentile(50), 3),
                    ratio(row.single.percentile(50), base.single.percentile(50))
                    if other and base
                    else "—",
                    fmt(row.cpu_per_10k),
                    fmt(max(result.peak_rss_mib), 1) if result.peak_rss_mib else "—",
                    ("yes" if same.get(payload) else "**no**") if other else "—",
                ]
            )
    return out
