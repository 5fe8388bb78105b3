"""The per-request observer's labels and the merge of the workers' state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client import REGISTRY

from gateway.errors import Code
from gateway.exchange import Attempt, Exchange
from gateway.metrics import MAX_ENDPOINTS_PER_CLUSTER, OTHER_ENDPOINT, observe
from gateway.metrics_state import (
    EJECTED,
    HEALTHY,
    STALE_AFTER,
    UNHEALTHY,
    Published,
    live_workers,
    merged_families,
)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def exchange(
    route: str, status: int, cluster: str = "", attempts: tuple[Attempt, ...] = ()
) -> Exchange:
    done = Exchange("unit", "POST", "/any/raw/path", route=route, cluster=cluster, status=status)
    done.attempts.extend(attempts)
    done.seconds = 0.002
    return done


def test_request_counted_by_route_and_status() -> None:
    before = value(
        "meshgate_http_server_requests_total", listener="unit", route="r1", status_code="503"
    )
    observe(exchange("r1", 503))
    after = value(
        "meshgate_http_server_requests_total", listener="unit", route="r1", status_code="503"
    )
    assert after == before + 1
    count = value(
        "meshgate_http_server_request_duration_seconds_count",
        listener="unit",
        route="r1",
        status_class="5xx",
    )
    assert count >= 1


def test_unmatched_request_has_route_none_and_never_its_path() -> None:
    observe(exchange("", 404))
    assert (
        value(
            "meshgate_http_server_requests_total",
            listener="unit",
            route="(none)",
            status_code="404",
        )
        >= 1
    )
    samples = [s for m in REGISTRY.collect() for s in m.samples]
    assert not any("/any/raw/path" in v for s in samples for v in s.labels.values())


def test_attempts_by_endpoint_and_grpc_status_and_timeouts() -> None:
    attempts = (
        Attempt("10.0.0.1:1", 0.0, 0.01, Code.DEADLINE_EXCEEDED),
        Attempt("10.0.0.2:1", 0.0, 0.01, Code.OK),
        Attempt("10.0.0.3:1", 0.0, 0.01, None),
    )
    observe(exchange("r2", 200, "timeouts-cluster", attempts))
    name = "meshgate_rpc_client_requests_total"
    assert (
        value(
            name, cluster="timeouts-cluster", endpoint="10.0.0.1:1", grpc_status="DEADLINE_EXCEEDED"
        )
        == 1
    )
    assert value(name, cluster="timeouts-cluster", endpoint="10.0.0.2:1", grpc_status="OK") == 1
    assert (
        value(name, cluster="timeouts-cluster", endpoint="10.0.0.3:1", grpc_status="NO_STATUS") == 1
    )
    assert value("meshgate_upstream_timeouts_total", cluster="timeouts-cluster") == 1
    duration = "meshgate_rpc_client_call_duration_seconds_count"
    assert value(duration, cluster="timeouts-cluster", endpoint="10.0.0.2:1") == 1


def test_endpoints_past_the_cap_fold_into_other() -> None:
    extra = 20
    for i in range(MAX_ENDPOINTS_PER_CLUSTER + extra):
        observe(
            exchange("r3", 200, "big", (Attempt(f"10.1.{i // 250}.{i % 250}:80", 0.0, 0.001, 0),))
        )
    samples = [
        s
        for m in REGISTRY.collect()
        for s in m.samples
        if s.name == "meshgate_rpc_client_requests_total" and s.labels["cluster"] == "big"
    ]
    endpoints = {s.labels["endpoint"] for s in samples}
    assert len(endpoints) == MAX_ENDPOINTS_PER_CLUSTER + 1
    assert OTHER_ENDPOINT in endpoints
    assert (
        value(
            "meshgate_rpc_client_requests_total",
            cluster="big",
            endpoint=OTHER_ENDPOINT,
            grpc_status="OK",
        )
        == extra
    )


def merged(workers: list[Published]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in merged_families(workers)
        for s in family.samples
    }


def test_state_merges_by_each_familys_rule() -> None:
    server = {"server": "cp:15010"}
    first = Published(
        [
            ("meshgate_http_server_active_requests", {"listener": "l"}, 2),
            ("meshgate_xds_connected_state", server, 1),
            ("meshgate_xds_resource_version_info", {"type_url": "t", "version": "1"}, 1),
            ("meshgate_process_open_fds", {"worker": "0"}, 30),
            ("meshgate_process_cpu_seconds", {"worker": "0"}, 1.5),
        ],
        {"c": {"a:1": EJECTED, "b:1": HEALTHY}},
    )
    second = Published(
        [
            ("meshgate_http_server_active_requests", {"listener": "l"}, 3),
            ("meshgate_xds_connected_state", server, 0),
            ("meshgate_xds_resource_version_info", {"type_url": "t", "version": "2"}, 1),
            ("meshgate_process_open_fds", {"worker": "1"}, 40),
        ],
        {"c": {"a:1": HEALTHY, "b:1": UNHEALTHY}},
    )
    found = merged([first, second])
    assert found[("meshgate_http_server_active_requests", (("listener", "l"),))] == 5
    assert found[("meshgate_xds_connected_state", (("server", "cp:15010"),))] == 0
    versions = {k for n, k in found if n == "meshgate_xds_resource_version_info"}
    assert versions == {
        (("type_url", "t"), ("version", "1")),
        (("type_url", "t"), ("version", "2")),
    }
    assert found[("meshgate_process_open_fds", (("worker", "0"),))] == 30
    assert found[("meshgate_process_open_fds", (("worker", "1"),))] == 40
    assert found[("meshgate_process_cpu_seconds_total", (("worker", "0"),))] == 1.5
    # Each endpoint in the worst state any worker sees; the counts add up.
    state = "meshgate_upstream_endpoint_health_state"
    assert found[(state, (("cluster", "c"), ("endpoint", "a:1"), ("state", "ejected")))] == 1
    assert found[(state, (("cluster", "c"), ("endpoint", "a:1"), ("state", "healthy")))] == 0
    assert found[(state, (("cluster", "c"), ("endpoint", "b:1"), ("state", "unhealthy")))] == 1
    counts = {
        dict(k)["state"]: v for (n, k), v in found.items() if n == "meshgate_upstream_endpoints"
    }
    assert counts == {"healthy": 0, "unhealthy": 1, "ejected": 1}


def test_a_dead_workers_state_is_dropped(tmp_path: Path) -> None:
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(exited.stdout)
    sample = ["meshgate_process_open_fds", {"worker": "9"}, 1]
    (tmp_path / f"state_{dead}.json").write_text(json.dumps({"samples": [sample], "health": {}}))
    (tmp_path / f"state_{os.getpid()}.json").write_text(
        json.dumps({"samples": [sample], "health": {}})
    )
    workers = live_workers(tmp_path)
    assert len(workers) == 1
    assert not (tmp_path / f"state_{dead}.json").exists()
    # A file its worker stopped refreshing is left out too.
    old = time.time() - STALE_AFTER - 1
    os.utime(tmp_path / f"state_{os.getpid()}.json", (old, old))
    assert live_workers(tmp_path) == []
