"""Readiness across workers, through the state directory they share (no processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from gateway.readiness import DRAINING_MARK, Phase, Readiness


def workers(state_dir: Path, count: int = 2) -> list[Readiness]:
    return [Readiness(state_dir, index, count) for index in range(count)]


def test_one_worker_is_ready_only_while_serving() -> None:
    readiness = Readiness()
    for phase in Phase:
        readiness.set_phase(phase)
        verdict = readiness.verdict()
        assert verdict.ready is (phase is Phase.SERVING)
        assert verdict.reason == phase.value


def test_every_worker_gives_the_same_answer(tmp_path: Path) -> None:
    first, second = workers(tmp_path)
    first.set_phase(Phase.SERVING)
    second.set_phase(Phase.RESOLVING)
    for asked in (first, second):
        verdict = asked.verdict()
        assert not verdict.ready
        assert verdict.reason == "worker 2 of 2: starting: waiting for the initial configuration"
    second.set_phase(Phase.SERVING)
    assert first.verdict().ready and second.verdict().ready


def test_a_worker_that_has_not_written_yet_is_not_ready(tmp_path: Path) -> None:
    first, _ = workers(tmp_path)
    first.set_phase(Phase.SERVING)
    verdict = first.verdict()
    assert not verdict.ready
    assert "worker 2 of 2: not started yet" in verdict.reason


def test_a_dead_worker_is_not_ready(tmp_path: Path) -> None:
    first, second = workers(tmp_path)
    first.set_phase(Phase.SERVING)
    second.set_phase(Phase.SERVING)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    state = json.loads((tmp_path / "worker-1.json").read_text())
    (tmp_path / "worker-1.json").write_text(json.dumps({**state, "pid": int(dead.stdout)}))
    verdict = first.verdict()
    assert not verdict.ready
    assert "worker exited" in verdict.reason


def test_the_supervisors_draining_mark_wins(tmp_path: Path) -> None:
    first, second = workers(tmp_path)
    first.set_phase(Phase.SERVING)
    second.set_phase(Phase.SERVING)
    (tmp_path / DRAINING_MARK).touch()
    verdict = second.verdict()
    assert not verdict.ready
    assert verdict.reason.startswith("draining")


def test_verbose_detail_carries_targets_and_reloads(tmp_path: Path) -> None:
    readiness = Readiness(tmp_path, 0, 1, targets=lambda: {"shop:50051": "resolved"})
    readiness.reloads = 3
    readiness.set_phase(Phase.SERVING)
    (state,) = readiness.verdict().detail["workers"]
    assert state["targets"] == {"shop:50051": "resolved"}
    assert state["reloads"] == 3


def test_a_killed_worker_not_yet_reaped_counts_as_dead(tmp_path: Path) -> None:
    # The supervisor reaps a dead worker within its poll interval; until then
    # the pid is a zombie, which signal 0 still reaches.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "Z" not in _state(child.pid):
            time.sleep(0.01)
        first, second = workers(tmp_path)
        first.set_phase(Phase.SERVING)
        second.set_phase(Phase.SERVING)
        state = json.loads((tmp_path / "worker-1.json").read_text())
        (tmp_path / "worker-1.json").write_text(json.dumps({**state, "pid": child.pid}))
        assert not first.verdict().ready
    finally:
        child.wait()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
