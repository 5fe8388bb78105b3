"""Every worker's view into one admin answer (gateway.admin_merge), without processes."""

from __future__ import annotations

from typing import Any

from gateway.admin_merge import (
    WorkerView,
    merge_clusters,
    merge_config_dump,
    merge_logging,
    merge_version,
)


def endpoint(address: str, **status: Any) -> dict[str, Any]:
    base = {"address": address, "weight": 1, "health": "healthy", "labels": {}}
    base.update(active_health="unknown", ejected=False, ejections=0)
    base.update(status)
    return base


def clusters_view(in_flight: int, *endpoints: dict[str, Any], channels: Any = ()) -> dict[str, Any]:
    cluster = {"lb": "round_robin", "in_flight": in_flight, "panic": False, "endpoints": endpoints}
    return {
        "static": {"shop": cluster},
        "registry": {},
        "registries": [],
        "xds": {},
        "channels": list(channels),
    }


def test_in_flight_and_ejections_add_up_and_the_worst_health_wins() -> None:
    views = [
        WorkerView(0, 100, clusters_view(2, endpoint("a:1"), endpoint("b:1"), channels=["a:1"])),
        WorkerView(
            1,
            101,
            clusters_view(
                3,
                endpoint("a:1"),
                endpoint("b:1", health="ejected", ejected=True, ejections=2),
                channels=["b:1", "a:1"],
            ),
        ),
    ]
    merged = merge_clusters(views)
    shop = merged["static"]["shop"]
    assert shop["in_flight"] == 5
    a, b = shop["endpoints"]
    assert (a["health"], a["ejected"], a["ejected_in_workers"]) == ("healthy", False, [])
    assert (b["health"], b["ejected"], b["ejections"]) == ("ejected", True, 2)
    assert b["ejected_in_workers"] == [1]
    assert merged["channels"] == ["a:1", "b:1"]
    assert merged["workers"] == [{"worker": 0, "pid": 100}, {"worker": 1, "pid": 101}]


def test_the_answer_does_not_depend_on_which_worker_merges() -> None:
    zero = WorkerView(0, 100, clusters_view(1, endpoint("a:1", health="unknown")))
    one = WorkerView(1, 101, clusters_view(0, endpoint("a:1", health="unhealthy")))
    # The asking worker puts its own view among the others; the order is the workers'.
    assert merge_clusters([zero, one]) == merge_clusters(sorted([one, zero], key=lambda v: v.index))
    assert merge_clusters([zero, one])["static"]["shop"]["endpoints"][0]["health"] == "unhealthy"


def test_a_worker_without_an_answer_is_named_and_left_out() -> None:
    views = [
        WorkerView(0, 100, clusters_view(1, endpoint("a:1"))),
        WorkerView(1, None, None, "not running (starting or being replaced)"),
    ]
    merged = merge_clusters(views)
    assert merged["static"]["shop"]["in_flight"] == 1
    assert merged["workers"][1] == {
        "worker": 1,
        "pid": None,
        "error": "not running (starting or being replaced)",
    }


def test_versions_say_whether_the_workers_run_the_same_config() -> None:
    def view(digest: str, started: float) -> dict[str, Any]:
        return {
            "meshgate": "0.1.0",
            "python": "3.11.7",
            "config_hash": digest,
            "gateway_started": 10.0,
            "started": started,
        }

    same = merge_version([WorkerView(0, 1, view("x", 11.0)), WorkerView(1, 2, view("x", 12.0))])
    assert (same["config_hash"], same["config_hash_agreed"], same["started"]) == ("x", True, 10.0)
    assert [w["started"] for w in same["workers"]] == [11.0, 12.0]
    split = merge_version([WorkerView(0, 1, view("x", 11.0)), WorkerView(1, 2, view("y", 12.0))])
    assert split["config_hash_agreed"] is False
    assert split["worker_count"] == 2


def test_log_levels_are_per_worker_and_mixed_when_they_differ() -> None:
    merged = merge_logging(
        [
            WorkerView(0, 1, {"levels": {"gateway": "debug", "mesh": "info"}}),
            WorkerView(1, 2, {"levels": {"gateway": "info", "mesh": "info"}}),
        ]
    )
    assert merged["levels"] == {"gateway": "mixed", "mesh": "info"}
    assert [w["levels"]["gateway"] for w in merged["workers"]] == ["debug", "info"]


def test_the_config_dump_keeps_each_workers_ads_stream() -> None:
    def view(connected: bool) -> dict[str, Any]:
        acks = {"cds": {"version": "7", "nonce": "n", "error": None}}
        return {
            "config": {},
            "config_hash": "h",
            "xds": {"connected": connected, "resources": [], "acks": acks},
        }

    merged = merge_config_dump([WorkerView(0, 1, view(True)), WorkerView(1, 2, view(False))])
    assert [w["xds"]["connected"] for w in merged["workers"]] == [True, False]
    assert merged["workers"][0]["xds"]["acks"]["cds"]["version"] == "7"
    assert merged["xds"]["connected"] is True  # the lowest worker's full dump
