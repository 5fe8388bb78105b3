"""Start-up, readiness, reloads and drain of a real ``meshgate run`` process.

Every test starts the gateway (and an echo backend, and where needed the
tests' xDS server) on loopback, drives it from outside with signals and file
rewrites, and checks what clients see. Load loops are bounded in requests
and time and stop by themselves.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import xds_builders as b
from tests.support.net import free_port
from tests.support.processes import Process, echo_backend, python_module
from tests.support.xds_server import LISTENER, XdsServer, serve_service

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"
STREAM = "/meshgate.test.v1.EchoService/ServerStream"
# Bounds of the reload test: rewrites, and the time the gateway gets to apply each.
REWRITES = 20
APPLY_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    port = free_port()
    with echo_backend(port, name="lifecycle"):
        yield port


def echo_route(cluster: str = "echo") -> dict[str, Any]:
    return {
        "match": {"prefix": "/"},
        "transcode": {"auto_mapping": True},
        "cluster": cluster,
        "timeout": "10s",
    }


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@dataclass
class Gateway:
    process: Process
    config_path: Path
    admin_url: str

    def ready(self, verbose: bool = False) -> httpx.Response:
        return httpx.get(f"{self.admin_url}/ready" + ("?verbose" if verbose else ""), timeout=5)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.proc.poll() is None, self.process.output
            try:
                if self.ready().status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"not ready in {timeout}s:\n{self.process.output}")

    def workers(self) -> list[dict[str, Any]]:
        workers: list[dict[str, Any]] = self.ready(verbose=True).json()["workers"]
        return workers


def start_gateway(config: dict[str, Any], tmp_path: Path, workers: int = 1) -> Gateway:
    path = tmp_path / "meshgate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    process = Process(
        python_module("gateway", "run", "-c", str(path), "--workers", str(workers)), cwd=tmp_path
    )
    return Gateway(process, path, f"http://{config['admin']['address']}")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not within {timeout}s")


def dead_or_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def port_closed(port: int) -> bool:
    return not port_accepts(port)


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# -- start-up: readiness and SIGHUP ------------------------------------------------


@pytest.fixture
def held_xds(backend: int) -> Iterator[tuple[XdsServer, b.Service]]:
    service = b.Service("shop.default.svc.cluster.local", 50051, {"v1": [("127.0.0.1", backend)]})
    with XdsServer() as server:
        serve_service(server, service, b.route(name="all", cluster=service.cluster("v1")))
        server.hold(LISTENER)  # the control plane is slow to answer
        yield server, service


def test_not_ready_until_xds_resolves_and_sighup_during_start_up_is_kept(
    held_xds: tuple[XdsServer, b.Service], echo_set: Path, tmp_path: Path
) -> None:
    xds, service = held_xds
    bootstrap = tmp_path / "bootstrap.json"
    bootstrap.write_text(json.dumps(xds.bootstrap()))
    listen = free_port()
    admin_port = free_port()
    config: dict[str, Any] = {
        "admin": {"address": f"127.0.0.1:{admin_port}"},
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {
                "name": "public",
                "address": f"127.0.0.1:{listen}",
                "routes": [echo_route(f"xds:///{service.target}")],
            }
        ],
        "mesh": {"xds": {"bootstrap": str(bootstrap), "initial_fetch_timeout": "60s"}},
    }
    gateway = start_gateway(config, tmp_path)
    try:
        wait_until(partial(port_accepts, admin_port), 30, "admin port")
        # Bound and answering, but the initial configuration is not there: 503, and why.
        answer = gateway.ready()
        assert answer.status_code == 503
        assert "waiting for the initial configuration" in answer.text
        verbose = gateway.ready(verbose=True).json()
        assert verbose["workers"][0]["targets"] == {
            service.target: "waiting for its first resources"
        }
        # A reload asked for now must neither kill the process nor be lost.
        for _ in range(3):
            os.kill(gateway.process.proc.pid, signal.SIGHUP)
            time.sleep(0.1)
        assert gateway.process.proc.poll() is None
        assert gateway.ready().status_code == 503
        xds.release(LISTENER)
        gateway.wait_ready(timeout=20)
        workers = gateway.workers()
        assert workers[0]["targets"] == {service.target: "resolved"}
        wait_until(lambda: gateway.workers()[0]["reloads"] == 1, 10, "the remembered reload")
        assert gateway.workers()[0]["last_reload"].startswith("SIGHUP: ok")
        with httpx.Client(base_url=f"http://127.0.0.1:{listen}", timeout=5) as client:
            assert client.post(ECHO, json={}).json()["servedBy"] == "lifecycle"
            # Last known good: the control plane goes away, the gateway stays ready.
            xds.stop()
            time.sleep(1.0)
            assert gateway.ready().status_code == 200
            assert gateway.workers()[0]["targets"] == {service.target: "resolved"}
            assert client.post(ECHO, json={}).status_code == 200
    finally:
        gateway.process.stop()


def test_initial_fetch_timeout_makes_it_ready_and_the_target_resolves_later(
    held_xds: tuple[XdsServer, b.Service], echo_set: Path, tmp_path: Path
) -> None:
    xds, service = held_xds
    bootstrap = tmp_path / "bootstrap.json"
    bootstrap.write_text(json.dumps(xds.bootstrap()))
    listen = free_port()
    config: dict[str, Any] = {
        "admin": {"address": f"127.0.0.1:{free_port()}"},
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {
                "name": "public",
                "address": f"127.0.0.1:{listen}",
                "routes": [echo_route(f"xds:///{service.target}")],
            }
        ],
        "mesh": {"xds": {"bootstrap": str(bootstrap), "initial_fetch_timeout": "1s"}},
    }
    gateway = start_gateway(config, tmp_path)
    try:
        gateway.wait_ready()
        assert gateway.workers()[0]["targets"] == {
            service.target: "initial fetch timed out; still resolving"
        }
        with httpx.Client(base_url=f"http://127.0.0.1:{listen}", timeout=5) as client:
            assert client.post(ECHO, json={}).status_code == 503
            xds.release(LISTENER)
            wait_until(
                lambda: gateway.workers()[0]["targets"] == {service.target: "resolved"},
                15,
                "resolution after the timeout",
            )
            assert client.post(ECHO, json={}).status_code == 200
    finally:
        gateway.process.stop()


def test_sighup_before_the_listeners_are_bound_does_not_kill(
    backend: int, echo_set: Path, tmp_path: Path
) -> None:
    config = {
        "admin": {"address": f"127.0.0.1:{free_port()}"},
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {"name": "public", "address": f"127.0.0.1:{free_port()}", "routes": [echo_route()]}
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": f"127.0.0.1:{backend}"}]}],
    }
    for workers in (1, 2):
        gateway = start_gateway(config, tmp_path, workers=workers)
        try:
            # Python itself cannot ignore a signal before it runs the gateway's
            # first lines; from then on (SIGHUP in the ignored mask), SIGHUP to
            # the whole process group, over and over until ready.
            pid = gateway.process.proc.pid
            wait_until(partial(sighup_ignored, pid), 30, "the gateway's first lines")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                os.killpg(gateway.process.proc.pid, signal.SIGHUP)
                if gateway.process.proc.poll() is not None:
                    break
                try:
                    if gateway.ready().status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            assert gateway.process.proc.poll() is None, gateway.process.output
            gateway.wait_ready()
        finally:
            gateway.process.stop()


def sighup_ignored(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(mask.split()[1], 16) & (1 << (signal.SIGHUP - 1)))


# -- reloads under load -------------------------------------------------------------


@dataclass
class Load:
    """Requests sent in a loop by a few threads until stopped (bounded by ``limit``)."""

    url: Callable[[], str]
    limit: int = 20_000
    sent: int = 0
    answers: Counter[int] = field(default_factory=Counter)
    transport_errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, threads: int = 2) -> ThreadPoolExecutor:
        pool = ThreadPoolExecutor(threads)
        for _ in range(threads):
            pool.submit(self._loop)
        return pool

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set() and self.sent < self.limit:
                self.sent += 1
                try:
                    answer = client.post(self.url() + ECHO, json={"message": "x"})
                except httpx.TransportError as exc:
                    self.transport_errors.append(repr(exc))
                    time.sleep(0.02)  # a closed port refuses at once: do not spin
                else:
                    self.answers[answer.status_code] += 1


def reload_config(
    admin: str, backend: int, ports: dict[str, int], echo_set: Path, **extra: Any
) -> dict[str, Any]:
    return {
        "admin": {"address": admin},
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {"name": name, "address": f"127.0.0.1:{port}", "routes": [echo_route()]}
            for name, port in ports.items()
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": f"127.0.0.1:{backend}"}]}],
        "drain_timeout": "5s",
        "reload": {"debounce": "100ms"},
        **extra,
    }


def test_listener_set_changes_under_load_with_invalid_rewrites(
    backend: int, echo_set: Path, tmp_path: Path
) -> None:
    admin = f"127.0.0.1:{free_port()}"
    stay, mover_a, mover_b, extra = (free_port() for _ in range(4))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_port = busy.getsockname()[1]  # held by the test: a listener there cannot bind
    # Valid layouts alternate: the mover moves, "extra" comes and goes.
    layouts = [
        {"stay": stay, "mover": mover_b, "extra": extra},
        {"stay": stay, "mover": mover_a},
    ]
    invalid = [
        "listeners: [\n  - name: broken\n    address: 127.0.0.1:",  # cut mid-file: bad YAML
        "",  # empty: no listeners
        yaml.safe_dump({"admin": {"address": admin}, "listeners": []}),  # valid, but no listeners
        yaml.safe_dump(
            reload_config(admin, backend, {"stay": stay, "mover": mover_a}, echo_set)
        ).replace("cluster: echo", "cluster: nowhere"),
        yaml.safe_dump(reload_config(admin, backend, {"stay": stay, "mover": busy_port}, echo_set)),
    ]
    initial = reload_config(admin, backend, {"stay": stay, "mover": mover_a}, echo_set)
    gateway = start_gateway(initial, tmp_path, workers=2)
    current = {"ports": dict(initial_ports := {"stay": stay, "mover": mover_a})}
    del initial_ports
    steady = Load(lambda: f"http://127.0.0.1:{stay}")
    moving = Load(lambda: f"http://127.0.0.1:{current['ports']['mover']}")
    readiness_answers: Counter[int] = Counter()
    polling = threading.Event()

    def poll_readiness() -> None:
        # Bounded by the test: it stops when the rewrites are done.
        while not polling.is_set():
            readiness_answers[gateway.ready().status_code] += 1
            time.sleep(0.05)

    pools: list[ThreadPoolExecutor] = []
    poller = threading.Thread(target=poll_readiness, daemon=True)
    try:
        gateway.wait_ready()
        pools += [steady.run(), moving.run(threads=1)]
        poller.start()
        for rewrite in range(REWRITES):
            good = rewrite % 2 == 0
            if good:
                ports = layouts[(rewrite // 2) % 2]
                text = yaml.safe_dump(reload_config(admin, backend, ports, echo_set))
            else:
                text = invalid[(rewrite // 2) % len(invalid)]
            text += f"\n# rewrite {rewrite}\n"
            if good:
                write_atomically(gateway.config_path, text)
            else:
                gateway.config_path.write_text(text)  # in place: the debounce must cope

            def applied(count: int = rewrite + 1) -> bool:
                return all(w.get("reloads", 0) >= count for w in gateway.workers())

            wait_until(applied, APPLY_TIMEOUT, f"rewrite {rewrite} in every worker")
            outcomes = [w["last_reload"] for w in gateway.workers()]
            if good:
                assert all(o.startswith("file changed: ok") for o in outcomes), outcomes
                current["ports"] = ports
                for port in ports.values():
                    with httpx.Client(timeout=5) as client:
                        answer = client.post(f"http://127.0.0.1:{port}{ECHO}", json={})
                        assert answer.status_code == 200, (port, answer.text)
                gone = {mover_a, mover_b, extra} - set(ports.values())
                for port in gone:
                    wait_until(partial(port_closed, port), 10, f"{port} closed")
            else:
                assert all(o.startswith("file changed: refused") for o in outcomes), outcomes
            assert gateway.ready().status_code == 200
    finally:
        polling.set()
        steady.stop.set()
        moving.stop.set()
        for pool in pools:
            pool.shutdown(wait=True)
        if poller.is_alive():
            # Its last answer must come in before the gateway is told to stop.
            poller.join(timeout=10)
        busy.close()
        gateway.process.stop()
    print(
        f"reload test: {REWRITES} rewrites; steady listener {steady.sent} requests, "
        f"{dict(steady.answers)}, {len(steady.transport_errors)} transport errors; "
        f"moving listener {moving.sent} requests {dict(moving.answers)}, "
        f"{len(moving.transport_errors)} refused after moves; /ready {dict(readiness_answers)}"
    )
    assert steady.sent > 0 and steady.answers == Counter({200: steady.answers[200]})
    assert not steady.transport_errors, steady.transport_errors[:3]
    # On the listener that moves, requests may be refused at its old port once it
    # closed; every answer is a 200.
    assert moving.answers == Counter({200: moving.answers[200]}), moving.answers
    assert readiness_answers == Counter({200: readiness_answers[200]})


def configmap_version(directory: Path, text: str, stamp: str) -> Path:
    """Write a ConfigMap volume's way: a new ..<stamp>/ dir, then ..data swapped to it."""
    version = directory / f"..{stamp}"
    version.mkdir()
    (version / "meshgate.yaml").write_text(text)
    link = directory / "..data_tmp"
    link.symlink_to(version.name)
    os.replace(link, directory / "..data")
    config = directory / "meshgate.yaml"
    if not config.is_symlink():
        config.symlink_to("..data/meshgate.yaml")
    return config


