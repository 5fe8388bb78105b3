"""The GRPC_XDS_BOOTSTRAP format, as istio-agent writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mesh.bootstrap import default_node_id, load, parse
from mesh.errors import BootstrapError

ISTIO_AGENT = {
    "xds_servers": [
        {
            "server_uri": "unix:///etc/istio/proxy/XDS",
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }
    ],
    "node": {
        "id": "sidecar~10.0.0.7~shop-1.default~default.svc.cluster.local",
        "metadata": {"INSTANCE_IPS": "10.0.0.7", "GENERATOR": "grpc", "NAMESPACE": "default"},
        "locality": {"region": "r1", "zone": "z1"},
    },
    "certificate_providers": {
        "default": {
            "plugin_name": "file_watcher",
            "config": {
                "certificate_file": "/var/lib/istio/data/cert-chain.pem",
                "private_key_file": "/var/lib/istio/data/key.pem",
                "ca_certificate_file": "/var/lib/istio/data/root-cert.pem",
                "refresh_interval": "900s",
            },
        }
    },
    "server_listener_resource_name_template": "xds.istio.io/grpc/lds/inbound/%s",
}


def test_parses_what_istio_agent_writes() -> None:
    bootstrap = parse(ISTIO_AGENT)
    assert bootstrap.server.server_uri == "unix:///etc/istio/proxy/XDS"
    assert bootstrap.server.creds.type == "insecure"
    assert bootstrap.node.id.startswith("sidecar~10.0.0.7~")
    assert bootstrap.node.locality.zone == "z1"
    assert bootstrap.certificate_providers["default"].plugin_name == "file_watcher"
    assert bootstrap.server_listener_resource_name_template.endswith("%s")


def test_generator_grpc_is_added_when_absent() -> None:
    document = json.loads(json.dumps(ISTIO_AGENT))
    del document["node"]["metadata"]["GENERATOR"]
    assert parse(document).node.metadata["GENERATOR"] == "grpc"


def test_default_node_id_is_istio_shaped() -> None:
    env = {"POD_NAME": "gw-1", "POD_NAMESPACE": "edge", "INSTANCE_IP": "10.1.2.3"}
    assert default_node_id(env) == "sidecar~10.1.2.3~gw-1.edge~edge.svc.cluster.local"
    document = {"xds_servers": ISTIO_AGENT["xds_servers"]}
    assert parse(document, env).node.id == "sidecar~10.1.2.3~gw-1.edge~edge.svc.cluster.local"


def test_first_supported_channel_creds_wins() -> None:
    document = json.loads(json.dumps(ISTIO_AGENT))
    document["xds_servers"][0]["channel_creds"] = [{"type": "fancy"}, {"type": "tls"}]
    assert parse(document).server.creds.type == "tls"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("xds_servers"), "xds_servers"),
        (lambda d: d.__setitem__("xds_servers", []), "xds_servers"),
        (lambda d: d["xds_servers"][0].pop("server_uri"), "xds_servers[0].server_uri"),
        (
            lambda d: d["xds_servers"][0].__setitem__("channel_creds", [{"type": "fancy"}]),
            "xds_servers[0].channel_creds",
        ),
        (lambda d: d["node"].__setitem__("id", 7), "node.id"),
        (lambda d: d["node"].__setitem__("metadata", []), "node.metadata"),
        (
            lambda d: d["certificate_providers"]["default"]["config"].pop("private_key_file"),
            "certificate_providers.default.config.private_key_file",
        ),
    ],
)
def test_errors_name_the_bad_field(mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    document = json.loads(json.dumps(ISTIO_AGENT))
    mutate(document)
    with pytest.raises(BootstrapError) as caught:
        parse(document)
    assert caught.value.field == field


def test_load_from_path_env_and_inline(tmp_path: Path) -> None:
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(ISTIO_AGENT))
    assert load(path).node.id == ISTIO_AGENT["node"]["id"]  # type: ignore[index]
    assert load(env={"GRPC_XDS_BOOTSTRAP": str(path)}).server.server_uri.startswith("unix:")
    inline = load(env={"GRPC_XDS_BOOTSTRAP_CONFIG": json.dumps(ISTIO_AGENT)})
    assert inline.node.locality.region == "r1"
    with pytest.raises(BootstrapError, match="GRPC_XDS_BOOTSTRAP"):
        load(env={})
    with pytest.raises(BootstrapError, match="not JSON"):
        load(env={"GRPC_XDS_BOOTSTRAP_CONFIG": "{nope"})
    with pytest.raises(BootstrapError, match="cannot read"):
        load(tmp_path / "missing.json")
