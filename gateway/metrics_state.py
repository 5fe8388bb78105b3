"""State gauges: what each worker holds now, merged over the workers at scrape time.

Counters add up over the workers' lives in prometheus-client's multiprocess
files (gateway.metrics). State is different: an EDS endpoint that left, or
an xDS version replaced, must vanish from ``/metrics``, and prometheus-client
cannot delete a label set from its files. So each worker writes what it
holds now (in-flight requests, endpoint health, xDS connection and versions,
the config hash, its process figures) to ``state_<pid>.json`` in the same
directory every PUBLISH_INTERVAL, rewritten whole; the worker answering a
scrape refreshes its own file, reads every live worker's, and merges each
family by its rule:

- ``sum``: in-flight requests add up over the workers;
- ``max``: an xDS version or config hash held by any worker is shown;
- endpoint health: each endpoint gets the worst state any worker sees
  (ejected, then unhealthy, then healthy): ejection is per worker, each
  worker's outlier detection seeing its own traffic. The per-cluster counts
  are counted from those merged states, so they add up to the endpoints;
- ``min``: the control plane counts as connected when every worker is;
- per worker: process figures carry a ``worker`` label (the worker's index,
  stable across restarts, unlike its pid), so a leaking worker stands out.

With one worker (no shared directory) the state is read in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import Metric

from gateway.config.digest import config_hash
from gateway.config.model import GatewayConfig
from gateway.metrics import MULTIPROC_ENV, OTHER_ENDPOINT, endpoint_label, set_state_collector
from mesh.endpoint import Health

if TYPE_CHECKING:
    from gateway.app import GatewayApp
    from mesh.cluster_health import ClusterHealth

PUBLISH_INTERVAL = 2.0
# A file this old is left out even if its pid is alive: the pid was reused,
# or the worker's loop is stuck and its state is no longer what it holds.
STALE_AFTER = 60.0
STATE_PREFIX = "state_"
# xDS version strings come from the control plane; longer ones are cut.
MAX_VERSION_CHARS = 64
CONFIG_HASH_CHARS = 12
HEALTH_STATES = ("healthy", "unhealthy", "ejected")  # in order of severity
HEALTHY, UNHEALTHY, EJECTED = range(3)

Labels = dict[str, str]
Sample = tuple[str, Labels, float]
# Per cluster, each endpoint's state (an index into HEALTH_STATES).
HealthStates = dict[str, dict[str, int]]


@dataclass(slots=True)
class Published:
    """What one worker holds: plain samples, and endpoint states to merge."""

    samples: list[Sample]
    health: HealthStates


@dataclass(frozen=True, slots=True)
class Family:
    kind: str  # gauge | counter
    help: str
    merge: Callable[[list[float]], float]


FAMILIES: dict[str, Family] = {
    "meshgate_http_server_active_requests": Family(
        "gauge", "Requests in flight, by listener (summed over workers)", sum
    ),
    "meshgate_upstream_endpoint_health_state": Family(
        "gauge",
        "1 for the state an endpoint is in (healthy; unhealthy: failing its active"
        " checks; ejected: by outlier detection), the worst any worker sees",
        max,
    ),
    "meshgate_upstream_endpoints": Family(
        "gauge", "Endpoints of each cluster by state (the worst any worker sees)", sum
    ),
    "meshgate_xds_connected_state": Family(
        "gauge", "1 when every worker's ADS stream to the control plane is up", min
    ),
    "meshgate_xds_resource_version_info": Family(
        "gauge", "The last accepted version of each xDS resource type, in any worker", max
    ),
    "meshgate_config_info": Family(
        "gauge", "The loaded config file's sha256 (first 12 hex digits), in any worker", max
    ),
    "meshgate_process_resident_memory_bytes": Family(
        "gauge", "Resident memory of each worker process", sum
    ),
    "meshgate_process_cpu_seconds": Family(
        "counter", "User and system CPU time of each worker process", sum
    ),
    "meshgate_process_open_fds": Family("gauge", "Open file descriptors of each worker", sum),
    "meshgate_process_start_time_seconds": Family(
        "gauge", "Start time of each worker process, seconds since the epoch", sum
    ),
}

# prometheus-client's own names for the process figures -> ours.
_PROCESS_NAMES = {
    "process_resident_memory_bytes": "meshgate_process_resident_memory_bytes",
    "process_cpu_seconds_total": "meshgate_process_cpu_seconds",
    "process_open_fds": "meshgate_process_open_fds",
    "process_start_time_seconds": "meshgate_process_start_time_seconds",
}


class WorkerState:
    """One worker's state gauges, read from its app when asked."""

    def __init__(self, app: GatewayApp, worker: int = 0) -> None:
        self.app = app
        self.worker = str(worker)
        self._hashed: GatewayConfig | None = None
        self._config_hash = ""
        # registry=None: read on demand, never registered (it would not add
        # up over workers in multiprocess mode).
        self._process = ProcessCollector(registry=None)

    def config_hash(self) -> str:
        """The running config's digest (as /version's), worked out once per config."""
        config = self.app.active.snapshot.config
        if config is not self._hashed:
            self._hashed = config
            self._config_hash = config_hash(config)[:CONFIG_HASH_CHARS]
        return self._config_hash

    def read(self) -> Published:
        return Published(self.samples(), self.health())

    def health(self) -> HealthStates:
        return {h.name: endpoint_states(h) for h in self.app.cluster_healths().values()}

    def samples(self) -> list[Sample]:
        found: list[Sample] = []
        for listener, count in self.app.in_flight.items():
            found.append(("meshgate_http_server_active_requests", {"listener": listener}, count))
        mesh = self.app.mesh
        if mesh is not None:
            ads = mesh.core.ads
            server = {"server": mesh.core.bootstrap.server.server_uri}
            found.append(("meshgate_xds_connected_state", server, 1.0 if ads.connected else 0.0))
            for type_url, ack in ads.last_acks.items():
                if ack.version:
                    labels = {"type_url": type_url, "version": ack.version[:MAX_VERSION_CHARS]}
                    found.append(("meshgate_xds_resource_version_info", labels, 1.0))
        found.append(("meshgate_config_info", {"hash": self.config_hash()}, 1.0))
        worker = {"worker": self.worker}
        for metric in self._process.collect():
            for sample in metric.samples:
                name = _PROCESS_NAMES.get(sample.name)
                if name is not None:
                    found.append((name, worker, sample.value))
        return found


