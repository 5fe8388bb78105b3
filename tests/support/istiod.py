"""A real istiod (pilot-discovery) for tests, with no Kubernetes.

istiod is built from the Go module proxy by tests/istio/build_istiod.sh and
cached under ``${MESHGATE_CACHE:-~/.cache/meshgate}/istiod/<version>/``. It runs
with no service registry but the always-on ServiceEntry one, reads Istio YAML
from a directory named in its MeshConfig (``configSources: fs:///dir``), and
serves plaintext xDS on a free loopback port. docs/istiod.md explains why each
flag and variable is there.

Typical use::

    render_config(config_dir, {"V1_PORT": "50061", ...})
    with running_istiod(config_dir) as istiod:
        write_grpc_bootstrap(path, istiod.xds_address)
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.net import free_port
from tests.support.processes import REPO, Process
from tests.support.toolchain import missing

ISTIO_DIR = REPO / "tests" / "istio"
BUILD_SCRIPT = ISTIO_DIR / "build_istiod.sh"
CONFIG_TEMPLATES = ISTIO_DIR / "config"
MESH_TEMPLATE = ISTIO_DIR / "mesh.yaml"

# The node id istio-agent writes for a proxyless gRPC app: type~ip~pod.ns~ns.svc.domain.
DEFAULT_NODE_ID = "sidecar~127.0.0.1~client.default~default.svc.cluster.local"

# A cold build compiles ~2,000 packages on a shared 2-core machine.
BUILD_TIMEOUT_SECONDS = float(os.environ.get("MESHGATE_ISTIOD_BUILD_TIMEOUT", "3600"))

ISTIOD_ENV = {
    # No Kubernetes, no CA: istiod must neither sign certificates nor look for
    # a cluster to read its own certificates from.
    "ENABLE_CA_SERVER": "false",
    "PILOT_CERT_PROVIDER": "none",
    "CLUSTER_ID": "Kubernetes",
    "POD_NAME": "istiod-test",
    "POD_NAMESPACE": "istio-system",
    "REVISION": "default",
    # Keep pushes quick so a YAML edit reaches clients within a second or two.
    "PILOT_DEBOUNCE_AFTER": "50ms",
    "PILOT_DEBOUNCE_MAX": "500ms",
    # Features that would wait on Kubernetes objects (CRDs) that will never come.
    "PILOT_ENABLE_GATEWAY_API": "false",
    "PILOT_ENABLE_GATEWAY_API_STATUS": "false",
    "PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER": "false",
    "PILOT_ENABLE_ALPHA_GATEWAY_API": "false",
    "PILOT_ENABLE_AGENTGATEWAY": "false",
    "INJECTION_WEBHOOK_CONFIG_NAME": "",
    "VALIDATION_WEBHOOK_CONFIG_NAME": "",
}


# build_istiod.sh exits with this when the binary is not cached and Go is absent.
NO_GO_EXIT_CODE = 3


def istiod_binary() -> Path:
    """The cached pilot-discovery binary, built on first use; skip/fail without Go.

    A binary already in the cache is used even where Go is missing.
    ``MESHGATE_ISTIOD_BINARY`` points at a binary built some other way.
    """
    override = os.environ.get("MESHGATE_ISTIOD_BINARY")
    if override:
        return Path(override)
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode == NO_GO_EXIT_CODE:
        missing("go is not on PATH: istiod (pilot-discovery) is built from the Go module proxy")
    if result.returncode != 0:
        raise RuntimeError(
            f"building istiod failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    binary = Path(result.stdout.strip().splitlines()[-1])
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"build script reported {binary}, which is not executable")
    return binary


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one rename.

    istiod watches its config directory with fsnotify and reads a file as soon
    as it appears; writing in place could let it parse a half-written file.
    The temporary name has no .yaml suffix, so istiod ignores it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as handle:
        handle.write(text)
    os.replace(handle.name, path)


def render_template(template: Path, values: Mapping[str, object]) -> str:
    """Fill ``${NAME}`` placeholders; a placeholder without a value is an error."""
    return string.Template(template.read_text()).substitute(
        {key: str(value) for key, value in values.items()}
    )


def render_config(
    config_dir: Path, values: Mapping[str, object], only: tuple[str, ...] = ()
) -> list[Path]:
    """Write the Istio YAML templates of tests/istio/config into ``config_dir``."""
    written = []
    for template in sorted(CONFIG_TEMPLATES.glob("*.yaml")):
        if only and template.name not in only:
            continue
        target = config_dir / template.name
        write_atomically(target, render_template(template, values))
        written.append(target)
    return written


@dataclass
class Istiod:
    """A running istiod and where to reach it."""

    process: Process
    xds_port: int
    http_port: int
    monitoring_port: int
    config_dir: Path

    @property
    def xds_address(self) -> str:
        return f"127.0.0.1:{self.xds_port}"

    def debug(self, path: str, timeout: float = 5.0) -> Any:
        """GET one of istiod's /debug/ endpoints (served on httpAddr) as JSON."""
        url = f"http://127.0.0.1:{self.http_port}/debug/{path}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())


