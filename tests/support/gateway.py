"""Run ``meshgate run`` as a real process for integration tests."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.net import free_port
from tests.support.processes import Process, python_module


@dataclass
class RunningGateway:
    process: Process
    url: str
    admin_url: str
    config_path: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 10.0)
        return httpx.Client(base_url=self.url, **kwargs)

    def logged(self, text: str, timeout: float = 5.0) -> bool:
        """Whether the gateway's log says ``text`` (within ``timeout``): error
        bodies hide internal reasons, the log keeps them."""
        deadline = time.monotonic() + timeout
        while text not in self.process.output:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def wait_ready(admin_url: str, process: Process, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RuntimeError(f"meshgate exited with {process.proc.returncode}:\n{process.output}")
        try:
            if httpx.get(f"{admin_url}/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"meshgate not ready after {timeout}s:\n{process.output}")


@contextmanager
def run_gateway(
    config: dict[str, Any],
    tmp_path: Path,
    workers: int = 1,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[RunningGateway]:
    """Start meshgate on ``config``; listener and admin ports are filled in if absent;
    ``args``: more options of ``meshgate run``."""
    config = dict(config)
    config.setdefault("admin", {"address": f"127.0.0.1:{free_port()}"})
    listeners = config.setdefault("listeners", [])
    for listener in listeners:
        listener.setdefault("address", f"127.0.0.1:{free_port()}")
    path = tmp_path / "meshgate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    process = Process(
        python_module("gateway", "run", "-c", str(path), "--workers", str(workers), *args),
        env=env,
    )
    admin_url = f"http://{config['admin']['address']}"
    try:
        wait_ready(admin_url, process)
        url = f"http://{listeners[0]['address']}" if listeners else ""
        yield RunningGateway(process, url, admin_url, path)
    finally:
        process.stop()
