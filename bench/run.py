"""`make bench`: every contestant in front of the same backend, back to back, one table.

Run through bench/run.sh, which installs the load generators and builds the
Go backend first. Results are printed and written to
bench/results/<date>-<host>.md, with the profile beside them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

from bench import report
from bench.answers import same_answers
from bench.codec_probe import CodecTiming, time_codecs
from bench.contestants import (
    ECHO_PATH,
    Running,
    backend_port,
    envoy_grpc_proxy,
    envoy_transcoder,
    gateway_source,
    go_backend,
    go_backend_binary,
    grpc_gateway,
    grpc_gateway_binary,
    meshgate,
    passthrough_config,
    python_backend,
    sidecar_pair,
)
from bench.dubbo import PATHS as DUBBO_PATHS
from bench.dubbo import DubboRow, run_dubbo, write_dubbo_bodies
from bench.environment import load_average, machine_lines, version_lines
from bench.feature_cost import run_feature_costs
from bench.feature_cost import section as feature_section
from bench.loadgen import Target, paced_latencies, saturation
from bench.measure import ContestantResult, Durations, FixedRate, body_file, measure
from bench.mesh_cost import measure_in
from bench.payloads import build_payloads
from bench.profile import profile_worker, summarize
from bench.python_versions import PythonVersions, run_python_versions
from bench.python_versions import section as python_versions_section
from bench.soak import render_soak, soak
from bench.streaming import (
    STREAM_MESSAGES,
    STREAM_PATH,
    StreamResult,
    measure_stream,
    write_stream_bodies,
)
from bench.targets import evaluate_targets
from tests.support.peers import PeerBuildError, PeerStartError, PeerToolchainMissing

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path(os.environ.get("MESHGATE_CACHE") or Path.home() / ".cache" / "meshgate") / "bench"
PAYLOADS = ("small", "medium", "large")
# 1,000 req/s is the fixed rate. A 256 KiB request costs meshgate
# over 100 ms of CPU, so the large payload is paced at 5 req/s and saturated
# with 8 connections (64 would not finish a round within the run).
RATES = {
    "small": FixedRate(10, 100),
    "medium": FixedRate(10, 100),
    "large": FixedRate(5, 1, saturation_connections=8),
}
SIDECAR_RATE = FixedRate(5, 100)
SIDECAR_PAYLOAD = "small"
PROFILE_PAYLOADS = ("small", "medium")

Starter = Callable[[], AbstractContextManager[Running]]
T = TypeVar("T")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1-second runs, Go backend only, no profile: a smoke test",
    )
    parser.add_argument("--no-python-backend", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile-seconds", type=float, default=6.0)
    parser.add_argument(
        "--no-dubbo",
        action="store_true",
        help="skip the Dubbo rows (they start the Java and dubbo-go peers)",
    )
    parser.add_argument(
        "--soak",
        action="store_true",
        help="run only the 5-minute soak of meshgate w1 and write its own file",
    )
    parser.add_argument(
        "--only-features",
        action="store_true",
        help="run only the optional features' cost (access log...) and print its table",
    )
    parser.add_argument(
        "--only-python-versions",
        action="store_true",
        help="run only meshgate w1 on Python 3.11, 3.12 and 3.13 and print its table",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def run_streaming(backend: Running, bodies: Path, durations: Durations) -> list[StreamResult]:
    """A stream of STREAM_MESSAGES small replies: direct gRPC, Envoy c1, meshgate w1 x2."""

    def at_stream(running: Running) -> Running:
        return dataclasses.replace(running, url=running.url.replace(ECHO_PATH, STREAM_PATH))

    direct = dataclasses.replace(at_stream(backend), name=report.DIRECT, pid=None)
    results = [measure_stream(direct, bodies, durations)]
    with envoy_transcoder(backend, 1) as envoy:
        results.append(
            measure_stream(
                dataclasses.replace(at_stream(envoy), name="envoy transcoder c1 (array)"),
                bodies,
                durations,
            )
        )
    for stream in ("array", "ndjson"):
        with meshgate(
            backend_port(backend), 1, f"meshgate w1 ({stream})", stream=stream
        ) as gateway:
            results.append(measure_stream(at_stream(gateway), bodies, durations))
    # gRPC in and out: the stream passed through, against Envoy's HTTP/2 router.
    with envoy_grpc_proxy(backend, 1) as envoy:
        results.append(measure_stream(at_stream(envoy), bodies, durations))
    port = backend_port(backend)
    with meshgate(port, 1, "meshgate grpc w1", config=passthrough_config(port)) as gateway:
        results.append(measure_stream(at_stream(gateway), bodies, durations))
    return results


SERVER_PAYLOADS = ("small", "medium")


def run_servers(
    backend: Running, bodies: Path, durations: Durations
) -> tuple[list[ContestantResult], dict[str, bool]]:
    """meshgate w1 on uvicorn, then on granian (bench/granian_runner.py), back to back."""
    results, urls = [], []
    for server in ("uvicorn", "granian"):
        with meshgate(backend_port(backend), 1, f"meshgate w1 {server}", server=server) as gateway:
            urls.append(gateway.url)
            results.append(measure(gateway, bodies, list(SERVER_PAYLOADS), RATES, durations))
            if server == "granian":
                # The uvicorn one is stopped: compare with a fresh one right after.
                granian_url = gateway.url
                with meshgate(backend_port(backend), 1) as again:
                    same = same_answers([again.url, granian_url], bodies, SERVER_PAYLOADS)
    return results, same


def run_only(
    title: str,
    run: Callable[[Running, Path, dict[str, FixedRate], Durations], T],
    render_section: Callable[[T], list[str]],
    durations: Durations,
) -> int:
    """One section alone, in front of the Go backend when bench/run.sh built it, else
    the Python one; printed, not written to results/."""
    with tempfile.TemporaryDirectory(prefix="meshgate-bench-") as workdir:
        bodies = Path(workdir)
        write_bodies(bodies)
        use_go = bool(os.environ.get("MESHGATE_BENCH_GOBACKEND"))
        with go_backend(go_backend_binary()) if use_go else python_backend() as backend:
            print(f"== {title}, {backend.name}", flush=True)
            found = run(backend, bodies, RATES, durations)
    print("\n" + "\n".join(render_section(found)))
    return 0


def run_soak(args: argparse.Namespace, started: datetime.datetime, stamp: str) -> int:
    with tempfile.TemporaryDirectory(prefix="meshgate-bench-") as workdir:
        bodies = Path(workdir)
        write_bodies(bodies)
        with (
            go_backend(go_backend_binary()) as backend,
            meshgate(backend_port(backend), 1) as gateway,
        ):
            print("== soak: meshgate w1, small payload", flush=True)
            result = soak(gateway, body_file(bodies, "small", False))
    text = render_soak(
        result,
        [
            f"# meshgate soak, {started:%Y-%m-%d %H:%M}",
            "",
            *machine_lines(),
            *version_lines(),
            "- Command: `bench/run.sh --soak`",
        ],
    )
    print("\n" + text)
    out = args.out / f"{stamp}-soak.md"
    out.write_text(text + "\n")
    print(f"\nwritten to {out}")
    return 0


def run_section(
    backend: Running, starters: list[Starter], bodies: Path, durations: Durations
) -> list[ContestantResult]:
    """Direct gRPC first, then each contestant in turn, all in front of ``backend``."""
    direct = dataclasses.replace(backend, name=report.DIRECT, pid=None)
    results = [measure(direct, bodies, list(PAYLOADS), RATES, durations)]
    for start in starters:
        with start() as running:
            results.append(measure(running, bodies, list(PAYLOADS), RATES, durations))
    return results


def path_latency(
    name: str, running: Running, bodies: Path, durations: Durations
) -> report.PathResult:
    target = Target(running.url, body_file(bodies, SIDECAR_PAYLOAD, running.grpc), running.grpc)
    saturation(target, durations.warmup)
    fixed = paced_latencies(
        target,
        durations.fixed_rate,
        clients=SIDECAR_RATE.clients,
        rps_per_client=SIDECAR_RATE.rps_per_client,
    )
    single = paced_latencies(target, durations.single, clients=1, rps_per_client=None)
    print(
        f"  {name:<56} p99 {fixed.percentile(99):6.2f} ms  c1 p50 {single.percentile(50):.3f} ms",
        flush=True,
    )
    return report.PathResult(name, fixed, single)


GRPC_DIRECT = "gRPC client -> backend"
GRPC_SIDECARS = "gRPC client -> Envoy outbound -> Envoy inbound -> backend"
MESHGATE_PROXYLESS = "meshgate w1 -> backend (proxyless)"
MESHGATE_SIDECARS = "meshgate w1 -> Envoy outbound -> Envoy inbound -> backend"
SIDECAR_BASELINES = {
    GRPC_SIDECARS: GRPC_DIRECT,
    MESHGATE_PROXYLESS: GRPC_DIRECT,
    MESHGATE_SIDECARS: MESHGATE_PROXYLESS,
}


def run_sidecar_paths(
    backend: Running, bodies: Path, durations: Durations
) -> list[report.PathResult]:
    paths = [path_latency(GRPC_DIRECT, backend, bodies, durations)]
    with sidecar_pair(backend) as sidecars:
        paths.append(path_latency(GRPC_SIDECARS, sidecars, bodies, durations))
        with meshgate(backend_port(backend), 1) as proxyless:
            paths.append(path_latency(MESHGATE_PROXYLESS, proxyless, bodies, durations))
        with meshgate(backend_port(sidecars), 1) as meshed:
            paths.append(path_latency(MESHGATE_SIDECARS, meshed, bodies, durations))
    return paths


def run_profile(backend: Running, bodies: Path, seconds: float, raw_dir: Path, stamp: str) -> str:
    """One saturated profile per payload of PROFILE_PAYLOADS, on one meshgate worker."""
    parts = []
    with meshgate(backend_port(backend), 1) as gateway:
        assert gateway.pid is not None
        for payload in PROFILE_PAYLOADS:
            raw_out = raw_dir / f"{stamp}-{payload}.collapsed.txt"
            stacks = profile_worker(
                gateway.pid, gateway.url, body_file(bodies, payload, False), seconds, raw_out
            )
            parts.append(
                f"## {payload} payload\n\nRaw stacks (py-spy's collapsed format, for "
                f"flame-graph tools): `{raw_out}`.\n\n{summarize(stacks)}"
            )
    return "\n\n".join(parts)


def write_bodies(directory: Path) -> None:
    for payload in build_payloads():
        body_file(directory, payload.name, grpc=False).write_bytes(payload.json_body)
        body_file(directory, payload.name, grpc=True).write_bytes(payload.grpc_frame)


def contestants_for(backend: Running, full: bool) -> Iterator[Starter]:
    """Envoy, grpc-gateway and meshgate at equal cores, back to back."""
    port = backend_port(backend)
    for cores in (1, 2) if full else (2,):
        yield lambda cores=cores: envoy_transcoder(backend, cores)  # type: ignore[misc]
        yield lambda cores=cores: grpc_gateway(  # type: ignore[misc]
            backend, grpc_gateway_binary(), cores
        )
        yield lambda cores=cores: meshgate(port, cores)  # type: ignore[misc]


def passthrough_contestants(backend: Running) -> list[Starter]:
    """gRPC in, gRPC out: Envoy's HTTP/2 router and meshgate's passthrough, one core each."""
    port = backend_port(backend)
    return [
        lambda: envoy_grpc_proxy(backend, 1),
        lambda: meshgate(port, 1, "meshgate grpc w1", config=passthrough_config(port)),
    ]


def main() -> int:
    args = parse_args()
    durations = Durations(0.5, 1.0, 1.0, 1.0) if args.quick else Durations()
    started = datetime.datetime.now()
    load_before = load_average()
    stamp = f"{started:%Y-%m-%d}-{platform.node()}"
    args.out.mkdir(parents=True, exist_ok=True)
    if args.soak:
        return run_soak(args, started, stamp)
    if args.only_features:
        return run_only("optional features", run_feature_costs, feature_section, durations)
    if args.only_python_versions:
        return run_only("Python versions", run_python_versions, python_versions_section, durations)
    # The raw stacks are large: they stay in the cache, the summary goes to results/.
    raw_profiles = CACHE / "profiles"
    raw_profiles.mkdir(parents=True, exist_ok=True)
    sections: list[report.Section] = []
    profile_text = ""
    extra = Extra()
    with tempfile.TemporaryDirectory(prefix="meshgate-bench-") as workdir:
        bodies = Path(workdir)
        write_bodies(bodies)
        write_stream_bodies(bodies)
        write_dubbo_bodies(bodies)
        with go_backend(go_backend_binary()) as backend:
            print("== Go backend (grpc-go, GOMAXPROCS=1)", flush=True)
            results = run_section(
                backend, list(contestants_for(backend, full=True)), bodies, durations
            )
            sections.append(report.Section("Go", results))
            print("== gRPC passthrough (h2load)", flush=True)
            results = run_section(backend, passthrough_contestants(backend), bodies, durations)
            sections.append(report.Section("Go, gRPC in", results, "envoy grpc proxy"))
            print("== sidecar path vs proxyless", flush=True)
            paths = run_sidecar_paths(backend, bodies, durations)
            print(f"== server streaming, {STREAM_MESSAGES} messages per request", flush=True)
            extra.streams = run_streaming(backend, bodies, durations)
            print("== meshgate w1: uvicorn vs granian", flush=True)
            extra.servers, extra.same = run_servers(backend, bodies, durations)
            print("== meshgate w1: optional features off and on", flush=True)
            extra.features = run_feature_costs(backend, bodies, RATES, durations)
            print("== meshgate w1: Python 3.11, 3.12, 3.13", flush=True)
            extra.pythons = run_python_versions(backend, bodies, RATES, durations)
            if not (args.quick or args.no_profile):
                print("== profile", flush=True)
                profile_text = run_profile(
                    backend, bodies, args.profile_seconds, raw_profiles, stamp
                )
        if not (args.quick or args.no_python_backend):
            with python_backend() as backend:
                print("== Python backend (grpcio)", flush=True)
                results = run_section(
                    backend, list(contestants_for(backend, full=False)), bodies, durations
                )
                sections.append(report.Section("Python", results))
        if not args.no_dubbo:
            print("== Dubbo peers", flush=True)
            try:
                extra.dubbo = run_dubbo(bodies, durations)
            except (PeerToolchainMissing, PeerBuildError, PeerStartError) as error:
                extra.dubbo_skipped = f"{type(error).__name__}: {str(error)[:300]}"
                print(f"  skipped: {extra.dubbo_skipped}", flush=True)
        else:
            extra.dubbo_skipped = "--no-dubbo"
    mesh_micros = measure_in(gateway_source())
    codecs = time_codecs()
    load_after = load_average()
    text = render(
        args, started, load_before, load_after, sections, paths, mesh_micros, codecs, extra
    )
    print("\n" + text)
    out = args.out / f"{stamp}.md"
    out.write_text(text + "\n")
    print(f"\nwritten to {out}")
    if profile_text:
        profile_out = args.out / f"{stamp}-profile.md"
        profile_out.write_text(
            f"# meshgate worker profile, {started:%Y-%m-%d %H:%M}\n\n"
            f"py-spy record --native at 200 Hz for {args.profile_seconds:g} s on the only "
            f"worker of `meshgate --workers 1` per payload, saturated by wrk -t2 -c64, "
            f"Go backend.\n\n{profile_text}\n"
        )
        print(f"profile summary written to {profile_out}")
    return 0


@dataclasses.dataclass
class Extra:
    """The sections beyond the main table: streaming, granian, Dubbo, features, Pythons."""

    streams: list[StreamResult] = dataclasses.field(default_factory=list)
    servers: list[ContestantResult] = dataclasses.field(default_factory=list)
    same: dict[str, bool] = dataclasses.field(default_factory=dict)
    dubbo: list[DubboRow] = dataclasses.field(default_factory=list)
    dubbo_skipped: str = ""
    features: list[ContestantResult] = dataclasses.field(default_factory=list)
    pythons: PythonVersions | None = None


def latest_soak(directory: Path) -> str:
    soaks = sorted(directory.glob("*-soak.md"))
    return (
        f"Soak: `bench/run.sh --soak` (5 minutes, not part of this run); latest result "
        f"`bench/results/{soaks[-1].name}`."
        if soaks
        else "Soak: `bench/run.sh --soak` (5 minutes, not part of this run); none yet."
    )


def extra_lines(extra: Extra, out: Path) -> list[str]:
    lines = [
        f"## Server streaming ({STREAM_MESSAGES} small messages per request, Go backend)",
        "",
        f"`ServerStream` with `big: {STREAM_MESSAGES}`: the backend sends {STREAM_MESSAGES} "
        "replies of about 60 bytes of JSON each. Saturation counts whole streams (64 "
        "connections, closed loop); messages/s is streams/s x "
        f"{STREAM_MESSAGES}. First message at c=1: an in-process blocking HTTP/1.1 client, "
        "from sending the request to receiving the first complete message; h2load cannot see "
        "inside a gRPC stream, so direct gRPC shows a one-message stream's c=1 latency "
        "instead. Envoy streams a JSON array; meshgate array and ndjson.",
        "",
        report.table(report.STREAM_HEADER, report.stream_rows(extra.streams)),
        "",
        "## meshgate w1 on uvicorn vs granian (Go backend)",
        "",
        "Same app, same config: `python -m gateway run --workers 1` (uvicorn, httptools, "
        "uvloop) against `bench/granian_runner.py` (granian embedded server, ASGI with "
        'lifespan, one worker, uvloop). "Same responses": one request per payload to each, '
        "same status, content type and JSON (parsed: grpc-go orders map entries at random).",
        "",
        report.table(
            report.SERVER_HEADER, report.server_rows(extra.servers, SERVER_PAYLOADS, extra.same)
        ),
        "",
        "## Dubbo providers (interop peers of tests/peers, group g1, version 1.0.0)",
        "",
    ]
    if extra.dubbo:
        lines += [
            "One meshgate w1 with three routes. Direct rows: h2load with the framed "
            "`HelloRequest` and `tri-service-group`/`tri-service-version` for the Triple gRPC "
            "mode, wrk/h2load with the same JSON and headers for the Triple HTTP/JSON mode. "
            "dubbo2 has no direct row: no load generator speaks dubbo2/hessian2, so meshgate is "
            f"measured alone. Fixed rate {DUBBO_RATE_TEXT}; the Java rows are warmed up 4 s "
            "(JIT).",
            "",
            report.table(report.DUBBO_HEADER, report.dubbo_rows(extra.dubbo, DUBBO_PATHS)),
        ]
    else:
        lines.append(f"Not run: {extra.dubbo_skipped}.")
    if extra.features:
        lines += ["", *feature_section(extra.features)]
    if extra.pythons is not None:
        lines += ["", *python_versions_section(extra.pythons)]
    return [*lines, "", latest_soak(out), ""]


DUBBO_RATE_TEXT = "500 req/s (5 connections x 100 req/s)"


def render(
    args: argparse.Namespace,
    started: datetime.datetime,
    load_before: str,
    load_after: str,
    sections: list[report.Section],
    paths: list[report.PathResult],
    mesh_micros: float | None,
    codecs: list[CodecTiming],
    extra: Extra,
) -> str:
    command = "make bench" if len(sys.argv) == 1 else "bench/run.sh " + shlex.join(sys.argv[1:])
    main_table = report.table(report.MAIN_HEADER, report.main_rows(sections, PAYLOADS))
    sidecar_table = report.table(
        report.SIDECAR_HEADER, report.sidecar_rows(paths, SIDECAR_BASELINES)
    )
    others = extra.servers + [
        row.result for row in extra.dubbo if row.contestant.startswith("meshgate")
    ]
    targets = evaluate_targets(
        sections,
        paths,
        mesh_micros,
        sidecar_names=(MESHGATE_PROXYLESS, MESHGATE_SIDECARS, GRPC_DIRECT),
        other_meshgates=others,
        streams=extra.streams,
        dubbo=extra.dubbo,
    )
    targets_table = report.table(("target", "measured", "verdict"), [t.cells() for t in targets])
    rates = ", ".join(f"{name} {rate.total_rps:g}/s" for name, rate in RATES.items())
    return "\n".join(
        [
            f"# meshgate benchmark, {started:%Y-%m-%d %H:%M}",
            "",
            *machine_lines(),
            f"- Load average (1/5/15 min): {load_before} before, {load_after} after",
            *version_lines(),
            f"- Command: `{command}`" + (" (quick: 1 s runs)" if args.quick else ""),
            "",
            "Saturation: wrk -t2 -c64 (HTTP/1.1 JSON) or h2load -t2 -c64 -m1 (gRPC), "
            f"{'1' if args.quick else '3'} s after a warm-up. Fixed rate: h2load --rps, "
            f"{rates}, latencies from its per-request log. c=1: one connection, back to back. "
            "Envoy's reference for meshgate wN is the transcoder with --concurrency N. "
            "See docs/benchmarks.md.",
            "",
            "## Throughput and latency",
            "",
            main_table,
            "",
            *extra_lines(extra, args.out),
            f"## Sidecar path vs proxyless ({SIDECAR_PAYLOAD} payload, "
            f"{SIDECAR_RATE.total_rps:g} req/s, Go backend)",
            "",
            "Added latency is against the path named in docs/benchmarks.md: a sidecar path "
            "against the same client without sidecars, meshgate's proxyless path against "
            "direct gRPC.",
            "",
            sidecar_table,
            "",
            f"In-process mesh decision (route match + endpoint pick + circuit-breaker count), "
            f"timed in a loop: {report.fmt(mesh_micros)} µs per request.",
            "",
            "## JSON <-> protobuf per request, in process (µs)",
            "",
            'json_format is what meshgate runs today; "compiled" is the per-message-type '
            "converter prototyped in bench/codec_probe.py (same output, checked). Parse includes "
            "orjson.loads and SerializeToString; print includes FromString and orjson.dumps.",
            "",
            report.codec_table(codecs),
            "",
            "## Targets",
            "",
            targets_table,
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
