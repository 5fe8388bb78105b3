"""CPU time and peak memory of a process tree, read from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; everything after its ')' splits cleanly.
    return text[text.rindex(")") + 2 :].split()


SPAWNED_WORKER = "multiprocessing.spawn"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def process_tree(root: int) -> list[int]:
    """The root and every descendant alive now."""
    tree, frontier = [root], [root]
    while frontier:
        kids = children_of(frontier.pop())
        tree.extend(kids)
        frontier.extend(kids)
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system time of the processes (their own, not their reaped children's)."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass(frozen=True)
class TreeUsage:
    """Measured over a process tree: the root's workers are its descendants."""

    root: int

    def pids(self) -> list[int]:
        return process_tree(self.root)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def worker_peak_rss_mib(self) -> list[float]:
        """VmHWM of each serving process: the spawned workers if any, else the root itself."""
        workers = [pid for pid in self.pids() if SPAWNED_WORKER in _cmdline(pid)]
        return [peak_rss_mib(pid) for pid in workers or [self.root]]
