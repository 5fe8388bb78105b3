"""The Grafana dashboard in docs/ names only metrics the gateway exposes.

Every PromQL expression (panel targets and template variables) is scanned
for ``meshgate_*`` names, and each must be a family or sample name of the
gateway's exposition: the counters and histograms of gateway.metrics (in
process) and the state families gateway.metrics_state publishes. The
integration test tests/integration/test_metrics.py checks the same names
against a real two-worker gateway's ``/metrics``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import exposition
from gateway.metrics_state import FAMILIES

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "meshgate-dashboard.json"
METRIC_NAME = re.compile(r"\bmeshgate_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def _expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition", "query") and isinstance(value, str):
                yield value
            else:
                yield from _expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {name for expr in _expressions(dashboard) for name in METRIC_NAME.findall(expr)}


def exposed_names(text: str) -> set[str]:
    """Every name a query may use: families and their samples' names."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all(t["expr"] for t in panel["targets"])


def test_dashboard_covers_each_area() -> None:
    names = dashboard_metric_names()
    for wanted in (
        "meshgate_http_server_requests_total",
        "meshgate_http_server_request_duration_seconds_bucket",
        "meshgate_rpc_client_call_duration_seconds_bucket",
        "meshgate_upstream_retries_total",
        "meshgate_outlier_ejections_total",
        "meshgate_upstream_endpoints",
        "meshgate_xds_connected_state",
        "meshgate_xds_updates_total",
        "meshgate_config_reloads_total",
    ):
        assert wanted in names, wanted


def test_every_dashboard_metric_is_exposed() -> None:
    body, _ = exposition()
    exposed = exposed_names(body.decode())
    for name, family in FAMILIES.items():
        exposed.add(name)
        exposed.update(name + suffix for suffix in SUFFIXES[family.kind])
    missing = dashboard_metric_names() - exposed
    assert not missing, f"the dashboard queries metrics the gateway does not expose: {missing}"
