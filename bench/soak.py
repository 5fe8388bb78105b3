"""Soak (``bench/run.sh --soak``): meshgate w1, small payload, a fixed rate for minutes.

h2load paces the load in a child process while this one samples the worker's
VmRSS every SAMPLE_SECONDS. Verdict "no growth" when the last minute's mean RSS
is within GROWTH_MIB of the second minute's (the first minute holds the warm-up).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.contestants import Running
from bench.loadgen import JSON_HEADERS

SOAK_SECONDS = 300.0
SOAK_CLIENTS = 10
SOAK_RPS_PER_CLIENT = 50.0  # 500 req/s in total: moderate for one worker (~8k rps saturated)
SAMPLE_SECONDS = 10.0
GROWTH_MIB = 2.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass(frozen=True)
class SoakResult:
    seconds: float
    target_rps: float
    samples: list[tuple[float, float]]  # (seconds since start, RSS MiB)
    succeeded: int
    failed: int
    p99_ms: float

    def mean_between(self, start: float, end: float) -> float:
        values = [rss for t, rss in self.samples if start <= t < end]
        return sum(values) / len(values) if values else float("nan")

    @property
    def slope_mib_per_min(self) -> float:
        """Least-squares slope of RSS over time, after the first minute."""
        points = [(t, rss) for t, rss in self.samples if t >= 60] or self.samples
        n = len(points)
        mean_t = sum(t for t, _ in points) / n
        mean_r = sum(r for _, r in points) / n
        var = sum((t - mean_t) ** 2 for t, _ in points)
        cov = sum((t - mean_t) * (r - mean_r) for t, r in points)
        return cov / var * 60 if var else 0.0

    @property
    def second_minute(self) -> float:
        return self.mean_between(60, 120)

    @property
    def last_minute(self) -> float:
        return self.mean_between(self.seconds - 60, self.seconds + 1)

    @property
    def no_growth(self) -> bool:
        return abs(self.last_minute - self.second_minute) <= GROWTH_MIB


def soak(running: Running, body: Path, seconds: float = SOAK_SECONDS) -> SoakResult:
    assert running.pid is not None
    with tempfile.TemporaryDirectory(prefix="meshgate-soak-") as workdir:
        log_file = Path(workdir) / "requests.log"
        args = [
            "h2load",
            "--h1",
            "-c",
            str(SOAK_CLIENTS),
            "-t",
            "1",
            "-m",
            "1",
            "-D",
            f"{round(seconds * 1000)}ms",
            "--rps",
            f"{SOAK_RPS_PER_CLIENT:g}",
            "-d",
            str(body),
            "-T",
            "10",
            "--log-file",
            str(log_file),
        ]
        for header in JSON_HEADERS:
            args += ["-H", header]
        started = time.monotonic()
        samples = [(0.0, rss_mib(running.pid))]
        with subprocess.Popen(
            [*args, running.url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as load:
            try:
                next_sample = SAMPLE_SECONDS
                while load.poll() is None and time.monotonic() - started < seconds + 30:
                    now = time.monotonic() - started
                    if now >= next_sample and now <= seconds:
                        samples.append((round(now, 1), rss_mib(running.pid)))
                        next_sample += SAMPLE_SECONDS
                    time.sleep(0.2)
            finally:
                if load.poll() is None:
                    load.kill()
                load.wait(timeout=10)
        millis: list[float] = []
        failed = 0
        for line in log_file.read_text().splitlines():
            _start, status, latency_us = line.split("\t")[:3]
            if status == "200":
                millis.append(int(latency_us) / 1000)
            else:
                failed += 1
    millis.sort()
    p99 = millis[min(len(millis) - 1, round(0.99 * len(millis)) - 1)] if millis else float("nan")
    return SoakResult(
        seconds, SOAK_CLIENTS * SOAK_RPS_PER_CLIENT, samples, len(millis), failed, p99
    )


def render_soak(result: SoakResult, header: list[str]) -> str:
    rss = [value for _, value in result.samples]
    verdict = "no growth" if result.no_growth else "**growth**"
    rows = "\n".join(f"| {t:.0f} | {value:.1f} |" for t, value in result.samples)
    return "\n".join(
        [
            *header,
            "",
            f"meshgate w1 (uvicorn), Go backend, small payload, h2load --h1 {SOAK_CLIENTS} "
            f"connections x {SOAK_RPS_PER_CLIENT:g} req/s = {result.target_rps:g} req/s for "
            f"{result.seconds / 60:g} min; VmRSS of the worker every {SAMPLE_SECONDS:g} s.",
            "",
            "| start RSS MiB | end RSS MiB | peak RSS MiB | slope after minute 1, MiB/min | "
            "2nd minute mean | last minute mean | verdict |",
            "|---|---|---|---|---|---|---|",
            f"| {rss[0]:.1f} | {rss[-1]:.1f} | {max(rss):.1f} | {result.slope_mib_per_min:+.3f} | "
            f"{result.second_minute:.1f} | {result.last_minute:.1f} | {verdict} |",
            "",
            f"Requests: {result.succeeded:,} answered 200 "
            f"({result.succeeded / result.seconds:,.0f} req/s), {result.failed} failed; "
            f'p99 {result.p99_ms:.2f} ms over the whole soak. Verdict rule: "no growth" when the '
            f"last minute's mean is within {GROWTH_MIB:g} MiB of the second minute's.",
            "",
            "| t (s) | VmRSS MiB |",
            "|---|---|",
            rows,
        ]
    )
