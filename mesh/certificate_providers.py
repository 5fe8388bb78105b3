"""Certificate provider instances of the bootstrap, for a cluster's TLS (gRFC A29).

A CDS cluster names provider *instances* (Istio: ``default``, with
certificate names ``default`` and ``ROOTCA``); the bootstrap says what each
instance is. The ``file_watcher`` plugin, the one istio-agent configures,
names PEM files that are re-read when they change, every
``refresh_interval``; the files become the cluster's :class:`UpstreamTls`.
"""

from __future__ import annotations

from collections.abc import Mapping

from mesh.bootstrap import CertificateProvider, refresh_interval
from mesh.errors import ResourceError
from mesh.security import UpstreamTls
from mesh.xds.tls import ClusterTls, ProviderInstance

FILE_WATCHER = "file_watcher"


def upstream_tls(tls: ClusterTls, providers: Mapping[str, CertificateProvider]) -> UpstreamTls:
    """The files a cluster's TLS uses; ResourceError when the bootstrap cannot provide them."""
    roots = _file_watcher(tls.roots, providers)
    ca = roots.config.get("ca_certificate_file")
    if not isinstance(ca, str):
        raise ResourceError(f"certificate provider {tls.roots.instance_name!r} has no CA file")
    intervals = [refresh_interval(roots.config)]
    cert = key = None
    if tls.identity is not None:
        identity = _file_watcher(tls.identity, providers)
        cert = identity.config.get("certificate_file")
        key = identity.config.get("private_key_file")
        if not isinstance(cert, str) or not isinstance(key, str):
            raise ResourceError(
                f"certificate provider {tls.identity.instance_name!r} has no certificate and key"
            )
        intervals.append(refresh_interval(identity.config))
    return UpstreamTls(
        ca_file=ca,
        cert_file=cert,
        key_file=key,
        sni=tls.sni or None,
        subject_alt_names=tls.subject_alt_names,
        refresh_interval_s=min(intervals),
    )


def _file_watcher(
    instance: ProviderInstance, providers: Mapping[str, CertificateProvider]
) -> CertificateProvider:
    provider = providers.get(instance.instance_name)
    if provider is None:
        raise ResourceError(
            f"certificate provider instance {instance.instance_name!r} is not in the bootstrap"
        )
    if provider.plugin_name != FILE_WATCHER:
        raise ResourceError(
            f"certificate provider {instance.instance_name!r}: plugin "
            f"{provider.plugin_name!r} is not supported (only {FILE_WATCHER})"
        )
    return provider
