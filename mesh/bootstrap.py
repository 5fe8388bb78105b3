"""The gRPC xDS bootstrap (``GRPC_XDS_BOOTSTRAP``), as istio-agent writes it.

A bootstrap names the management server(s), how to reach them, and the node
identity sent on the ADS stream. It is read from a path, from the
``GRPC_XDS_BOOTSTRAP`` file or the inline ``GRPC_XDS_BOOTSTRAP_CONFIG``
environment variable. Parsing is strict: every problem is a BootstrapError
naming the bad field.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.errors import BootstrapError

ENV_PATH = "GRPC_XDS_BOOTSTRAP"
ENV_INLINE = "GRPC_XDS_BOOTSTRAP_CONFIG"
SUPPORTED_CREDS = ("insecure", "tls", "google_default")
# grpc's default for a file_watcher certificate provider without refresh_interval.
DEFAULT_REFRESH_INTERVAL_S = 600.0
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)s$")


@dataclass(frozen=True, slots=True)
class ChannelCreds:
    type: str
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class XdsServer:
    server_uri: str
    channel_creds: tuple[ChannelCreds, ...]
    server_features: tuple[str, ...] = ()

    @property
    def creds(self) -> ChannelCreds:
        """The first credential type this client supports (gRFC A27: first usable wins)."""
        for creds in self.channel_creds:
            if creds.type in SUPPORTED_CREDS:
                return creds
        raise AssertionError("validated at parse time")

    @property
    def ignore_resource_deletion(self) -> bool:
        return "ignore_resource_deletion" in self.server_features


@dataclass(frozen=True, slots=True)
class Locality:
    region: str = ""
    zone: str = ""
    sub_zone: str = ""


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    cluster: str = ""
    locality: Locality = Locality()
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CertificateProvider:
    plugin_name: str
    config: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Bootstrap:
    xds_servers: tuple[XdsServer, ...]
    node: Node
    certificate_providers: Mapping[str, CertificateProvider] = field(default_factory=dict)
    server_listener_resource_name_template: str = ""

    @property
    def server(self) -> XdsServer:
        """The management server the ADS stream goes to (the first one)."""
        return self.xds_servers[0]


def default_node_id(env: Mapping[str, str] | None = None) -> str:
    """Istio's sidecar node id: ``sidecar~IP~POD.NS~NS.svc.cluster.local``."""
    env = os.environ if env is None else env
    namespace = env.get("POD_NAMESPACE", "default")
    pod = env.get("POD_NAME") or socket.gethostname()
    ip = env.get("INSTANCE_IP", "127.0.0.1")
    return f"sidecar~{ip}~{pod}.{namespace}~{namespace}.svc.cluster.local"


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Bootstrap:
    """Read the bootstrap from ``path``, else from the environment."""
    env = os.environ if env is None else env
    if path is not None:
        return _load_file(Path(path), str(path))
    if env.get(ENV_PATH):
        return _load_file(Path(env[ENV_PATH]), ENV_PATH)
    if env.get(ENV_INLINE):
        return parse_text(env[ENV_INLINE], ENV_INLINE, env)
    raise BootstrapError(ENV_PATH, f"neither {ENV_PATH} nor {ENV_INLINE} is set")


def _load_file(path: Path, origin: str) -> Bootstrap:
    try:
        text = path.read_text()
    except OSError as exc:
        raise BootstrapError(origin, f"cannot read {path}: {exc.strerror}") from exc
    return parse_text(text, str(path))


def parse_text(
    text: str, origin: str = "bootstrap", env: Mapping[str, str] | None = None
) -> Bootstrap:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BootstrapError(origin, f"not JSON: {exc}") from exc
    return parse(document, env)


