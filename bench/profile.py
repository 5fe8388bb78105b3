"""Profile one meshgate worker under load with py-spy and summarize where time goes.

py-spy samples the worker's stacks (``--native`` includes C frames: upb,
orjson, grpc's core) while wrk keeps it saturated. The collapsed stacks are
kept; the summary lists the top functions by own time and by inclusive time,
and the share of a few coarse stages of the request path.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import SATURATION_CONNECTIONS, SATURATION_THREADS, WRK_SCRIPT

# First matching stage wins, tested from the leaf up, so a json_format frame
# under the router counts as JSON, not as routing.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "protobuf -> JSON (json_format.MessageToDict, orjson.dumps)",
        ("_Printer", "MessageToDict", "MessageCodec.render", "to_dict", "dumps (orjson"),
    ),
    (
        "JSON -> protobuf (json_format.ParseDict, orjson.loads, bytes check)",
        (
            "_Parser",
            "ParseDict",
            "_ConvertScalarFieldValue",
            "parse_json",
            "merge_dict",
            "bytes_check",
            "loads (orjson",
        ),
    ),
    ("protobuf (de)serialization (upb)", ("SerializeToString", "FromString", "parse_bytes")),
    ("gRPC client (grpc.aio, cygrpc, core)", ("grpc/aio", "cygrpc", "grpc_core", "_cygrpc")),
    ("HTTP server (uvicorn, httptools)", ("uvicorn", "httptools")),
    ("gateway: app, router, metadata, filters", ("gateway/", "filters/", "mesh/")),
    ("garbage collector", ("gc_collect",)),
    ("event loop (uvloop, asyncio)", ("uvloop", "asyncio", "epoll", "loop.c")),
)


SCAFFOLDING_SHARE = 0.85
_LINE = re.compile(r":\d+\)$")
IDLE_LEAVES = ("epoll_wait", "epoll_pwait", "poll (", "select (", "sem_wait", "futex")
THREAD_MARK = "Thread._bootstrap"


def is_idle(stack: tuple[str, ...]) -> bool:
    return any(stack[-1].startswith(leaf) for leaf in IDLE_LEAVES)


def is_main_thread(stack: tuple[str, ...]) -> bool:
    """The event loop's thread; other Python threads here are grpc's completion-queue poller."""
    return not any(THREAD_MARK in frame for frame in stack)


@dataclass(frozen=True)
class Stacks:
    counts: Counter[tuple[str, ...]]

    @classmethod
    def parse(cls, text: str) -> Stacks:
        counts: Counter[tuple[str, ...]] = Counter()
        for line in text.splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                counts[tuple(stack.split(";"))] += int(count)
        return cls(counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def only(self, keep: Callable[[tuple[str, ...]], bool]) -> Stacks:
        return Stacks(Counter({s: n for s, n in self.counts.items() if keep(s)}))

    def own(self) -> Counter[str]:
        own: Counter[str] = Counter()
        for stack, count in self.counts.items():
            own[stack[-1]] += count
        return own

    def inclusive(self) -> Counter[str]:
        """By function: the line numbers of a frame are dropped, so a function counts once."""
        inclusive: Counter[str] = Counter()
        for stack, count in self.counts.items():
            for function in {_LINE.sub(")", frame) for frame in stack}:
                inclusive[function] += count
        return inclusive

    def stages(self) -> Counter[str]:
        stages: Counter[str] = Counter()
        for stack, count in self.counts.items():
            stages[_stage(stack)] += count
        return stages


def _stage(stack: tuple[str, ...]) -> str:
    """The innermost named stage; the event loop only when no other stage is on the stack.

    A uvloop write under uvicorn's send is the HTTP server's, not the loop's.
    """
    *specific, (loop_stage, loop_needles) = STAGES
    for frame in reversed(stack):
        for stage, needles in specific:
            if any(needle in frame for needle in needles):
                return stage
    if any(needle in frame for frame in stack for needle in loop_needles):
        return loop_stage
    return "other (interpreter, unattributed C)"


def summarize(all_stacks: Stacks, top: int = 20) -> str:
    main = all_stacks.only(is_main_thread)
    stacks = main.only(lambda stack: not is_idle(stack))
    other = all_stacks.only(lambda stack: not is_main_thread(stack))
    other_busy = other.only(lambda stack: not is_idle(stack))
    total = stacks.total or 1

    def lines(counter: Counter[str]) -> list[str]:
        return [
            f"| {100 * n / total:5.1f}% | `{frame[:140]}` |"
            for frame, n in counter.most_common(top)
        ]

    def share(part: int, whole: int) -> str:
        return f"{100 * part / whole:.0f}%" if whole else "—"

    out = [
        f"{all_stacks.total} samples over all threads. The event-loop thread was busy in "
        f"{share(stacks.total, main.total)} of its samples and idle in epoll for the rest; "
        f"grpc's poller thread(s) were busy in {share(other_busy.total, other.total)} of "
        f"theirs ({other_busy.total} samples, not counted below).",
        "",
        "Shares below are of the event-loop thread's busy samples.",
        "",
        "### By stage (each sample counted once, innermost stage wins)",
        "",
        "| share | stage |",
        "|---|---|",
    ]
    out += [f"| {100 * n / total:5.1f}% | {stage} |" for stage, n in stacks.stages().most_common()]
    out += [
        "",
        f"### Top {top} by own time",
        "",
        "| share | frame |",
        "|---|---|",
        *lines(stacks.own()),
    ]
    # Frames on (nearly) every stack are the server's scaffolding: leave them out.
    inclusive = Counter(
        {frame: n for frame, n in stacks.inclusive().items() if n < SCAFFOLDING_SHARE * total}
    )
    out += [
        "",
        f"### Top {top} by inclusive time (frames on over "
        f"{SCAFFOLDING_SHARE:.0%} of stacks left out)",
        "",
        "| share | frame |",
        "|---|---|",
        *lines(inclusive),
    ]
    return "\n".join(out)


def py_spy_binary() -> str:
    return str(Path(sys.executable).parent / "py-spy")


def profile_worker(pid: int, url: str, body_file: Path, seconds: float, raw_out: Path) -> Stacks:
    """Saturate ``url`` with wrk while py-spy samples ``pid``; returns the stacks."""
    script = raw_out.with_suffix(".lua")
    script.write_text(WRK_SCRIPT.format(body=body_file, extra=""))
    load = subprocess.Popen(
        [
            "wrk",
            f"-t{SATURATION_THREADS}",
            f"-c{SATURATION_CONNECTIONS}",
            f"-d{round(seconds) + 2}s",
            "-s",
            str(script),
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        subprocess.run(
            [
                py_spy_binary(),
                "record",
                "--native",
                "--pid",
                str(pid),
                "--duration",
                f"{seconds:g}",
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(raw_out),
            ],
            check=True,
            capture_output=True,
            timeout=seconds + 60,
        )
    finally:
        load.wait(timeout=seconds + 30)
        script.unlink()
    return Stacks.parse(raw_out.read_text())
