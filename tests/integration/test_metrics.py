"""``/metrics`` after a scripted run of requests and faults, with two workers.

One real gateway process (``--workers 2``), real grpcio backends (one that
answers, one that answers UNAVAILABLE) and the tests' own xDS server. The
script sends successes, a request no route takes, requests that retry, a
timeout, requests over a cluster's max_requests, requests until an endpoint
is ejected, xDS requests and an invalid xDS resource (a NACK), and reloads
(one good file, one bad). The exposition is parsed with prometheus-client's
parser and each family is checked against what the client saw; every
request opens its own connection, so both workers take a share and the
counters must add up over them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.support import xds_builders as b
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import echo_backend
from tests.support.xds_server import XdsServer, serve_service

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"
HOST, PORT = "metrics.default.svc.cluster.local", 50051
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
XDS_TYPES = {
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    ROUTE_TYPE,
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
}
START = "meshgate_process_start_time_seconds"
SUCCESSES = 40
NOT_FOUND = 3
RETRIED = 10
CAPPED = 8
WAIT_S = 60.0

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Scrape:
    """One parsed exposition: every sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.series: Series = {}
        for family in self.families.values():
            for sample in family.samples:
                self.series[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.series.get((name, tuple(sorted(labels.items()))), 0.0)

    def matching(self, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every series of ``name`` whose labels include ``labels``."""
        return {
            key: v
            for (n, key), v in self.series.items()
            if n == name and set(labels.items()) <= set(key)
        }

    def total(self, name: str, **labels: str) -> float:
        return sum(self.matching(name, **labels).values())


def scrape(gateway: RunningGateway) -> Scrape:
    return Scrape(httpx.get(f"{gateway.admin_url}/metrics", timeout=10).text)


def wait_scrape(gateway: RunningGateway, ready: Callable[[Scrape], bool], what: str) -> Scrape:
    """Scrape until ``ready`` holds (other workers publish their state every 2s)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = scrape(gateway)
        if ready(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen in {WAIT_S}s\n{found.text}")
        time.sleep(0.3)


@dataclass
class Run:
    """What the script did and saw, and the scrapes taken along the way."""

    good: str
    bad: str
    xds_server: str
    overloaded: int = 0
    capped_ok: int = 0
    in_flight_seen: float = 0.0
    ejection_requests: int = 0
    retry_overflows: int = 0
    hashes: dict[str, str] = field(default_factory=dict)
    # Each worker's own count of the successes, from its multiprocess file.
    shares: list[float] = field(default_factory=list)
    killed: int = 0  # the worker's pid the script killed
    scrapes: dict[str, Scrape] = field(default_factory=dict)


def post(gateway: RunningGateway, case: str, body: dict[str, Any] | None = None) -> httpx.Response:
    # A connection per request: the kernel spreads them over both workers.
    return httpx.post(
        f"{gateway.url}{ECHO}",
        json=body or {},
        headers={"x-case": case, "connection": "close"},
        timeout=15,
    )


def route(name: str, cluster: str, **more: Any) -> dict[str, Any]:
    match: dict[str, Any] = {"prefix": "/meshgate.test.v1.EchoService/"}
    if name != "echo":
        match["headers"] = [{"name": "x-case", "exact": name}]
    return {
        "name": name,
        "match": match,
        "transcode": {"auto_mapping": True},
        "cluster": cluster,
        "timeout": "5s",
        **more,
    }


def gateway_config(echo_set: Path, bootstrap: Path, good: str, bad: str) -> dict[str, Any]:
    return {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    route("mesh", f"xds:///{HOST}:{PORT}"),
                    route("retry", "flaky", retry={"attempts": 2, "on": ["unavailable"]}),
                    route("eject", "ejecting"),
                    route("tight", "tight", retry={"attempts": 2, "on": ["unavailable"]}),
                    route("capped", "capped"),
                    route("slow", "shop", timeout="300ms"),
                    route("echo", "shop"),
                ],
            }
        ],
        "clusters": [
            {"name": "shop", "endpoints": [{"address": good}]},
            {"name": "flaky", "endpoints": [{"address": bad}, {"address": good}]},
            {
                "name": "ejecting",
                "endpoints": [{"address": bad}, {"address": good}],
                "outlier_detection": {
                    "consecutive_5xx": 2,
                    "base_ejection_time": "300s",
                    "max_ejection_percent": 50,
                },
            },
            {"name": "capped", "endpoints": [{"address": good}], "max_requests": 1},
            # No retry may be in flight: each retry is a circuit-breaker overflow.
            {
                "name": "tight",
                "endpoints": [{"address": bad}, {"address": good}],
                "max_retries": 0,
            },
        ],
        "mesh": {"xds": {"bootstrap": str(bootstrap)}},
        # Reloads by SIGHUP only, so each is counted once per worker.
        "reload": {"watch": False},
    }


