"""A CDS cluster's ``transport_socket``: the UpstreamTlsContext of gRFC A29.

Only what a proxyless client honours is read: the certificate provider
instances for the identity (certificate and key) and for the roots, and the
``match_subject_alt_names`` the server's certificate must satisfy. Both the
current fields (``tls_certificate_provider_instance``,
``ca_certificate_provider_instance``) and the older ones Istio still sends
beside them (``tls_certificate_certificate_provider_instance``,
``validation_context_certificate_provider_instance``) are understood, the
current ones first. Settings that would change what is verified and that
this client cannot honour are refused (NACK), never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from mesh.errors import ResourceError
from mesh.xds.matchers import StringMatcher, string_matcher

TLS_SOCKET = "envoy.transport_sockets.tls"
UPSTREAM_TLS_CONTEXT = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
# Validation settings whose meaning cannot be honoured here: accepting such a
# cluster would verify less than the control plane asked for.
_UNSUPPORTED_VALIDATION = (
    "verify_certificate_spki",
    "verify_certificate_hash",
    "match_typed_subject_alt_names",
    "crl",
    "require_signed_certificate_timestamp",
    "custom_validator_config",
)


@dataclass(frozen=True, slots=True)
class ProviderInstance:
    """A certificate provider instance of the bootstrap, and which of its certificates."""

    instance_name: str
    certificate_name: str = ""


@dataclass(frozen=True, slots=True)
class ClusterTls:
    identity: ProviderInstance | None  # None: TLS without a client certificate
    roots: ProviderInstance
    subject_alt_names: tuple[StringMatcher, ...] = ()
    sni: str = ""


def cluster_tls(proto: cluster_pb2.Cluster) -> ClusterTls | None:
    """The cluster's TLS, or None for plaintext; raises ResourceError to NACK."""
    if not proto.HasField("transport_socket"):
        return None
    socket = proto.transport_socket
    where = "transport_socket"
    if socket.WhichOneof("config_type") != "typed_config":
        raise ResourceError(f"{where}: only typed_config is supported")
    type_name = socket.typed_config.type_url.rpartition("/")[2]
    if type_name != UPSTREAM_TLS_CONTEXT:
        raise ResourceError(f"{where}: unsupported transport socket {type_name or socket.name!r}")
    context = tls_pb2.UpstreamTlsContext()
    if not socket.typed_config.Unpack(context):
        raise ResourceError(f"{where}: cannot decode UpstreamTlsContext")
    return upstream_tls_context(context, where)


def upstream_tls_context(context: tls_pb2.UpstreamTlsContext, where: str) -> ClusterTls:
    common = context.common_tls_context
    if common.HasField("tls_params") or common.HasField("custom_handshaker"):
        raise ResourceError(f"{where}: tls_params and custom_handshaker are not supported")
    identity = _identity(common)
    roots, validation = _roots(common, where)
    matchers: tuple[StringMatcher, ...] = ()
    if validation is not None:
        for field in _UNSUPPORTED_VALIDATION:
            if _is_set(validation, field):
                raise ResourceError(f"{where}: validation context {field} is not supported")
        matchers = tuple(
            string_matcher(m, f"{where} match_subject_alt_names")
            for m in validation.match_subject_alt_names
        )
    return ClusterTls(identity, roots, matchers, context.sni)


def _identity(common: tls_pb2.CommonTlsContext) -> ProviderInstance | None:
    if common.HasField("tls_certificate_provider_instance"):
        instance = common.tls_certificate_provider_instance
        return ProviderInstance(instance.instance_name, instance.certificate_name)
    if common.HasField("tls_certificate_certificate_provider_instance"):
        legacy = common.tls_certificate_certificate_provider_instance
        return ProviderInstance(legacy.instance_name, legacy.certificate_name)
    return None


def _roots(
    common: tls_pb2.CommonTlsContext, where: str
) -> tuple[ProviderInstance, common_pb2.CertificateValidationContext | None]:
    validation: common_pb2.CertificateValidationContext | None = None
    legacy = None
    kind = common.WhichOneof("validation_context_type")
    if kind == "validation_context":
        validation = common.validation_context
    elif kind == "combined_validation_context":
        combined = common.combined_validation_context
        validation = combined.default_validation_context
        if combined.HasField("validation_context_certificate_provider_instance"):
            legacy = combined.validation_context_certificate_provider_instance
    elif kind == "validation_context_certificate_provider_instance":
        legacy = common.validation_context_certificate_provider_instance
    elif kind is not None:
        raise ResourceError(f"{where}: {kind} is not supported")
    if validation is not None and validation.HasField("ca_certificate_provider_instance"):
        instance = validation.ca_certificate_provider_instance
        return ProviderInstance(instance.instance_name, instance.certificate_name), validation
    if legacy is not None:
        return ProviderInstance(legacy.instance_name, legacy.certificate_name), validation
    # A client that cannot verify the server would accept anyone.
    raise ResourceError(f"{where}: no root certificate provider instance")


def _is_set(message: common_pb2.CertificateValidationContext, field: str) -> bool:
    return any(descriptor.name == field for descriptor, _ in message.ListFields())
