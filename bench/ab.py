"""A/B of meshgate source trees: one worker each, in alternating rounds, Go backend.

    bench/run.sh builds the backend; then, from the repository:
    MESHGATE_BENCH_GOBACKEND=... python -m bench.ab --payload small old=/tmp/old new=.

Each round starts every tree in turn (``MESHGATE_BENCH_SOURCE``), warms it up
for a second and saturates it with wrk -t2 -c64. Prints each round's
requests per second and the gateway's CPU per request, then the medians and
their ratios to the first tree. Alternating rounds share the machine's drift,
so the ratios hold where the absolute figures move.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench import contestants
from bench.loadgen import Target, wrk_saturation
from bench.payloads import build_payloads
from bench.procstat import TreeUsage


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payload", default="small", choices=("small", "medium", "large"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("trees", nargs="+", metavar="NAME=TREE")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    trees = [spec.split("=", 1) for spec in args.trees]
    payload = {p.name: p for p in build_payloads()}[args.payload]
    body = Path(tempfile.mkdtemp(prefix="meshgate-ab-")) / f"{args.payload}.json"
    body.write_bytes(payload.json_body)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in trees}
    with contestants.go_backend(contestants.go_backend_binary()) as backend:
        port = contestants.backend_port(backend)
        for round_number in range(args.rounds):
            for name, tree in trees:
                os.environ["MESHGATE_BENCH_SOURCE"] = str(Path(tree).resolve())
                with contestants.meshgate(port, args.workers) as running:
                    target = Target(running.url, body, False)
                    wrk_saturation(target, 1)
                    assert running.pid is not None
                    usage = TreeUsage(running.pid)
                    before = usage.cpu_seconds()
                    run = wrk_saturation(target, args.seconds)
                    cpu = usage.cpu_seconds() - before
                micros = cpu / max(run.requests, 1) * 1e6
                results[name].append((run.rps, micros))
                print(
                    f"round {round_number} {name}: {run.rps:,.0f} rps, {micros:.0f} µs CPU per "
                    f"request, {run.errors} errors",
                    flush=True,
                )
    base_rps = base_cpu = 0.0
    for name, rows in results.items():
        rps = statistics.median(row[0] for row in rows)
        cpu = statistics.median(row[1] for row in rows)
        base_rps, base_cpu = base_rps or rps, base_cpu or cpu
        print(
            f"{name}: median {rps:,.0f} rps ({rps / base_rps:.2f}x), "
            f"{cpu:.0f} µs CPU per request ({cpu / base_cpu:.2f}x)"
        )


if __name__ == "__main__":
    main()
