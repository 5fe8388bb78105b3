"""Active health checks once per gateway, not once per worker.

Workers elect one of themselves: whoever holds an exclusive ``flock`` on a
file of the directory the supervisor shares with them (``MESHGATE_SHARED_DIR``)
runs the probes and writes every endpoint's state to a JSON file there; the
others read that file when it changes. The kernel drops the lock when its
holder dies, and the next worker to try takes over, so probing survives a
worker restart without any coordination protocol. N workers send the probe
traffic of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

SHARED_DIR_ENV = "MESHGATE_SHARED_DIR"

# cluster key -> endpoint address -> health state value ("healthy", "unhealthy", ...)
States = dict[str, dict[str, str]]


class HealthShare:
    def __init__(self, directory: Path) -> None:
        self._lock_path = directory / "health.lock"
        self._state_path = directory / "health.json"
        self._fd: int | None = None
        self._seen: int | None = None

    @classmethod
    def from_environment(cls) -> HealthShare | None:
        directory = os.environ.get(SHARED_DIR_ENV)
        return cls(Path(directory)) if directory else None

    def lead(self) -> bool:
        """True while this worker is the one that probes (taking the role if free)."""
        if self._fd is not None:
            return True
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def publish(self, states: States) -> None:
        temporary = self._state_path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(states, sort_keys=True))
        os.replace(temporary, self._state_path)

    def read(self) -> States | None:
        """The leader's states, when they changed since the last read."""
        try:
            stamp = self._state_path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if stamp == self._seen:
            return None
        try:
            loaded: Any = json.loads(self._state_path.read_text())
        except (OSError, ValueError):
            return None  # replaced under us: the next read gets it
        self._seen = stamp
        return loaded if isinstance(loaded, dict) else None

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None
