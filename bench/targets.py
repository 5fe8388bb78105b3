"""The issue's targets, judged on the Go-backend results."""

from __future__ import annotations

from collections.abc import Sequence

from bench.measure import ContestantResult
from bench.report import DIRECT, PathResult, Section, Target

THROUGHPUT_VS_ENVOY = 0.5
ADDED_P50_MS = 0.5
P99_VS_ENVOY = 2.0
SIDECAR_VS_PROXYLESS = 5.0
RSS_PER_WORKER_MIB = 80.0
RATE_KEPT = 0.95
JUDGED_PAYLOADS = ("small", "medium")


def _throughput(go: Section) -> list[Target]:
    targets = []
    for payload in JUDGED_PAYLOADS:
        mesh, envoy = go.row("meshgate w2", payload), go.row("envoy transcoder c2", payload)
        if mesh is None or envoy is None:
            continue
        share = mesh.rps / envoy.rps if envoy.rps else 0.0
        targets.append(
            Target(
                f"throughput, 2 cores, {payload}: meshgate w2 >= {THROUGHPUT_VS_ENVOY}x Envoy c2",
                f"{mesh.rps:,.0f} vs {envoy.rps:,.0f} rps = {share:.2f}x",
                share >= THROUGHPUT_VS_ENVOY,
            )
        )
    return targets


def _added_latency(go: Section) -> list[Target]:
    targets = []
    for payload in JUDGED_PAYLOADS:
        mesh, direct = go.row("meshgate w1", payload), go.row(DIRECT, payload)
        if mesh is None or direct is None:
            continue
        added = mesh.single.percentile(50) - direct.single.percentile(50)
        targets.append(
            Target(
                f"added p50 over direct gRPC at c=1, {payload}: <= {ADDED_P50_MS} ms",
                f"{mesh.single.percentile(50):.3f} - {direct.single.percentile(50):.3f} "
                f"= {added:.3f} ms",
                added <= ADDED_P50_MS,
            )
        )
    return targets


def _tail_latency(go: Section) -> list[Target]:
    targets = []
    for payload in JUDGED_PAYLOADS:
        mesh, envoy = go.row("meshgate w2", payload), go.row("envoy transcoder c2", payload)
        if mesh is None or envoy is None:
            continue
        mine, theirs = mesh.fixed.percentile(99), envoy.fixed.percentile(99)
        times = mine / theirs if theirs else float("inf")
        # A contestant that could not keep the rate was measured at a lower one.
        kept_rate = mesh.fixed.achieved_rps >= RATE_KEPT * mesh.fixed_target_rps
        shortfall = (
            "" if kept_rate else (f"; meshgate only reached {mesh.fixed.achieved_rps:,.0f} req/s")
        )
        targets.append(
            Target(
                f"p99 at {mesh.fixed_target_rps:,.0f} req/s, {payload}: meshgate w2 "
                f"<= {P99_VS_ENVOY}x Envoy c2",
                f"{mine:.2f} vs {theirs:.2f} ms = {times:.2f}x{shortfall}",
                kept_rate and times <= P99_VS_ENVOY,
            )
        )
    return targets


def _proxyless(
    paths: Sequence[PathResult], mesh_micros: float | None, names: tuple[str, str, str]
) -> list[Target]:
    by_name = {path.name: path for path in paths}
    proxyless, sidecars, direct = (by_name.get(name) for name in names)
    if proxyless is None or sidecars is None or direct is None or mesh_micros is None:
        return []
    pair_ms = sidecars.single.percentile(50) - proxyless.single.percentile(50)
    mesh_ms = mesh_micros / 1000
    hop_ratio = pair_ms / mesh_ms if mesh_ms else float("inf")
    path_proxyless = proxyless.single.percentile(50) - direct.single.percentile(50)
    path_sidecars = sidecars.single.percentile(50) - direct.single.percentile(50)
    path_ratio = path_sidecars / path_proxyless if path_proxyless > 0 else float("inf")
    return [
        Target(
            f"mesh hop: sidecar pair's added p50 >= {SIDECAR_VS_PROXYLESS:g}x "
            "proxyless in-process mesh decision",
            f"{pair_ms:.3f} ms vs {mesh_ms * 1000:.2f} µs = {hop_ratio:,.0f}x",
            hop_ratio >= SIDECAR_VS_PROXYLESS,
        ),
        Target(
            f"whole path (strict reading): meshgate via sidecars added over direct gRPC "
            f">= {SIDECAR_VS_PROXYLESS:g}x meshgate proxyless added",
            f"{path_sidecars:.3f} vs {path_proxyless:.3f} ms = {path_ratio:.2f}x",
            path_ratio >= SIDECAR_VS_PROXYLESS,
        ),
    ]


def _memory(sections: Sequence[Section], others: Sequence[ContestantResult]) -> list[Target]:
    """Every meshgate worker of the run: the main table's, and the extra sections' ones."""
    results = [result for section in sections for result in section.results] + list(others)
    peaks = [
        max(result.peak_rss_mib)
        for result in results
        if result.name.startswith("meshgate") and result.peak_rss_mib
    ]
    if not peaks:
        return []
    worst = max(peaks)
    return [
        Target(
            f"peak RSS per meshgate worker < {RSS_PER_WORKER_MIB:g} MiB",
            f"worst worker {worst:.1f} MiB (VmHWM)",
            worst < RSS_PER_WORKER_MIB,
        )
    ]


def evaluate_targets(
    sections: Sequence[Section],
    paths: Sequence[PathResult],
    mesh_micros: float | None,
    sidecar_names: tuple[str, str, str],
    other_meshgates: Sequence[ContestantResult] = (),
) -> list[Target]:
    go = next(section for section in sections if section.backend == "Go")
    return [
        *_throughput(go),
        *_added_latency(go),
        *_tail_latency(go),
        *_proxyless(paths, mesh_micros, sidecar_names),
        *_memory(sections, other_meshgates),
    ]
