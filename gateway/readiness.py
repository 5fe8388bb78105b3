"""Readiness: one honest answer for ``/ready``, whichever worker gives it.

A worker is ready once its listeners are bound and serving and its initial
configuration is resolved (every ``xds:///`` target has its resources, or
``initial_fetch_timeout`` has passed); it stops being ready when it drains.
After the first resolution the last known good resources keep it ready
through a control-plane outage, as Envoy does.

With ``--workers N`` the kernel hands an admin connection to any worker, so a
worker's own state is not the answer. Every worker writes its state to a file
in a directory the supervisor shares with them (``worker-<i>.json``, replaced
atomically), and ``/ready`` from any worker reads all N files: the gateway is
ready only when every worker is, and not at all once the supervisor has
marked the directory as draining. A worker that died (its pid is gone) or is
still starting (no file yet) counts as not ready.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

STATE_DIR_ENV = "MESHGATE_STATE_DIR"
DRAINING_MARK = "draining"


class Phase(Enum):
    STARTING = "starting: listeners not bound yet"
    RESOLVING = "starting: waiting for the initial configuration"
    SERVING = "ready"
    DRAINING = "draining: shutting down"


@dataclass(frozen=True, slots=True)
class Verdict:
    ready: bool
    reason: str
    detail: Mapping[str, Any]


class Readiness:
    """One worker's readiness, and the gateway's as all workers report it."""

    def __init__(
        self,
        state_dir: Path | None = None,
        index: int = 0,
        count: int = 1,
        targets: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.index = index
        self.count = count
        self.phase = Phase.STARTING
        self.listeners: tuple[str, ...] = ()
        self.last_reload = "none"
        self.reloads = 0  # reloads attempted, refused ones included
        # The xds:/// targets' states, read when asked (the mesh client's).
        self.targets = targets or dict

    @property
    def ready(self) -> bool:
        return self.phase is Phase.SERVING

    def set_phase(self, phase: Phase) -> None:
        self.phase = phase
        self.publish()

    def publish(self) -> None:
        """Write this worker's state for the other workers to read."""
        if self.state_dir is None:
            return
        path = self.state_dir / f"worker-{self.index}.json"
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self._own()))
        temporary.replace(path)

    def _own(self) -> dict[str, Any]:
        return {
            "worker": self.index,
            "pid": os.getpid(),
            "phase": self.phase.name,
            "reason": self.phase.value,
            "listeners": list(self.listeners),
            "targets": dict(self.targets()),
            "last_reload": self.last_reload,
            "reloads": self.reloads,
        }

    def verdict(self) -> Verdict:
        own = self._own()
        if self.state_dir is None:
            return Verdict(self.ready, self.phase.value, {"workers": [own]})
        workers: list[dict[str, Any]] = []
        reasons: list[str] = []
        if (self.state_dir / DRAINING_MARK).exists():
            reasons.append(Phase.DRAINING.value)
        for index in range(self.count):
            state = own if index == self.index else _read_state(self.state_dir, index)
            if state is None:
                state = {"worker": index, "phase": "STARTING", "reason": "not started yet"}
            workers.append(state)
            if state["phase"] != Phase.SERVING.name:
                reasons.append(f"worker {index + 1} of {self.count}: {state['reason']}")
        return Verdict(not reasons, "; ".join(reasons) or "ready", {"workers": workers})


def _read_state(state_dir: Path, index: int) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((state_dir / f"worker-{index}.json").read_text())
    except (OSError, ValueError):
        return None
    if not _alive(int(state.get("pid", 0))):
        return {**state, "phase": "STARTING", "reason": "worker exited; being restarted"}
    return state


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed worker stays a zombie until the supervisor reaps it, and
    # signal 0 still reaches a zombie: its state in /proc tells.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: signal 0 is all there is
    return stat.rpartition(")")[2].split()[0] != "Z"
