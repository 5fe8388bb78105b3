"""meshgate in front of real Dubbo providers (the interop peers of tests/peers).

Three paths through one meshgate w1, each against the provider group g1/1.0.0:

* Triple gRPC mode: ``POST /meshgate.interop.v1.Greeter/SayHello`` transcoded
  with the Greeter's proto, to the dubbo-go peer. Direct: h2load with the framed
  ``HelloRequest`` and the tri-service-group/version headers.
* dubbo2 (TCP, hessian2, generic invocation): ``UserService.echo`` on the Java
  peer. No load generator speaks dubbo2, so meshgate is measured alone.
* Triple HTTP/JSON mode: ``UserService.echo`` on the Java peer, the body passed
  through. Direct: wrk/h2load with the same JSON and the tri-service-* headers.
"""

from __future__ import annotations

import struct
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.contestants import Running, meshgate
from bench.measure import ContestantResult, Durations, FixedRate, measure
from tests.support.peers import GREETER_PROTO, PROTO_DIR, go_peer, java_peer

USER_SERVICE = "org.apache.dubbo.meshgate.UserService"
GREETER = "meshgate.interop.v1.Greeter"
TRIPLE_HEADERS = ("tri-service-group: g1", "tri-service-version: 1.0.0")
# The JVM is warmed up longer than the usual 1 s: its JIT is still compiling.
JVM_WARMUP_SECONDS = 4.0
# Per path: (payload key = body file stem, fixed rate).
RATE = FixedRate(5, 100)
GREETER_ROW = "greeter-grpc"
DUBBO2_ROW = "echo-dubbo2"
TRIPLE_JSON_ROW = "echo-triple-json"
PATHS = {
    GREETER_ROW: "Triple gRPC mode, Greeter.SayHello (dubbo-go peer)",
    DUBBO2_ROW: "dubbo2 generic, UserService.echo (Java peer)",
    TRIPLE_JSON_ROW: "Triple HTTP/JSON mode, UserService.echo (Java peer)",
}


def _hello_frame(name: str) -> bytes:
    encoded = name.encode()
    proto = b"\x0a" + bytes([len(encoded)]) + encoded  # HelloRequest.name = field 1
    return struct.pack(">BI", 0, len(proto)) + proto


def write_dubbo_bodies(directory: Path) -> None:
    (directory / f"{GREETER_ROW}.json").write_bytes(b'{"name":"bench"}')
    (directory / f"{GREETER_ROW}.grpc").write_bytes(_hello_frame("bench"))
    (directory / f"{DUBBO2_ROW}.json").write_bytes(b'["hello from the benchmark"]')
    (directory / f"{TRIPLE_JSON_ROW}.json").write_bytes(b'["hello from the benchmark"]')


def dubbo_config(go_triple: int, java_triple: int, java_dubbo: int) -> dict[str, Any]:
    group = {"group": "g1", "version": "1.0.0"}
    return {
        "descriptors": [{"proto": str(GREETER_PROTO), "include": [str(PROTO_DIR)]}],
        "listeners": [
            {
                "name": "bench",
                "routes": [
                    {
                        "name": "users-dubbo2",
                        "match": {"prefix": "/users/", "methods": ["POST"]},
                        "dubbo": {"parameter_types": {"echo": ["java.lang.String"]}},
                        "cluster": "users-dubbo",
                        "timeout": "10s",
                    },
                    {
                        "name": "users-triple-json",
                        "match": {"prefix": "/rest/", "methods": ["POST"]},
                        "dubbo": {},
                        "cluster": "users-triple",
                        "timeout": "10s",
                    },
                    {
                        "name": "greeter-grpc",
                        "match": {"prefix": f"/{GREETER}/"},
                        "transcode": {"services": [GREETER], "auto_mapping": True},
                        "cluster": "greeter-triple",
                        "timeout": "10s",
                    },
                ],
            }
        ],
        "clusters": [
            {
                "name": "users-dubbo",
                "protocol": "dubbo",
                "application": "meshgate",
                **group,
                "endpoints": [{"address": f"127.0.0.1:{java_dubbo}"}],
            },
            {
                "name": "users-triple",
                "protocol": "triple",
                **group,
                "endpoints": [{"address": f"127.0.0.1:{java_triple}"}],
            },
            {
                "name": "greeter-triple",
                "protocol": "triple",
                **group,
                "endpoints": [{"address": f"127.0.0.1:{go_triple}"}],
            },
        ],
    }


@dataclass(frozen=True)
class DubboRow:
    path: str
    contestant: str
    result: ContestantResult
    answer: str  # one response body, as a correctness check


def check(running: Running, body: Path) -> str:
    """One request; raises unless it answers 200. Returns the body (truncated)."""
    headers = dict(h.split(": ", 1) for h in running.headers)
    headers["content-type"] = "application/json"
    request = urllib.request.Request(running.url, data=body.read_bytes(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        text: str = response.read(200).decode(errors="replace")
        return text


@contextmanager
def dubbo_peers() -> Iterator[tuple[int, int, int]]:
    """(go Triple port, Java Triple port, Java dubbo2 port) of the two started peers."""
    with ExitStack() as stack:
        go = stack.enter_context(go_peer())
        java = stack.enter_context(java_peer())
        assert java.dubbo_port is not None
        yield go.triple_port, java.triple_port, java.dubbo_port


def run_dubbo(bodies: Path, durations: Durations) -> list[DubboRow]:
    rates = {key: RATE for key in PATHS}
    jvm = replace(durations, warmup=max(durations.warmup, JVM_WARMUP_SECONDS))
    rows: list[DubboRow] = []

    def one(path_key: str, running: Running, warm: Durations) -> None:
        answer = (
            check(running, bodies / f"{path_key}.{'grpc' if running.grpc else 'json'}")
            if not running.grpc
            else "(framed HelloReply)"
        )
        rows.append(
            DubboRow(
                path_key, running.name, measure(running, bodies, [path_key], rates, warm), answer
            )
        )

    with dubbo_peers() as (go_triple, java_triple, java_dubbo):
        direct_greeter = Running(
            "direct gRPC (h2load)",
            f"http://127.0.0.1:{go_triple}/{GREETER}/SayHello",
            True,
            None,
            headers=TRIPLE_HEADERS,
        )
        one(GREETER_ROW, direct_greeter, durations)
        direct_json = Running(
            "direct HTTP/JSON (wrk)",
            f"http://127.0.0.1:{java_triple}/{USER_SERVICE}/echo",
            False,
            None,
            headers=TRIPLE_HEADERS,
        )
        one(TRIPLE_JSON_ROW, direct_json, jvm)
        config = dubbo_config(go_triple, java_triple, java_dubbo)
        with meshgate(0, 1, config=config, path="/") as gateway:
            base = gateway.url.rstrip("/")
            one(GREETER_ROW, replace(gateway, url=f"{base}/{GREETER}/SayHello"), durations)
            one(DUBBO2_ROW, replace(gateway, url=f"{base}/users/{USER_SERVICE}/echo"), jvm)
            one(TRIPLE_JSON_ROW, replace(gateway, url=f"{base}/rest/{USER_SERVICE}/echo"), jvm)
    return rows
