"""Endpoint health against real grpcio backends, static (YAML) clusters.

Each scenario runs a bounded load loop (a fixed number of requests and a
time limit) through a real meshgate process while a backend dies, answers
UNAVAILABLE for a while, or is slow, and counts what the client sees. The
figures go to docs/resilience.md.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import Process, echo_backend

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"
RETRY_HEADER = {"x-retry": "yes"}
# The active check of these tests: a dead endpoint is out after two failed
# probes 300ms apart, so within DETECTION_S (with room for a busy machine).
HEALTH_CHECK = {"grpc": {}, "interval": "300ms", "timeout": "300ms", "unhealthy_threshold": 2}
DETECTION_S = 2.0


@dataclass
class Backends:
    ports: dict[str, int]
    controls: dict[str, Path]
    processes: dict[str, Process] = field(default_factory=dict)

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def order(self, name: str, order: str) -> None:
        self.controls[name].write_text(order)

    def health_checks(self, name: str) -> int:
        return sum(1 for line in self.processes[name].lines if line == "HEALTH_CHECK")


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[Backends]:
    names = ("a", "b", "c")
    found = Backends({n: free_port() for n in names}, {n: tmp_path / f"{n}.control" for n in names})
    with ExitStack() as stack:
        for name in names:
            found.processes[name] = stack.enter_context(
                echo_backend(found.ports[name], name, control=found.controls[name])
            )
        yield found


def config(echo_set: Path, backends: Backends, **cluster: Any) -> dict[str, Any]:
    """One cluster over the backends; a route that retries (x-retry) and one that does not."""
    names = cluster.pop("names", ("a", "b", "c"))
    return {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    {
                        "name": "with-retries",
                        "match": {"prefix": "/", "headers": [{"name": "x-retry", "present": True}]},
                        "transcode": {"auto_mapping": True},
                        "cluster": "shop",
                        "timeout": "2s",
                        "retry": {"attempts": 2, "on": ["unavailable", "connect-failure", "reset"]},
                    },
                    {
                        "name": "without-retries",
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True},
                        "cluster": "shop",
                        "timeout": "2s",
                    },
                ],
            }
        ],
        "clusters": [
            {
                "name": "shop",
                "endpoints": [{"address": backends.address(n)} for n in names],
                **cluster,
            }
        ],
    }


@dataclass
class Sample:
    at: float  # seconds since the fault
    retried: bool
    status: int
    served_by: str


def call(client: httpx.Client, retried: bool) -> tuple[int, str]:
    try:
        reply = client.post(ECHO, json={"message": "x"}, headers=RETRY_HEADER if retried else {})
    except httpx.HTTPError:
        return 0, ""
    served_by = reply.json().get("servedBy", "") if reply.status_code == 200 else ""
    return reply.status_code, served_by


def load(gateway: RunningGateway, start: float, requests: int, seconds: float) -> list[Sample]:
    """A bounded loop alternating the two routes: at most ``requests`` requests
    and ``seconds`` seconds, whichever comes first."""
    samples = []
    deadline = time.monotonic() + seconds
    with gateway.client(timeout=5.0) as client:
        for i in range(requests):
            if time.monotonic() > deadline:
                break
            retried = i % 2 == 0
            status, served_by = call(client, retried)
            samples.append(Sample(time.monotonic() - start, retried, status, served_by))
    return samples


def clusters(gateway: RunningGateway) -> dict[str, dict[str, Any]]:
    shop = httpx.get(f"{gateway.admin_url}/clusters", timeout=5.0).json()["static"]["shop"]
    return {e["address"]: e for e in shop["endpoints"]}


def wait_for(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(0.05)


def report(name: str, samples: list[Sample]) -> None:
    """The reliability figures of a scenario (pytest -s shows them; docs/resilience.md)."""
    for retried in (True, False):
        mine = [s for s in samples if s.retried == retried]
        if not mine:
            continue
        failed = [s for s in mine if s.status != 200]
        last = max((s.at for s in failed), default=0.0)
        print(
            f"[{name}] {'with' if retried else 'without'} retries: sent {len(mine)},"
            f" failed {len(failed)}, last failure {last:.2f}s after the fault"
        )


def test_a_killed_backend_is_ejected_and_marked_unhealthy(
    echo_set: Path, backends: Backends, tmp_path: Path
) -> None:
    cluster = {
        # Random, not round robin: alternating routes over a strict rotation
        # would always send the route without retries to the same endpoint.
        "lb": "random",
        "outlier_detection": {
            "consecutive_5xx": 3,
            "interval": "500ms",
            "base_ejection_time": "30s",
            "max_ejection_percent": 50,
        },
        # Slower than the passive check, so that both are seen to act.
        "health_check": {**HEALTH_CHECK, "interval": "1s"},
    }
    with run_gateway(config(echo_set, backends, **cluster), tmp_path) as gateway:
        warm = load(gateway, time.monotonic(), 30, 10)
        assert {s.status for s in warm} == {200}
        assert {s.served_by for s in warm} == {"a", "b", "c"}
        killed = time.monotonic()
        backends.processes["b"].stop()
        samples = load(gateway, killed, 400, 6.0)
        report("backend killed", samples)
        with_retries = [s for s in samples if s.retried]
        without = [s for s in samples if not s.retried]
        # Retries go to another endpoint: the client never sees the dead one.
        assert [s for s in with_retries if s.status != 200] == []
        # Without retries the errors stop once the endpoint is ejected: at most
        # consecutive_5xx of them, all within the detection time.
        failed = [s for s in without if s.status != 200]
        assert len(failed) <= 3, failed
        assert all(s.status == 503 for s in failed)
        assert max((s.at for s in failed), default=0.0) < DETECTION_S
        assert [s for s in samples if s.at > DETECTION_S and s.served_by == "b"] == []
        # Passive: ejected. Active: unhealthy after two failed probes.
        wait_for(
            lambda: clusters(gateway)[backends.address("b")]["active_health"] == "unhealthy", 5
        )
        status = clusters(gateway)[backends.address("b")]
        assert status["ejected"] is True and status["ejections"] == 1
        assert status["health"] == "ejected"
        assert clusters(gateway)[backends.address("a")]["active_health"] == "healthy"
        metrics = httpx.get(f"{gateway.admin_url}/metrics", timeout=5.0).text
        assert 'meshgate_outlier_ejections_total{cluster="shop",reason="consecutive_5xx"} 1.0' in (
            metrics
        )
        # Logged once.
        ejected_lines = [
            line for line in gateway.process.lines if "ejected (consecutive_5xx)" in line
        ]
        assert len(ejected_lines) == 1


def test_a_backend_answering_unavailable_is_ejected_then_restored(
    echo_set: Path, backends: Backends, tmp_path: Path
) -> None:
    cluster = {
        # Random, not round robin: alternating routes over a strict rotation
        # would always send the route without retries to the same endpoint.
        "lb": "random",
        "outlier_detection": {
            "consecutive_5xx": 3,
            "interval": "250ms",
            "base_ejection_time": "3s",
            "max_ejection_percent": 50,
        },
    }
    with run_gateway(config(echo_set, backends, **cluster), tmp_path) as gateway:
        fault = time.monotonic()
        backends.order("c", "unavailable")
        during = load(gateway, fault, 40, 3.0)
        report("UNAVAILABLE for a while", during)
        assert [s for s in during if s.retried and s.status != 200] == []
        failed = [s for s in during if not s.retried and s.status != 200]
        assert len(failed) <= 3
        c = backends.address("c")
        assert ejection_lines(gateway, c) == ["3s"]
        backends.order("c", "")
        # Back after base_ejection_time (3s), at the next interval sweep.
        wait_for(lambda: clusters(gateway)[c]["ejected"] is False, 10)
        after = load(gateway, fault, 60, 10)
        assert {s.status for s in after} == {200}
        assert Counter(s.served_by for s in after)["c"] >= 10
        # It happens again and is ejected again. (How long depends on how many
        # intervals it spent back in the picker, each taking one ejection off
        # the multiplier: tests/unit/test_outlier.py pins that arithmetic.)
        backends.order("c", "unavailable")
        load(gateway, fault, 40, 5)
        wait_for(lambda: len(ejection_lines(gateway, c)) == 2, 5)
        assert ejection_lines(gateway, c)[1] in ("3s", "6s")


def ejection_lines(gateway: RunningGateway, address: str) -> list[str]:
    """How long each logged ejection of ``address`` lasts, in log order."""
    marker = f"endpoint {address} ejected (consecutive_5xx) for "
    return [line.split(marker, 1)[1] for line in gateway.process.lines if marker in line]


def test_a_slow_backend_gets_less_traffic_under_least_request(
    echo_set: Path, backends: Backends, tmp_path: Path
) -> None:
    backends.order("a", "slow:0.2")
    gateway_config = config(echo_set, backends, lb="least_request", names=("a", "b"))
    with run_gateway(gateway_config, tmp_path) as gateway:

        def worker(_: int) -> list[str]:
            served = []
            deadline = time.monotonic() + 10
            with gateway.client(timeout=5.0) as client:
                for _ in range(25):
                    if time.monotonic() > deadline:
                        break
                    status, served_by = call(client, retried=False)
                    assert status == 200
                    served.append(served_by)
            return served

        with ThreadPoolExecutor(8) as pool:
            counts = Counter(s for served in pool.map(worker, range(8)) for s in served)
        print(f"[slow backend] least_request split: {dict(counts)}")
        assert counts["b"] > 2 * counts["a"], counts


def test_two_workers_probe_once_and_both_leave_the_unhealthy_endpoint_out(
    echo_set: Path, backends: Backends, tmp_path: Path
) -> None:
    check = {**HEALTH_CHECK, "interval": "200ms"}
    with run_gateway(
        config(echo_set, backends, health_check=check), tmp_path, workers=2
    ) as gateway:
        time.sleep(0.5)
        before = backends.health_checks("a")
        time.sleep(2.0)
        probes = backends.health_checks("a") - before
        # One prober: about 2s / 200ms = 10 probes; two would send about 20.
        assert 5 <= probes <= 14, probes
        fault = time.monotonic()
        backends.order("c", "unavailable")
        # Each request may land on either worker (SO_REUSEPORT); new
        # connections spread them.
        samples = []
        deadline = time.monotonic() + 5
        for _ in range(150):
            if time.monotonic() > deadline:
                break
            with gateway.client(timeout=5.0) as client:
                status, served_by = call(client, retried=False)
            samples.append(Sample(time.monotonic() - fault, False, status, served_by))
        report("two workers, NOT_SERVING", samples)
        late = [s for s in samples if s.at > DETECTION_S]
        assert late and [s for s in late if s.status != 200] == []
        assert [s for s in late if s.served_by == "c"] == []


def test_all_endpoints_unhealthy_spreads_over_all_instead_of_failing(
    echo_set: Path, backends: Backends, tmp_path: Path
) -> None:
    """Envoy's panic threshold: when every endpoint fails its checks (here
    because the check asks for a service nobody serves), traffic still flows."""
    check = {**HEALTH_CHECK, "grpc": {"service": "nobody.serves.This"}}
    with run_gateway(config(echo_set, backends, health_check=check), tmp_path) as gateway:
        wait_for(
            lambda: all(e["active_health"] == "unhealthy" for e in clusters(gateway).values()), 5
        )
        samples = load(gateway, time.monotonic(), 30, 10)
        assert {s.status for s in samples} == {200}
        assert {s.served_by for s in samples} == {"a", "b", "c"}
        shop = httpx.get(f"{gateway.admin_url}/clusters", timeout=5.0).json()["static"]["shop"]
        assert shop["panic"] is True


def test_a_restarted_backend_is_reconnected_without_client_errors(
    echo_set: Path, backends: Backends, tmp_path: Path
) -> None:
    """The server's GOAWAY and the broken connection: the channel reconnects by
    itself once the backend is back (reconnect backoff capped at 2s), and the
    route with retries hides the restart from the client."""
    cluster = {"health_check": HEALTH_CHECK}
    with run_gateway(config(echo_set, backends, **cluster), tmp_path) as gateway:
        assert {s.status for s in load(gateway, time.monotonic(), 30, 10)} == {200}
        backends.processes["b"].stop()  # grpc's stop(grace): GOAWAY, then close
        restarted = time.monotonic()
        with echo_backend(backends.ports["b"], "b", control=backends.controls["b"]):
            samples = []
            with gateway.client(timeout=5.0) as client:
                for _ in range(300):
                    status, served_by = call(client, retried=True)
                    samples.append(Sample(time.monotonic() - restarted, True, status, served_by))
                    if time.monotonic() - restarted > 8 or (
                        sum(s.served_by == "b" for s in samples) >= 5
                    ):
                        break
        report("backend restarted", samples)
        assert {s.status for s in samples} == {200}
        assert sum(s.served_by == "b" for s in samples) >= 5


def metric(gateway: RunningGateway, name: str) -> float:
    text = httpx.get(f"{gateway.admin_url}/metrics", timeout=5.0).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{cluster="shop"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize(
    "limit",
    [{"max_retries": 2}, {"retry_budget": {"budget_percent": 20, "min_retry_concurrency": 2}}],
    ids=["max_retries", "retry_budget"],
)
def test_retries_cannot_multiply_an_outage(
    echo_set: Path, backends: Backends, tmp_path: Path, limit: dict[str, Any]
) -> None:
    for name in ("a", "b", "c"):
        backends.order(name, "unavailable")
    gateway_config = config(echo_set, backends, **limit)
    route = gateway_config["listeners"][0]["routes"][0]
    route["retry"] = {"attempts": 3, "on": ["unavailable"], "backoff": "20ms"}
    threads, per_thread = 8, 10
    with run_gateway(gateway_config, tmp_path) as gateway:

        def worker(_: int) -> list[int]:
            with gateway.client(timeout=5.0) as client:
                return [call(client, retried=True)[0] for _ in range(per_thread)]

        with ThreadPoolExecutor(threads) as pool:
            statuses = [s for batch in pool.map(worker, range(threads)) for s in batch]
        retries = metric(gateway, "meshgate_upstream_retries_total")
        overflow = metric(gateway, "meshgate_upstream_retry_overflow_total")
    requests = threads * per_thread
    print(
        f"[total outage, {next(iter(limit))}] requests {requests}, retries sent {retries:g},"
        f" retries refused {overflow:g} (uncapped: {3 * requests})"
    )
    assert statuses == [503] * requests  # every request answered, none hangs
    assert overflow > 0
    assert retries < 2 * requests