def parse(document: Any, env: Mapping[str, str] | None = None) -> Bootstrap:
    """Validate a decoded bootstrap document."""
    root = _object(document, "<root>")
    servers = _list(root.get("xds_servers"), "xds_servers")
    if not servers:
        raise BootstrapError("xds_servers", "must list at least one server")
    providers = _object(root.get("certificate_providers", {}), "certificate_providers")
    template = root.get("server_listener_resource_name_template", "")
    return Bootstrap(
        xds_servers=tuple(_server(s, f"xds_servers[{i}]") for i, s in enumerate(servers)),
        node=_node(root.get("node", {}), env),
        certificate_providers={
            name: _provider(value, f"certificate_providers.{name}")
            for name, value in providers.items()
        },
        server_listener_resource_name_template=_string(
            template, "server_listener_resource_name_template", required=False
        ),
    )


def _server(value: Any, where: str) -> XdsServer:
    server = _object(value, where)
    uri = _string(server.get("server_uri"), f"{where}.server_uri")
    creds_list = _list(server.get("channel_creds"), f"{where}.channel_creds")
    creds = []
    for i, item in enumerate(creds_list):
        entry = _object(item, f"{where}.channel_creds[{i}]")
        creds.append(
            ChannelCreds(
                type=_string(entry.get("type"), f"{where}.channel_creds[{i}].type"),
                config=_object(entry.get("config", {}), f"{where}.channel_creds[{i}].config"),
            )
        )
    if not any(c.type in SUPPORTED_CREDS for c in creds):
        raise BootstrapError(
            f"{where}.channel_creds",
            f"no supported type among {[c.type for c in creds]} (supported: {SUPPORTED_CREDS})",
        )
    features = _list(server.get("server_features", []), f"{where}.server_features")
    return XdsServer(
        server_uri=uri,
        channel_creds=tuple(creds),
        server_features=tuple(
            _string(f, f"{where}.server_features[{i}]") for i, f in enumerate(features)
        ),
    )


def _node(value: Any, env: Mapping[str, str] | None) -> Node:
    node = _object(value, "node")
    locality = _object(node.get("locality", {}), "node.locality")
    metadata = dict(_object(node.get("metadata", {}), "node.metadata"))
    # istiod picks its proxyless-gRPC config generator from this key.
    metadata.setdefault("GENERATOR", "grpc")
    node_id = node.get("id")
    return Node(
        id=_string(node_id, "node.id") if node_id is not None else default_node_id(env),
        cluster=_string(node.get("cluster", ""), "node.cluster", required=False),
        locality=Locality(
            region=_string(locality.get("region", ""), "node.locality.region", required=False),
            zone=_string(locality.get("zone", ""), "node.locality.zone", required=False),
            sub_zone=_string(
                locality.get("sub_zone", ""), "node.locality.sub_zone", required=False
            ),
        ),
        metadata=metadata,
    )


def _provider(value: Any, where: str) -> CertificateProvider:
    provider = _object(value, where)
    plugin = _string(provider.get("plugin_name"), f"{where}.plugin_name")
    config = _object(provider.get("config", {}), f"{where}.config")
    if plugin == "file_watcher":
        for key in ("certificate_file", "private_key_file", "ca_certificate_file"):
            if key in config:
                _string(config[key], f"{where}.config.{key}")
        if "certificate_file" in config and "private_key_file" not in config:
            raise BootstrapError(
                f"{where}.config.private_key_file", "required with certificate_file"
            )
        try:
            refresh_interval(config)
        except ValueError as exc:
            raise BootstrapError(f"{where}.config.refresh_interval", str(exc)) from None
    return CertificateProvider(plugin_name=plugin, config=config)


def refresh_interval(config: Mapping[str, Any]) -> float:
    """A file_watcher's ``refresh_interval`` (a protobuf JSON duration, ``"600s"``)."""
    value = config.get("refresh_interval")
    if value is None:
        return DEFAULT_REFRESH_INTERVAL_S
    match = _SECONDS.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a positive duration like '600s'")
    return float(match.group(1))


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BootstrapError(where, f"must be a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        raise BootstrapError(where, "is required")
    if not isinstance(value, list):
        raise BootstrapError(where, f"must be a JSON array, got {type(value).__name__}")
    return value


def _string(value: Any, where: str, *, required: bool = True) -> str:
    if value is None or (required and value == ""):
        raise BootstrapError(where, "is required")
    if not isinstance(value, str):
        raise BootstrapError(where, f"must be a string, got {type(value).__name__}")
    return value
