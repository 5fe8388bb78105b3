"""What upstream mTLS costs through the TLS transport, against plaintext.

One meshgate worker, two clusters on the tests' Python echo backend (one
plaintext, one mTLS with a SPIFFE SAN check), the same route kind; wrk posts
the same small JSON body to each in turn, for a few rounds. The backend's own
TLS is included, as it is in production. On a loaded machine the rounds
disagree: read them side by side, not one number alone.

    python -m bench.tls_cost [--seconds 8] [--rounds 2] [--connections 8]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.support.certs import CertificateAuthority
from tests.support.gateway import run_gateway
from tests.support.net import free_port
from tests.support.processes import echo_backend
from tests.support.protos import echo_descriptor_set

ECHO = "/meshgate.test.v1.EchoService/Echo"
LUA = """wrk.method = "POST"
wrk.body = '{"message":"hello"}'
wrk.headers["content-type"] = "application/json"
wrk.headers["x-cluster"] = os.getenv("CLUSTER")
"""


def config(plain_port: int, tls_port: int, certs: Path) -> dict[str, Any]:
    tls = {
        "ca": str(certs / "ca.pem"),
        "cert": str(certs / "client.pem"),
        "key": str(certs / "client.key"),
        "verify_subject_alt_names": ["spiffe://bench/sa/echo"],
    }
    clusters = [
        {"name": "plain", "endpoints": [{"address": f"127.0.0.1:{plain_port}"}]},
        {"name": "mtls", "endpoints": [{"address": f"127.0.0.1:{tls_port}"}], "tls": tls},
    ]
    routes = [
        {
            "name": c["name"],
            "match": {"prefix": "/", "headers": [{"name": "x-cluster", "exact": c["name"]}]},
            "transcode": {"auto_mapping": True},
            "cluster": c["name"],
        }
        for c in clusters
    ]
    return {
        "descriptors": [{"file": str(echo_descriptor_set())}],
        "listeners": [{"name": "bench", "routes": routes}],
        "clusters": clusters,
    }


def wrk(url: str, script: Path, cluster: str, seconds: int, connections: int) -> str:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CLUSTER": cluster},
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    errors = "non-2xx" if "Non-2xx" in out else "ok"
    return (
        f"{cluster:6} {rps.group(1) if rps else '?':>9} req/s  "
        f"p50 {p50.group(1) if p50 else '?':>8}  p99 {p99.group(1) if p99 else '?':>8}  {errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshgate-tls-bench-") as workdir, ExitStack() as stack:
        d = Path(workdir)
        ca = CertificateAuthority("bench")
        ca.write(d)
        server_pem, server_key = ca.issue(uris=["spiffe://bench/sa/echo"]).write(d, "server")
        ca.issue(uris=["spiffe://bench/sa/meshgate"]).write(d, "client")
        plain_port, tls_port = free_port(), free_port()
        stack.enter_context(echo_backend(plain_port, "plain"))
        server_tls = ("--tls-cert", str(server_pem), "--tls-key", str(server_key))
        stack.enter_context(
            echo_backend(tls_port, "mtls", *server_tls, "--tls-ca", str(d / "ca.pem"))
        )
        gateway = stack.enter_context(run_gateway(config(plain_port, tls_port, d), d))
        script = d / "post.lua"
        script.write_text(LUA)
        for round_number in range(1, args.rounds + 1):
            for cluster in ("plain", "mtls"):
                line = wrk(f"{gateway.url}{ECHO}", script, cluster, args.seconds, args.connections)
                print(f"round {round_number}  {line}", flush=True)


if __name__ == "__main__":
    main()