def endpoint_states(health: ClusterHealth) -> dict[str, int]:
    ejected = health.detector.ejected if health.detector is not None else frozenset()
    states = {}
    for address in health.addresses:
        if address in ejected:
            states[address] = EJECTED
        elif health.active.get(address) is Health.UNHEALTHY:
            states[address] = UNHEALTHY
        else:
            states[address] = HEALTHY
    return states


def health_samples(workers: list[HealthStates]) -> Iterator[Sample]:
    """The endpoint health families, each endpoint in the worst state any worker sees."""
    merged: HealthStates = {}
    for health in workers:
        for cluster, states in health.items():
            into = merged.setdefault(cluster, {})
            for address, state in states.items():
                into[address] = max(state, into.get(address, HEALTHY))
    for cluster, states in sorted(merged.items()):
        counts = [0] * len(HEALTH_STATES)
        for address, state in sorted(states.items()):
            counts[state] += 1
            endpoint = endpoint_label(cluster, address)
            if endpoint == OTHER_ENDPOINT:
                continue  # past the cap: only in the per-cluster counts
            for index, name in enumerate(HEALTH_STATES):
                labels = {"cluster": cluster, "endpoint": endpoint, "state": name}
                yield "meshgate_upstream_endpoint_health_state", labels, float(index == state)
        for index, count in enumerate(counts):
            labels = {"cluster": cluster, "state": HEALTH_STATES[index]}
            yield "meshgate_upstream_endpoints", labels, float(count)


class StateCollector:
    """The state families of every live worker (a prometheus-client collector)."""

    def __init__(self, state: WorkerState, directory: Path | None = None) -> None:
        self.state = state
        if directory is None and os.environ.get(MULTIPROC_ENV):
            directory = Path(os.environ[MULTIPROC_ENV])
        self.directory = directory

    def publish(self) -> None:
        """Write this worker's state file (atomically: readers never see half)."""
        if self.directory is None:
            return
        published = self.state.read()
        body = json.dumps(
            {"pid": os.getpid(), "samples": published.samples, "health": published.health}
        )
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".state-")
        with os.fdopen(fd, "w") as handle:
            handle.write(body)
        os.replace(temporary, self.directory / f"{STATE_PREFIX}{os.getpid()}.json")

    def forget(self) -> None:
        """Remove this worker's file (it is exiting)."""
        if self.directory is not None:
            (self.directory / f"{STATE_PREFIX}{os.getpid()}.json").unlink(missing_ok=True)

    def collect(self) -> Iterator[Metric]:
        if self.directory is None:
            return merged_families([self.state.read()])
        self.publish()
        return merged_families(live_workers(self.directory))


def live_workers(directory: Path) -> list[Published]:
    workers = []
    now = time.time()
    for path in directory.glob(f"{STATE_PREFIX}*.json"):
        pid = int(path.stem.removeprefix(STATE_PREFIX))
        if not _alive(pid):
            path.unlink(missing_ok=True)  # a worker that died without cleaning up
            continue
        with contextlib.suppress(OSError, ValueError, KeyError):
            if now - path.stat().st_mtime > STALE_AFTER:
                continue
            data = json.loads(path.read_text())
            samples = [(name, labels, value) for name, labels, value in data["samples"]]
            workers.append(Published(samples, data["health"]))
    return workers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def merged_families(workers: list[Published]) -> Iterator[Metric]:
    """Every state family over the workers, each merged by its rule."""
    values: dict[str, dict[tuple[tuple[str, str], ...], list[float]]] = {}
    health = list(health_samples([w.health for w in workers]))
    for samples in [*(w.samples for w in workers), health]:
        for name, labels, value in samples:
            key = tuple(sorted(labels.items()))
            values.setdefault(name, {}).setdefault(key, []).append(value)
    for name, family in FAMILIES.items():
        series: Mapping[tuple[tuple[str, str], ...], list[float]] = values.get(name, {})
        if not series:
            continue
        metric = Metric(name, family.help, family.kind)
        sample_name = f"{name}_total" if family.kind == "counter" else name
        for key, found in sorted(series.items()):
            metric.add_sample(sample_name, dict(key), family.merge(found))
        yield metric


async def publish_forever(collector: StateCollector) -> None:
    """Keep this worker's state file fresh until cancelled; then remove it."""
    try:
        while True:
            collector.publish()
            await asyncio.sleep(PUBLISH_INTERVAL)
    finally:
        collector.forget()


def install(app: GatewayApp, worker: int) -> StateCollector:
    """This worker's state, exposed on ``/metrics`` from now on."""
    state = WorkerState(app, worker)
    collector = StateCollector(state)
    set_state_collector(collector)
    return collector
