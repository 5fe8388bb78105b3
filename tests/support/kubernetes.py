"""A real Kubernetes API server (kube-apiserver + etcd) on loopback, and helm.

tests/k8s/build_k8s.sh builds the three from the Go module proxy into the
cache (it is also run by ``make peers``). The API server runs with no
controllers, scheduler or kubelet: enough to validate and admit objects,
which is what a server-side dry run asks of it. It serves TLS with a
self-signed certificate it makes in its cert dir, authenticates one static
token in the system:masters group, and stores in an etcd of its own.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.net import free_port
from tests.support.processes import REPO, Process
from tests.support.toolchain import missing

BUILD_SCRIPT = REPO / "tests" / "k8s" / "build_k8s.sh"
BUILD_TIMEOUT_SECONDS = 3600
# build_k8s.sh exits with this when the tools are not cached and Go is absent.
NO_GO_EXIT_CODE = 3
FIELD_MANAGER = "meshgate-tests"


def k8s_tools(*tools: str) -> Path:
    """The cache's bin directory holding ``tools``, built on first use; skip/fail without Go."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), *tools],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode == NO_GO_EXIT_CODE:
        missing("go is not on PATH: helm, etcd and kube-apiserver are built from the Go proxy")
    if result.returncode != 0:
        raise RuntimeError(
            f"building {tools} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return Path(result.stdout.strip().splitlines()[-1]) / "bin"


@dataclass
class ApiServer:
    url: str
    token: str

    def client(self) -> httpx.Client:
        # The server's certificate is self-signed on the spot, and the
        # connection never leaves loopback.
        return httpx.Client(
            base_url=self.url,
            headers={"authorization": f"Bearer {self.token}"},
            verify=False,
            timeout=30.0,
        )


def _wait_healthy(url: str, token: str, process: Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RuntimeError(f"kube-apiserver exited:\n{process.output}")
        try:
            response = httpx.get(
                f"{url}/readyz",
                headers={"authorization": f"Bearer {token}"},
                verify=False,
                timeout=2.0,
            )
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"kube-apiserver not ready after {timeout}s ({last}):\n{process.output}")


@contextmanager
def running_apiserver(bin_dir: Path, workdir: Path, timeout: float = 120.0) -> Iterator[ApiServer]:
    """etcd, then kube-apiserver against it, both on free loopback ports."""
    workdir.mkdir(parents=True, exist_ok=True)
    client_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{client_port}"
    token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f'{token},meshgate-tests,1000,"system:masters"\n')
    service_account_key = workdir / "service-account.key"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(service_account_key), "2048"],
        check=True,
        capture_output=True,
    )
    with ExitStack() as stack:
        etcd = Process(
            [
                str(bin_dir / "etcd"),
                "--name",
                "meshgate-tests",
                "--data-dir",
                str(workdir / "etcd"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"meshgate-tests=http://127.0.0.1:{peer_port}",
                "--log-level",
                "warn",
            ]
        )
        stack.callback(etcd.stop)
        apiserver = Process(
            [
                str(bin_dir / "kube-apiserver"),
                "--etcd-servers",
                etcd_url,
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(api_port),
                "--cert-dir",
                str(workdir / "certs"),
                "--token-auth-file",
                str(workdir / "tokens.csv"),
                "--authorization-mode",
                "RBAC",
                "--service-account-key-file",
                str(service_account_key),
                "--service-account-signing-key-file",
                str(service_account_key),
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
                # An address range the API server allocates Service IPs from:
                # configuration only, nothing is sent there.
                "--service-cluster-ip-range",
                "10.96.0.0/16",
                "--v",
                "1",
            ],
            env={"KUBECONFIG": os.devnull},
        )
        stack.callback(apiserver.stop)
        url = f"https://127.0.0.1:{api_port}"
        _wait_healthy(url, token, apiserver, timeout)
        yield ApiServer(url, token)


def resource_path(client: httpx.Client, manifest: dict[str, Any], namespace: str) -> str:
    """The REST path of ``manifest``'s object, its resource found by discovery."""
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    discovery = client.get(base)
    discovery.raise_for_status()
    resource = next(
        (
            item
            for item in discovery.json()["resources"]
            if item["kind"] == kind and "/" not in item["name"]
        ),
        None,
    )
    if resource is None:
        raise LookupError(f"{api_version} {kind} is not served")
    name = manifest["metadata"]["name"]
    if resource["namespaced"]:
        return f"{base}/namespaces/{namespace}/{resource['name']}/{name}"
    return f"{base}/{resource['name']}/{name}"


def apply(
    client: httpx.Client, manifest: dict[str, Any], namespace: str = "default", dry_run: bool = True
) -> httpx.Response:
    """Server-side apply, strict field validation, dry run unless told otherwise."""
    params = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict", "force": "true"}
    if dry_run:
        params["dryRun"] = "All"
    return client.patch(
        resource_path(client, manifest, namespace),
        params=params,
        content=yaml.safe_dump(manifest),
        headers={"content-type": "application/apply-patch+yaml"},
    )