def _wait_until_ready(istiod: Istiod, timeout: float) -> None:
    """Poll /ready on httpAddr: it answers 200 once istiod's caches have synced."""
    url = f"http://127.0.0.1:{istiod.http_port}/ready"
    deadline = time.monotonic() + timeout
    while True:
        if istiod.process.proc.poll() is not None:
            raise RuntimeError(
                f"istiod exited with {istiod.process.proc.returncode}:\n{istiod.process.output}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"istiod not ready after {timeout}s:\n{istiod.process.output}")
        time.sleep(0.2)


@contextmanager
def running_istiod(
    config_dir: Path,
    binary: Path | None = None,
    timeout: float = 60.0,
    extra_env: Mapping[str, str] | None = None,
    log_level: str = "default:info",
) -> Iterator[Istiod]:
    """Start istiod on free loopback ports, reading Istio YAML from ``config_dir``.

    The MeshConfig file is written beside ``config_dir`` (never inside it: every
    .yaml file in the watched directory is parsed as Istio config).
    """
    executable = binary or istiod_binary()
    config_dir = config_dir.resolve()
    xds_port, http_port, monitoring_port = free_port(), free_port(), free_port()
    mesh_file = config_dir.parent / f"{config_dir.name}-mesh.yaml"
    write_atomically(
        mesh_file,
        render_template(
            MESH_TEMPLATE,
            {
                "CONFIG_DIR": config_dir,
                "XDS_ADDRESS": f"127.0.0.1:{xds_port}",
            },
        ),
    )
    args = [
        str(executable),
        "discovery",
        "--registries=",
        f"--meshConfig={mesh_file}",
        f"--networksConfig={config_dir.parent / 'absent-mesh-networks.yaml'}",
        f"--grpcAddr=127.0.0.1:{xds_port}",
        f"--httpAddr=127.0.0.1:{http_port}",
        f"--monitoringAddr=127.0.0.1:{monitoring_port}",
        "--secureGRPCAddr=",
        "--httpsAddr=",
        "--domain=cluster.local",
        "--keepaliveMaxServerConnectionAge=30m",
        f"--log_output_level={log_level}",
    ]
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    env.update(ISTIOD_ENV)
    env.update(extra_env or {})
    process = Process(args, env=env)
    istiod = Istiod(process, xds_port, http_port, monitoring_port, config_dir)
    try:
        _wait_until_ready(istiod, timeout)
        yield istiod
    finally:
        process.stop()


def node_metadata(namespace: str = "default") -> dict[str, object]:
    """What istio-agent puts in a proxyless node's metadata."""
    return {
        "GENERATOR": "grpc",
        "NAMESPACE": namespace,
        "CLUSTER_ID": "Kubernetes",
        "INSTANCE_IPS": "127.0.0.1",
        "ISTIO_VERSION": "meshgate-test",
        "LABELS": {"app": "client"},
    }


def grpc_bootstrap(
    xds_address: str,
    node_id: str = DEFAULT_NODE_ID,
    namespace: str = "default",
    metadata: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """A GRPC_XDS_BOOTSTRAP document shaped like the one istio-agent writes.

    GENERATOR=grpc makes istiod answer with its proxyless-gRPC generator
    (pilot/pkg/networking/grpcgen) instead of the Envoy one.
    """
    metadata_of_node = {**node_metadata(namespace), **(metadata or {})}
    return {
        "xds_servers": [
            {
                "server_uri": xds_address,
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"],
            }
        ],
        "node": {
            "id": node_id,
            "metadata": metadata_of_node,
            "locality": {},
        },
        "server_listener_resource_name_template": "xds.istio.io/grpc/lds/inbound/%s",
    }


def write_grpc_bootstrap(
    path: Path,
    xds_address: str,
    node_id: str = DEFAULT_NODE_ID,
    namespace: str = "default",
    metadata: Mapping[str, object] | None = None,
) -> Path:
    """Write :func:`grpc_bootstrap` to ``path`` for GRPC_XDS_BOOTSTRAP."""
    document = grpc_bootstrap(xds_address, node_id, namespace, metadata)
    write_atomically(path, json.dumps(document, indent=2) + "\n")
    return path
