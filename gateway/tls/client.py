"""The client side of upstream TLS: one SSLContext per cluster security, rebuilt
when its files change, and the check of the server's subject alternative names.

Python's ssl verifies the chain (and, without SAN matchers, the host name);
the SAN matchers (a SPIFFE ID from Istio, a DNS name from the YAML) are
checked here on the verified certificate, since OpenSSL's host check knows
DNS names and IPs only.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from typing import Any

from gateway.tls.files import WatchedFiles
from mesh.security import UpstreamTls, matching_san

log = logging.getLogger(f"meshgate.{__name__}")

# peercert()'s names for the SAN kinds a matcher may accept.
SAN_KINDS = ("DNS", "URI", "IP Address")


class PeerRejected(Exception):
    """The upstream's certificate verified but names no accepted identity."""


def client_context(tls: UpstreamTls, alpn: Sequence[str]) -> ssl.SSLContext:
    """A TLS 1.2+ client context for ``tls``; raises OSError / ssl.SSLError on bad files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.ca_file:
        context.load_verify_locations(cafile=tls.ca_file)
    else:
        context.load_default_certs()
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    # With SAN matchers the identity is checked by check_peer, not by host name.
    context.check_hostname = not tls.subject_alt_names
    context.verify_mode = ssl.CERT_REQUIRED
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def san_names(peercert: dict[str, Any]) -> list[str]:
    """The DNS, URI and IP SANs of a verified certificate, as ``getpeercert()`` gives them."""
    return [value for kind, value in peercert.get("subjectAltName", ()) if kind in SAN_KINDS]


def check_peer(tls: UpstreamTls, peercert: dict[str, Any] | None) -> None:
    """Raise PeerRejected unless one SAN matches one of the cluster's matchers."""
    if not tls.subject_alt_names:
        return  # the host name was checked in the handshake
    names = san_names(peercert or {})
    if matching_san(names, tls.subject_alt_names) is None:
        raise PeerRejected(f"certificate names {names or 'no SAN'}, none of them accepted")


def server_hostname(tls: UpstreamTls, host: str) -> str | None:
    """The name sent as SNI and, without SAN matchers, checked against the certificate."""
    if tls.sni:
        return tls.sni
    return None if tls.subject_alt_names else host


class ClientTls:
    """The current context of one (security, ALPN); call :meth:`current` per new connection."""

    def __init__(self, tls: UpstreamTls, alpn: Sequence[str]) -> None:
        self.tls = tls
        self._alpn = tuple(alpn)
        self._files = WatchedFiles(tls.files, tls.refresh_interval_s)
        self._context: ssl.SSLContext | None = None
        self.rotations = 0

    def current(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = client_context(self.tls, self._alpn)
        elif self._files.changed():
            try:
                self._context = client_context(self.tls, self._alpn)
            except (OSError, ssl.SSLError) as exc:
                # Last known good: a half-written rotation must not cut the cluster off.
                log.error("upstream TLS files not reloaded, keeping the old: %s", exc)
            else:
                self.rotations += 1
        return self._context
