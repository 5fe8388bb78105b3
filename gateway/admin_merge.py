"""Every worker's view into one answer for the gateway (sans-IO).

A worker's view is what it alone knows (:mod:`gateway.admin_views`); the
answer must not depend on which worker the kernel handed the admin
connection to. So the merges only ever combine the views in worker order:
what every worker has the same of (the config, the route table) comes from
the lowest-numbered worker that answered, what each counts for itself
(in-flight requests, ejections) is summed, and what may differ (an endpoint
ejected by one worker's outlier detector, each worker's own ADS stream) is
reported per worker beside the combined value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# An endpoint's worst word across workers wins: any worker avoiding it matters.
_SEVERITY = {"healthy": 0, "unknown": 1, "draining": 2, "unhealthy": 3, "ejected": 4}


@dataclass(frozen=True, slots=True)
class WorkerView:
    """One worker's answer: its view, or why there is none."""

    index: int
    pid: int | None
    view: dict[str, Any] | None
    # Set when view is None: "not running" (being replaced) or "not answering".
    error: str | None = None
    # True when the worker runs but did not answer in time (a hung event loop).
    unresponsive: bool = False


def workers_summary(views: Sequence[WorkerView]) -> list[dict[str, Any]]:
    summary: list[dict[str, Any]] = []
    for v in views:
        entry: dict[str, Any] = {"worker": v.index, "pid": v.pid}
        if v.error is not None:
            entry["error"] = v.error
        summary.append(entry)
    return summary


def _answered(views: Sequence[WorkerView]) -> list[tuple[int, dict[str, Any]]]:
    return [(v.index, v.view) for v in views if v.view is not None]


def _first(views: Sequence[WorkerView]) -> dict[str, Any]:
    answered = _answered(views)
    return answered[0][1] if answered else {}


def merge_routes(views: Sequence[WorkerView]) -> dict[str, Any]:
    # Compiled from the same file by every worker: the lowest's is everyone's.
    return _first(views)


def merge_version(views: Sequence[WorkerView]) -> dict[str, Any]:
    first = _first(views)
    answered = _answered(views)
    hashes = {view["config_hash"] for _, view in answered}
    return {
        "meshgate": first.get("meshgate"),
        "python": first.get("python"),
        "config_hash": first.get("config_hash"),
        # False while a reload is applied in one worker and not yet in another.
        "config_hash_agreed": len(hashes) <= 1,
        "started": first.get("gateway_started"),
        "worker_count": len(views),
        "workers": [
            {**entry, "started": v.view["started"], "config_hash": v.view["config_hash"]}
            if v.view is not None
            else entry
            for entry, v in zip(workers_summary(views), views, strict=True)
        ],
    }


def merge_logging(views: Sequence[WorkerView]) -> dict[str, Any]:
    answered = _answered(views)
    levels: dict[str, str] = {}
    for _, view in answered:
        for name, level in view["levels"].items():
            levels[name] = level if levels.get(name, level) == level else "mixed"
    return {
        "levels": levels,
        "workers": [
            {**entry, "levels": v.view["levels"]} if v.view is not None else entry
            for entry, v in zip(workers_summary(views), views, strict=True)
        ],
    }


def merge_config_dump(views: Sequence[WorkerView]) -> dict[str, Any]:
    first = _first(views)
    per_worker = []
    for entry, v in zip(workers_summary(views), views, strict=True):
        if v.view is not None:
            entry["config_hash"] = v.view["config_hash"]
            xds = v.view["xds"]
            # Each worker holds its own ADS stream: its connection and ACKed versions.
            entry["xds"] = {"connected": xds["connected"], "acks": xds["acks"]} if xds else None
        per_worker.append(entry)
    return {**first, "workers": per_worker}


def merge_clusters(views: Sequence[WorkerView]) -> dict[str, Any]:
    answered = _answered(views)
    first = answered[0][1] if answered else {}

    def section(key: str) -> dict[str, Any]:
        return _merge_cluster_maps((i, view.get(key) or {}) for i, view in answered)

    return {
        "static": section("static"),
        "registry": section("registry"),
        # Each worker has its own registry session; the lowest's stands for all.
        "registries": first.get("registries", []),
        "xds": section("xds"),
        # Endpoints with an open gRPC channel in any worker.
        "channels": sorted({a for _, view in answered for a in view.get("channels", [])}),
        "workers": workers_summary(views),
    }


def _merge_cluster_maps(maps: Iterable[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Clusters by name over (worker index, that worker's clusters) pairs."""
    merged: dict[str, dict[str, Any]] = {}
    for index, clusters in maps:
        for name, cluster in clusters.items():
            if name not in merged:
                merged[name] = {**cluster, "endpoints": []}
                if "panic" in cluster:
                    merged[name]["panic"] = False
                merged[name]["in_flight"] = 0
            _add_cluster(merged[name], cluster, index)
    return {name: merged[name] for name in sorted(merged)}


def _add_cluster(into: dict[str, Any], cluster: dict[str, Any], worker: int) -> None:
    into["in_flight"] += cluster.get("in_flight", 0)
    if "panic" in into:
        into["panic"] = into["panic"] or bool(cluster.get("panic"))
    known = {e["address"]: e for e in into["endpoints"]}
    for endpoint in cluster.get("endpoints", []):
        found = known.get(endpoint["address"])
        if found is None:
            found = {**endpoint}
            if "ejected" in endpoint:
                found.update(ejected=False, ejections=0, ejected_in_workers=[])
            into["endpoints"].append(found)
            known[endpoint["address"]] = found
        _add_endpoint(found, endpoint, worker)


def _add_endpoint(into: dict[str, Any], endpoint: dict[str, Any], worker: int) -> None:
    for key in ("health", "active_health"):
        if key in endpoint:
            into[key] = _worse(into[key], endpoint[key])
    if "ejected" in endpoint:
        into["ejections"] += endpoint.get("ejections", 0)
        if endpoint["ejected"]:
            into["ejected"] = True
            into["ejected_in_workers"].append(worker)


def _worse(a: str, b: str) -> str:
    return a if _SEVERITY.get(a, 1) >= _SEVERITY.get(b, 1) else b
