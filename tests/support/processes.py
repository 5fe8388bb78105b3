"""Start real processes for integration tests and always stop them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class Process:
    """A child process whose output is collected for failure messages."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.args = list(args)
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._marker = ""
        self.proc = subprocess.Popen(
            self.args,
            cwd=cwd or REPO,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if self._marker and self._marker in line:
                self._ready.set()

    def wait_for_line(self, marker: str, timeout: float) -> None:
        self._marker = marker
        if any(marker in line for line in self.lines):
            return
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                time.sleep(0.1)
                raise RuntimeError(
                    f"{self.args[:3]} exited with {self.proc.returncode}:\n{self.output}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no {marker!r} from {self.args[:3]} in {timeout}s:\n{self.output}"
                )

    @property
    def output(self) -> str:
        return "\n".join(self.lines[-80:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def running(
    args: Sequence[str], ready: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> Iterator[Process]:
    process = Process(args, env=env)
    try:
        process.wait_for_line(ready, timeout)
        yield process
    finally:
        process.stop()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@contextmanager
def echo_backend(
    port: int, name: str = "backend", *args: str, control: Path | None = None
) -> Iterator[Process]:
    """The echo backend; ``args`` are more of its options (TLS files, connection age);
    ``control`` is a file whose content steers it (see backend.py)."""
    extra = [*args, *(["--control", str(control)] if control is not None else [])]
    with running(
        python_module("tests.support.backend", "--port", str(port), "--name", name, *extra),
        "READY",
    ) as process:
        yield process