def test_configmap_symlink_swap_is_followed(backend: int, echo_set: Path, tmp_path: Path) -> None:
    admin = f"127.0.0.1:{free_port()}"
    first, second = free_port(), free_port()
    volume = tmp_path / "volume"
    volume.mkdir()
    text = yaml.safe_dump(reload_config(admin, backend, {"public": first}, echo_set))
    path = configmap_version(volume, text, "2026_12_02_v1")
    process = Process(python_module("gateway", "run", "-c", str(path)), cwd=tmp_path)
    gateway = Gateway(process, path, f"http://{admin}")
    try:
        gateway.wait_ready()
        text = yaml.safe_dump(reload_config(admin, backend, {"public": second}, echo_set))
        configmap_version(volume, text, "2026_12_02_v2")
        wait_until(lambda: gateway.workers()[0]["reloads"] >= 1, APPLY_TIMEOUT, "the swap")
        with httpx.Client(timeout=5) as client:
            assert client.post(f"http://127.0.0.1:{second}{ECHO}", json={}).status_code == 200
        wait_until(partial(port_closed, first), 10, "the old port closed")
        # And the next swap too: the watch follows the link into its new directory.
        text = yaml.safe_dump(reload_config(admin, backend, {"public": first}, echo_set))
        configmap_version(volume, text, "2026_12_02_v3")
        wait_until(lambda: gateway.workers()[0]["reloads"] >= 2, APPLY_TIMEOUT, "the 2nd swap")
        with httpx.Client(timeout=5) as client:
            assert client.post(f"http://127.0.0.1:{first}{ECHO}", json={}).status_code == 200
    finally:
        process.stop()


