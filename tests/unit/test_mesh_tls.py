"""gRFC A29 without sockets: the UpstreamTlsContext istiod sends, what is NACKed,
the bootstrap's file_watcher instances resolved to files, and the SAN check
every upstream connection goes through."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from gateway.tls.client import PeerRejected, check_peer, san_names, server_hostname
from mesh.bootstrap import CertificateProvider, parse
from mesh.certificate_providers import upstream_tls
from mesh.errors import BootstrapError, ResourceError
from mesh.security import UpstreamTls, exact_names
from mesh.xds.cluster import cluster
from mesh.xds.matchers import StringMatcher, StringMatchKind
from mesh.xds.tls import ClusterTls, ProviderInstance
from tests.support import xds_builders as b

SHOP = "spiffe://cluster.local/ns/default/sa/shop"
FILES = {
    "certificate_file": "/etc/certs/cert-chain.pem",
    "private_key_file": "/etc/certs/key.pem",
    "ca_certificate_file": "/etc/certs/root-cert.pem",
    "refresh_interval": "300s",
}


def tls_of(socket: base_pb2.TransportSocket) -> ClusterTls | None:
    return cluster(b.cluster("c", transport_socket=socket)).tls


def test_istio_mutual_shape_is_read() -> None:
    tls = tls_of(b.istio_mutual([SHOP]))
    assert tls == ClusterTls(
        identity=ProviderInstance("default", "default"),
        roots=ProviderInstance("default", "ROOTCA"),
        subject_alt_names=exact_names([SHOP]),
    )


def test_a_cluster_without_transport_socket_is_plaintext() -> None:
    assert cluster(b.cluster("c")).tls is None


def test_legacy_fields_alone_are_understood() -> None:
    context = tls_pb2.UpstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_certificate_certificate_provider_instance=tls_pb2.CommonTlsContext.CertificateProviderInstance(
                instance_name="id"
            ),
            validation_context_certificate_provider_instance=tls_pb2.CommonTlsContext.CertificateProviderInstance(
                instance_name="roots"
            ),
        ),
        sni="shop.internal",
    )
    tls = tls_of(base_pb2.TransportSocket(name="tls", typed_config=b.packed(context)))
    assert tls == ClusterTls(ProviderInstance("id"), ProviderInstance("roots"), (), "shop.internal")


def _socket(validation: common_pb2.CertificateValidationContext) -> base_pb2.TransportSocket:
    context = tls_pb2.UpstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(validation_context=validation)
    )
    return base_pb2.TransportSocket(name="tls", typed_config=b.packed(context))


ROOTS = common_pb2.CertificateProviderPluginInstance(instance_name="default")


@pytest.mark.parametrize(
    ("socket", "problem"),
    [
        (_socket(common_pb2.CertificateValidationContext()), "no root certificate provider"),
        (
            _socket(
                common_pb2.CertificateValidationContext(
                    ca_certificate_provider_instance=ROOTS, verify_certificate_hash=["ab"]
                )
            ),
            "verify_certificate_hash",
        ),
        (
            base_pb2.TransportSocket(name="x", typed_config=b.packed(string_pb2.StringMatcher())),
            "unsupported transport socket",
        ),
    ],
)
def test_what_cannot_be_honoured_is_nacked(socket: base_pb2.TransportSocket, problem: str) -> None:
    with pytest.raises(ResourceError, match=problem):
        tls_of(socket)


def test_provider_instances_resolve_to_the_bootstrap_files() -> None:
    providers = {"default": CertificateProvider("file_watcher", FILES)}
    tls = upstream_tls(tls_of(b.istio_mutual([SHOP])) or _missing(), providers)
    assert tls == UpstreamTls(
        ca_file="/etc/certs/root-cert.pem",
        cert_file="/etc/certs/cert-chain.pem",
        key_file="/etc/certs/key.pem",
        subject_alt_names=exact_names([SHOP]),
        refresh_interval_s=300.0,
    )


@pytest.mark.parametrize(
    ("providers", "problem"),
    [
        ({}, "not in the bootstrap"),
        ({"default": CertificateProvider("meshca", {})}, "not supported"),
        (
            {"default": CertificateProvider("file_watcher", {"ca_certificate_file": "/ca.pem"})},
            "no certificate and key",
        ),
    ],
)
def test_unresolvable_instances_fail_the_cluster(
    providers: dict[str, CertificateProvider], problem: str
) -> None:
    with pytest.raises(ResourceError, match=problem):
        upstream_tls(tls_of(b.istio_mutual()) or _missing(), providers)


def test_bootstrap_refuses_a_bad_refresh_interval() -> None:
    document: dict[str, Any] = {
        "xds_servers": [{"server_uri": "x:1", "channel_creds": [{"type": "insecure"}]}],
        "certificate_providers": {
            "default": {"plugin_name": "file_watcher", "config": {**FILES, "refresh_interval": 5}}
        },
    }
    with pytest.raises(BootstrapError, match="refresh_interval"):
        parse(document)


PEER = {
    "subjectAltName": (
        ("URI", SHOP),
        ("DNS", "shop.default.svc"),
        ("IP Address", "10.0.0.7"),
        ("email", "x@y"),
    )
}


def test_san_names_are_dns_uri_and_ip() -> None:
    assert san_names(PEER) == [SHOP, "shop.default.svc", "10.0.0.7"]


@pytest.mark.parametrize(
    "matchers",
    [
        exact_names([SHOP]),
        exact_names(["nope", "10.0.0.7"]),
        (StringMatcher(StringMatchKind.PREFIX, "spiffe://cluster.local/ns/default/"),),
        (StringMatcher(StringMatchKind.SUFFIX, ".DEFAULT.SVC", ignore_case=True),),
    ],
)
def test_a_matching_san_accepts_the_peer(matchers: tuple[StringMatcher, ...]) -> None:
    check_peer(UpstreamTls(subject_alt_names=matchers), PEER)


@pytest.mark.parametrize("peer", [PEER, {}, None, {"subjectAltName": (("email", SHOP + "x"),)}])
def test_no_matching_san_rejects_the_peer(peer: dict[str, Any] | None) -> None:
    with pytest.raises(PeerRejected):
        check_peer(UpstreamTls(subject_alt_names=exact_names([SHOP + "x"])), peer)


def test_the_host_name_is_checked_only_without_san_matchers() -> None:
    assert server_hostname(UpstreamTls(), "10.1.2.3") == "10.1.2.3"
    assert server_hostname(UpstreamTls(sni="shop.internal"), "10.1.2.3") == "shop.internal"
    assert server_hostname(UpstreamTls(subject_alt_names=exact_names([SHOP])), "10.1.2.3") is None


def _missing() -> ClusterTls:
    raise AssertionError("expected a TLS cluster")