@pytest.fixture(scope="module")
def run(echo_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("metrics")
    ports = {"good": free_port(), "bad": free_port()}
    control = tmp / "bad.control"
    control.write_text("unavailable")
    with ExitStack() as stack:
        stack.enter_context(echo_backend(ports["good"], "good"))
        stack.enter_context(echo_backend(ports["bad"], "bad", control=control))
        good, bad = (f"127.0.0.1:{ports[n]}" for n in ("good", "bad"))
        service = b.Service(HOST, PORT, {"v1": [("127.0.0.1", ports["good"])]})
        xds = stack.enter_context(XdsServer())
        serve_service(xds, service, b.route(name="all", cluster=service.cluster("v1")))
        bootstrap = tmp / "bootstrap.json"
        bootstrap.write_text(json.dumps(xds.bootstrap()))
        config = gateway_config(echo_set, bootstrap, good, bad)
        # The workers' counter files, where the test can read each one alone.
        shared = tmp / "prometheus"
        shared.mkdir()
        env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
        gateway = stack.enter_context(run_gateway(config, tmp, workers=2, env=env))
        found = Run(good, bad, xds.address)
        script(gateway, found, xds, service)
        found.shares = worker_shares(shared, tmp / "one-worker")
        kill_a_worker(gateway, found, shared)
        yield found


def kill_a_worker(gateway: RunningGateway, found: Run, shared: Path) -> None:
    """SIGKILL one worker: its state goes, its counts stay, its replacement shows."""
    found.killed = min(int(p.stem.removeprefix("state_")) for p in shared.glob("state_*.json"))
    before = {dict(k)["worker"]: v for k, v in found.scrapes["final"].matching(START).items()}
    os.kill(found.killed, signal.SIGKILL)
    found.scrapes["restarted"] = wait_scrape(
        gateway,
        lambda s: (
            len(s.matching(START)) == 2
            and sum(1 for k, v in s.matching(START).items() if v != before.get(dict(k)["worker"]))
            == 1
            and not (shared / f"state_{found.killed}.json").exists()
        ),
        "the killed worker's replacement",
    )


def worker_shares(shared: Path, scratch: Path) -> list[float]:
    """The successes each worker counted, read from its own counter file."""
    shares = []
    for path in sorted(shared.glob("counter_*.db")):
        alone = scratch / path.stem
        alone.mkdir(parents=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        labels = {"listener": "public", "route": "echo", "status_code": "200"}
        value = registry.get_sample_value("meshgate_http_server_requests_total", labels)
        shares.append(value or 0.0)
    return shares


def script(gateway: RunningGateway, found: Run, xds: XdsServer, service: b.Service) -> None:
    for _ in range(SUCCESSES):
        assert post(gateway, "echo").status_code == 200
    for _ in range(NOT_FOUND):
        assert httpx.post(f"{gateway.url}/nope", json={}, timeout=10).status_code == 404
    for _ in range(RETRIED):
        assert post(gateway, "retry").status_code == 200
    assert post(gateway, "slow", {"delaySeconds": 3}).status_code == 504
    statuses = [post(gateway, "tight").status_code for _ in range(RETRIED)]
    assert set(statuses) <= {200, 503}
    found.retry_overflows = statuses.count(503)
    overflow(gateway, found)
    eject(gateway, found)
    for _ in range(5):
        assert post(gateway, "mesh").status_code == 200
    found.scrapes["xds"] = wait_scrape(
        gateway,
        lambda s: (
            {dict(k)["type_url"] for k in s.matching("meshgate_xds_resource_version_info")}
            >= XDS_TYPES
            and s.value("meshgate_xds_connected_state", server=found.xds_server) == 1
        ),
        "the xDS state of both workers",
    )
    nack(gateway, xds, service)
    outage(gateway, found, xds)
    reloads(gateway, found)
    found.scrapes["final"] = wait_scrape(
        gateway,
        lambda s: (
            {dict(k).get("worker") for k in s.matching("meshgate_process_open_fds")} == {"0", "1"}
        ),
        "both workers' process figures",
    )


def overflow(gateway: RunningGateway, found: Run) -> None:
    """Slow requests at once to a cluster of max_requests 1 per worker."""
    with ThreadPoolExecutor(CAPPED + 1) as pool:
        replies = [pool.submit(post, gateway, "capped", {"delaySeconds": 4}) for _ in range(CAPPED)]
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and not all(r.done() for r in replies):
            seen = scrape(gateway).value("meshgate_http_server_active_requests", listener="public")
            found.in_flight_seen = max(found.in_flight_seen, seen)
            time.sleep(0.2)
        answers = [r.result() for r in replies]
    found.overloaded = sum(
        1 for a in answers if a.status_code == 503 and a.headers.get("x-meshgate-overloaded")
    )
    found.capped_ok = sum(1 for a in answers if a.status_code == 200)
    assert found.overloaded + found.capped_ok == CAPPED


def eject(gateway: RunningGateway, found: Run) -> None:
    """Requests to a cluster with a failing endpoint until outlier detection ejects it."""
    for _ in range(60):
        post(gateway, "eject")
        found.ejection_requests += 1
        if scrape(gateway).total("meshgate_outlier_ejections_total", cluster="ejecting") >= 1:
            break
    found.scrapes["ejected"] = wait_scrape(
        gateway,
        lambda s: (
            s.value(
                "meshgate_upstream_endpoint_health_state",
                cluster="ejecting",
                endpoint=found.bad,
                state="ejected",
            )
            == 1
        ),
        "the ejected endpoint's state",
    )


def nack(gateway: RunningGateway, xds: XdsServer, service: b.Service) -> None:
    """An invalid route config: each worker NACKs it."""
    bad = b.route(name="bad", regex="/(?<=x)broken", cluster=service.cluster("v1"))
    xds.set(ROUTE_TYPE, [service.route_config(bad)])
    wait_scrape(
        gateway,
        lambda s: s.value("meshgate_xds_updates_total", type_url=ROUTE_TYPE, result="nack") >= 2,
        "a NACK from each worker",
    )
    xds.set(ROUTE_TYPE, [service.route_config(b.route(name="all", cluster=service.cluster("v1")))])


def outage(gateway: RunningGateway, found: Run, xds: XdsServer) -> None:
    """The control plane goes away, then comes back on the same address."""
    xds.stop()
    try:
        found.scrapes["outage"] = wait_scrape(
            gateway,
            lambda s: s.value("meshgate_xds_connected_state", server=found.xds_server) == 0,
            "the lost ADS stream",
        )
    finally:
        xds.start()
    wait_scrape(
        gateway,
        lambda s: s.value("meshgate_xds_connected_state", server=found.xds_server) == 1,
        "the ADS stream back in every worker",
    )


def running_config_hash(gateway: RunningGateway) -> str:
    """What /version says the workers run, as /metrics labels it (12 hex digits)."""
    version = httpx.get(f"{gateway.admin_url}/version", timeout=5).json()
    assert version["config_hash_agreed"] is True
    return str(version["config_hash"])[:12]


def reloads(gateway: RunningGateway, found: Run) -> None:
    path = gateway.config_path
    found.hashes["start"] = running_config_hash(gateway)
    changed = yaml.safe_load(path.read_text())
    changed["drain_timeout"] = "7s"  # a comment would not do: the running config is hashed
    path.write_text(yaml.safe_dump(changed))
    os.kill(gateway.process.proc.pid, signal.SIGHUP)
    found.scrapes["reloaded"] = wait_scrape(
        gateway,
        lambda s: (
            s.value("meshgate_config_reloads_total", result="ok") == 2
            and len(hashes := set(s.matching("meshgate_config_info"))) == 1
            and hashes != {(("hash", found.hashes["start"]),)}
        ),
        "a good reload in both workers",
    )
    found.hashes["reloaded"] = running_config_hash(gateway)
    assert set(found.scrapes["reloaded"].matching("meshgate_config_info")) == {
        (("hash", found.hashes["reloaded"]),)
    }
    path.write_text(yaml.safe_dump({"listeners": "not a list"}))
    os.kill(gateway.process.proc.pid, signal.SIGHUP)
    wait_scrape(
        gateway,
        lambda s: s.value("meshgate_config_reloads_total", result="rejected") == 2,
        "a rejected reload in both workers",
    )
    path.write_text(yaml.safe_dump(changed))


# -- the families ------------------------------------------------------------


def test_requests_add_up_over_both_workers(run: Run) -> None:
    final = run.scrapes["final"]
    server = "meshgate_http_server_requests_total"
    assert final.value(server, listener="public", route="echo", status_code="200") == SUCCESSES
    duration = "meshgate_http_server_request_duration_seconds_count"
    assert final.value(duration, listener="public", route="echo", status_class="2xx") == SUCCESSES
    bucket = final.value(
        "meshgate_http_server_request_duration_seconds_bucket",
        listener="public",
        route="echo",
        status_class="2xx",
        le="+Inf",
    )
    assert bucket == SUCCESSES
    # Each worker served some of them (a connection per request; the kernel
    # spreads them), and what /metrics says is the sum of the two.
    assert len(run.shares) == 2, run.shares
    assert all(share > 0 for share in run.shares), run.shares
    assert sum(run.shares) == SUCCESSES


def test_unmatched_requests_have_no_route_name(run: Run) -> None:
    final = run.scrapes["final"]
    assert (
        final.value(
            "meshgate_http_server_requests_total",
            listener="public",
            route="(none)",
            status_code="404",
        )
        == NOT_FOUND
    )
    # No raw path ever becomes a label value.
    assert "/nope" not in final.text
    assert ECHO not in final.text


def test_upstream_attempts_by_cluster_endpoint_and_grpc_status(run: Run) -> None:
    final = run.scrapes["final"]
    attempts = "meshgate_rpc_client_requests_total"
    assert final.value(attempts, cluster="shop", endpoint=run.good, grpc_status="OK") == SUCCESSES
    count = "meshgate_rpc_client_call_duration_seconds_count"
    assert final.value(count, cluster="shop", endpoint=run.good) == SUCCESSES + 1  # + the timeout
    # The retried route: every request ended OK on the good endpoint; each
    # UNAVAILABLE from the bad one was retried.
    assert final.value(attempts, cluster="flaky", endpoint=run.good, grpc_status="OK") == RETRIED
    unavailable = final.value(
        attempts, cluster="flaky", endpoint=run.bad, grpc_status="UNAVAILABLE"
    )
    assert unavailable >= 1
    assert final.value("meshgate_upstream_retries_total", cluster="flaky") == unavailable
    assert (
        final.value(
            "meshgate_http_server_requests_total",
            listener="public",
            route="retry",
            status_code="200",
        )
        == RETRIED
    )


def test_timeouts(run: Run) -> None:
    final = run.scrapes["final"]
    assert final.value("meshgate_upstream_timeouts_total", cluster="shop") == 1
    assert (
        final.value(
            "meshgate_http_server_requests_total",
            listener="public",
            route="slow",
            status_code="504",
        )
        == 1
    )
    assert (
        final.value(
            "meshgate_rpc_client_requests_total",
            cluster="shop",
            endpoint=run.good,
            grpc_status="DEADLINE_EXCEEDED",
        )
        == 1
    )


def test_circuit_breaker_overflows_and_in_flight(run: Run) -> None:
    final = run.scrapes["final"]
    # max_requests 1 in each of two workers: at most two of the slow requests run.
    assert run.overloaded >= CAPPED - 2
    overflow = final.value(
        "meshgate_upstream_overflow_total", cluster="capped", breaker="max_requests"
    )
    assert overflow == run.overloaded
    assert (
        final.value(
            "meshgate_http_server_requests_total",
            listener="public",
            route="capped",
            status_code="503",
        )
        == run.overloaded
    )
    assert 1 <= run.in_flight_seen <= CAPPED
    # Nothing in flight once the script is done.
    assert final.value("meshgate_http_server_active_requests", listener="public") == 0


def test_retry_overflows(run: Run) -> None:
    final = run.scrapes["final"]
    # Each request whose first try met the bad endpoint wanted a retry, and
    # max_retries 0 refused it: the client saw that try's UNAVAILABLE.
    assert run.retry_overflows >= 1
    assert final.value("meshgate_upstream_retry_overflow_total", cluster="tight") == (
        run.retry_overflows
    )
    overflow = final.value("meshgate_upstream_overflow_total", cluster="tight", breaker="retries")
    assert overflow == run.retry_overflows
    assert final.value("meshgate_upstream_retries_total", cluster="tight") == 0
    attempts = "meshgate_rpc_client_requests_total"
    assert (
        final.value(attempts, cluster="tight", endpoint=run.bad, grpc_status="UNAVAILABLE")
        == run.retry_overflows
    )


def test_ejections_and_health_state(run: Run) -> None:
    ejected = run.scrapes["ejected"]
    assert ejected.total("meshgate_outlier_ejections_total", cluster="ejecting") >= 1
    assert (
        ejected.total("meshgate_endpoint_health_events_total", cluster="ejecting", kind="ejected")
        >= 1
    )
    state = "meshgate_upstream_endpoint_health_state"
    assert ejected.value(state, cluster="ejecting", endpoint=run.bad, state="ejected") == 1
    assert ejected.value(state, cluster="ejecting", endpoint=run.good, state="healthy") == 1
    assert ejected.value(state, cluster="ejecting", endpoint=run.good, state="ejected") == 0
    assert ejected.value(state, cluster="shop", endpoint=run.good, state="healthy") == 1
    assert ejected.value("meshgate_upstream_endpoints", cluster="ejecting", state="ejected") == 1
    assert ejected.value("meshgate_upstream_endpoints", cluster="ejecting", state="healthy") == 1
    # Three states per endpoint, nothing else.
    states = {dict(k)["state"] for k in ejected.matching(state)}
    assert states == {"healthy", "unhealthy", "ejected"}


def test_xds_connection_versions_and_acks(run: Run) -> None:
    xds = run.scrapes["xds"]
    assert xds.value("meshgate_xds_connected_state", server=run.xds_server) == 1
    versions = xds.matching("meshgate_xds_resource_version_info")
    assert {dict(k)["type_url"] for k in versions} == XDS_TYPES
    assert all(v == 1 for v in versions.values())
    for type_url in XDS_TYPES:
        # At least one response of each type accepted by each worker.
        assert xds.value("meshgate_xds_updates_total", type_url=type_url, result="ack") >= 2
    assert xds.total("meshgate_xds_updates_total", result="nack") == 0
    # During the outage: down, the last accepted versions kept.
    outage = run.scrapes["outage"]
    assert outage.value("meshgate_xds_connected_state", server=run.xds_server) == 0
    kept = outage.matching("meshgate_xds_resource_version_info")
    assert {dict(k)["type_url"] for k in kept} == XDS_TYPES
    final = run.scrapes["final"]
    assert final.value("meshgate_xds_updates_total", type_url=ROUTE_TYPE, result="nack") >= 2
    # The mesh route: counted under its route name and the xDS cluster.
    assert (
        final.value(
            "meshgate_http_server_requests_total",
            listener="public",
            route="mesh",
            status_code="200",
        )
        == 5
    )
    mesh_attempts = final.total(
        "meshgate_rpc_client_requests_total", endpoint=run.good, grpc_status="OK"
    ) - final.total(
        "meshgate_rpc_client_requests_total", cluster="shop", endpoint=run.good, grpc_status="OK"
    )
    assert mesh_attempts >= 5


def test_config_reloads_and_hash(run: Run) -> None:
    final = run.scrapes["final"]
    # One SIGHUP each; every worker reloads for itself.
    assert final.value("meshgate_config_reloads_total", result="ok") == 2
    assert final.value("meshgate_config_reloads_total", result="rejected") == 2
    # The rejected file changed nothing: the hash is the good reloaded file's.
    assert set(final.matching("meshgate_config_info")) == {(("hash", run.hashes["reloaded"]),)}
    assert run.hashes["reloaded"] != run.hashes["start"]


def test_process_figures_per_worker(run: Run) -> None:
    final = run.scrapes["final"]
    for name in (
        "meshgate_process_resident_memory_bytes",
        "meshgate_process_cpu_seconds_total",
        "meshgate_process_open_fds",
        "meshgate_process_start_time_seconds",
    ):
        series = final.matching(name)
        assert {dict(k)["worker"] for k in series} == {"0", "1"}, name
        assert all(v > 0 for v in series.values()), name


def test_a_killed_worker_keeps_its_counts_and_loses_its_state(run: Run) -> None:
    restarted = run.scrapes["restarted"]
    # The dead worker's counters are still in the sum.
    assert (
        restarted.value(
            "meshgate_http_server_requests_total",
            listener="public",
            route="echo",
            status_code="200",
        )
        == SUCCESSES
    )
    # Its state is gone; the replacement reports under the same worker index.
    assert {dict(k)["worker"] for k in restarted.matching(START)} == {"0", "1"}
    assert restarted.value("meshgate_http_server_active_requests", listener="public") == 0
    assert set(restarted.matching("meshgate_config_info")) == {(("hash", run.hashes["reloaded"]),)}


def test_dashboard_queries_name_exposed_families(run: Run) -> None:
    from tests.unit.test_grafana_dashboard import dashboard_metric_names, exposed_names

    exposed = exposed_names(run.scrapes["final"].text)
    missing = dashboard_metric_names() - exposed
    assert not missing, missing