def test_reload_settings_apply_at_the_reload_that_changes_them(
    backend: int, echo_set: Path, tmp_path: Path
) -> None:
    admin = f"127.0.0.1:{free_port()}"
    port = free_port()
    unwatched = reload_config(admin, backend, {"public": port}, echo_set)
    unwatched["reload"] = {"watch": False}
    gateway = start_gateway(unwatched, tmp_path)

    def reloads() -> int:
        return int(gateway.workers()[0]["reloads"])

    try:
        gateway.wait_ready()
        # Not watched: only SIGHUP reloads, and this one turns the watch on.
        watched = reload_config(admin, backend, {"public": port}, echo_set)
        write_atomically(gateway.config_path, yaml.safe_dump(watched))
        gateway.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: reloads() == 1, APPLY_TIMEOUT, "the SIGHUP reload")
        # Now a change to the file is enough, and it turns the watch off again.
        write_atomically(gateway.config_path, yaml.safe_dump(unwatched) + "# off\n")
        wait_until(lambda: reloads() == 2, APPLY_TIMEOUT, "the watched change")
        assert gateway.workers()[0]["last_reload"].startswith("file changed: ok")
        write_atomically(gateway.config_path, yaml.safe_dump(unwatched) + "# unseen\n")
        time.sleep(2.0)  # longer than the debounce and the watch's step, many times
        assert gateway.process.proc.poll() is None, gateway.process.output
        assert reloads() == 2
    finally:
        gateway.process.stop()


def test_a_dead_worker_makes_every_worker_say_not_ready_until_replaced(
    backend: int, echo_set: Path, tmp_path: Path
) -> None:
    admin = f"127.0.0.1:{free_port()}"
    config = reload_config(admin, backend, {"public": free_port()}, echo_set)
    gateway = start_gateway(config, tmp_path, workers=2)
    try:
        gateway.wait_ready()
        pids = {w["pid"] for w in gateway.workers()}
        assert len(pids) == 2
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        # kill() only queues the signal: on a busy machine the victim may still
        # answer (truthfully, 200) for a moment. Ask once it is dead or a zombie.
        wait_until(partial(dead_or_zombie, victim), 10, f"worker {victim} dead")
        # Asked on fresh connections, so either worker answers: both say no.
        answers = [gateway.ready() for _ in range(6)]
        assert {a.status_code for a in answers} == {503}
        assert all("worker" in a.text for a in answers), [a.text for a in answers]
        gateway.wait_ready(timeout=30)
        assert victim not in {w["pid"] for w in gateway.workers()}
    finally:
        gateway.process.stop()


# -- drain ------------------------------------------------------------------------------


def test_sigterm_lets_accepted_requests_and_streams_finish(
    backend: int, echo_set: Path, tmp_path: Path
) -> None:
    listen = free_port()
    config = {
        "admin": {"address": f"127.0.0.1:{free_port()}"},
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {"name": "public", "address": f"127.0.0.1:{listen}", "routes": [echo_route()]}
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": f"127.0.0.1:{backend}"}]}],
        "drain_timeout": "15s",
    }
    gateway = start_gateway(config, tmp_path, workers=2)
    url = f"http://127.0.0.1:{listen}"
    slow = 20

    def unary(i: int) -> int:
        with httpx.Client(timeout=15) as client:
            body = {"message": str(i), "delaySeconds": 6.0}
            return client.post(url + ECHO, json=body).status_code

    def stream() -> tuple[int, int]:
        with httpx.Client(timeout=15) as client:
            body = {"message": "s", "tags": ["a", "b", "c", "d"], "delaySeconds": 1.5}
            answer = client.post(url + STREAM, json=body)
            return answer.status_code, len(answer.json())

    try:
        gateway.wait_ready()
        with ThreadPoolExecutor(slow + 1) as pool:
            unaries = [pool.submit(unary, i) for i in range(slow)]
            streaming = pool.submit(stream)
            # Every request accepted and in flight at the backend (summed over the workers).
            in_flight: list[int] = []

            def all_in_flight() -> bool:
                dump = httpx.get(f"{gateway.admin_url}/clusters", timeout=5).json()
                in_flight.append(dump["static"]["echo"]["in_flight"])
                return in_flight[-1] == slow + 1

            try:
                wait_until(all_in_flight, 10, "every request in flight")
            except TimeoutError:
                raise AssertionError(f"in flight seen: {in_flight}") from None
            started = time.monotonic()
            os.kill(gateway.process.proc.pid, signal.SIGTERM)
            # While draining: /ready says so, and the listener takes no new connection.
            wait_until(lambda: gateway.ready().status_code == 503, 5, "/ready 503")
            assert "draining" in gateway.ready().text
            wait_until(lambda: not port_accepts(listen), 5, "listener closed")
            statuses = Counter(f.result() for f in unaries)
            stream_status, messages = streaming.result()
        assert statuses == Counter({200: slow}), statuses
        assert (stream_status, messages) == (200, 4)
        gateway.process.proc.wait(timeout=15)
        assert gateway.process.proc.returncode == 0, gateway.process.output
        elapsed = time.monotonic() - started
        print(
            f"drain test: {slow} unary requests and 1 stream in flight at SIGTERM: "
            f"{dict(statuses)}, stream {stream_status} with {messages} messages; "
            f"exited {elapsed:.1f}s after the signal (drain_timeout 15s)"
        )
        # Well within the drain timeout: the gateway left as soon as the work was done.
        assert elapsed < 12
    finally:
        gateway.process.stop()
