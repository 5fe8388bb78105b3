"""TLS termination on a listener: SNI among several certificates, rotation, mTLS.

Each listener has its own :class:`ListenerTls`. Its ``context`` is the one
SSLContext handed to asyncio for the listener's socket; its SNI callback
runs on every handshake and switches the connection to the context of the
certificate the client asked for. Before switching, it looks (at most once
per ``reload_interval``) whether a file changed and, if so, builds every
context again: new handshakes get the new certificate, open connections keep
theirs. A rotation that fails to load (a key that does not match its
certificate half-way through a rewrite) keeps the previous contexts.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.config import ListenerTlsConfig
from gateway.tls.files import WatchedFiles

log = logging.getLogger(f"meshgate.{__name__}")

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
Resolve = Callable[[Path], Path]


@dataclass(frozen=True, slots=True)
class ServedCertificate:
    cert: str
    key: str
    server_names: tuple[str, ...]


def served_certificates(
    config: ListenerTlsConfig, resolve: Resolve
) -> tuple[ServedCertificate, ...]:
    """The default certificate first, then the ones chosen by SNI."""
    out = []
    if config.cert is not None and config.key is not None:
        out.append(ServedCertificate(str(resolve(config.cert)), str(resolve(config.key)), ()))
    for entry in config.certificates:
        names = tuple(name.lower().rstrip(".") for name in entry.server_names)
        out.append(ServedCertificate(str(resolve(entry.cert)), str(resolve(entry.key)), names))
    return tuple(out)


def name_matches(pattern: str, server_name: str) -> bool:
    """Exact, or ``*.example.com`` covering exactly one more label (RFC 6125)."""
    if pattern.startswith("*."):
        head, dot, rest = server_name.partition(".")
        return bool(head) and bool(dot) and rest == pattern[2:]
    return pattern == server_name


def pick_certificate(certificates: Sequence[ServedCertificate], server_name: str | None) -> int:
    """Index of the certificate for a handshake: an exact name, then a wildcard, else the first."""
    if server_name:
        name = server_name.lower().rstrip(".")
        for exact in (True, False):
            for index, served in enumerate(certificates):
                for pattern in served.server_names:
                    if pattern.startswith("*.") != exact and name_matches(pattern, name):
                        return index
    return 0


def server_context(config: ListenerTlsConfig, ca: str | None) -> ssl.SSLContext:
    """A context with the listener's protocol settings and no certificate yet."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[config.min_version]
    if config.max_version is not None:
        context.maximum_version = VERSIONS[config.max_version]
    context.set_ciphers(config.ciphers)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(list(config.alpn))
    if ca is not None:
        context.load_verify_locations(cafile=ca)
        context.verify_mode = (
            ssl.CERT_REQUIRED if config.require_client_certificate else ssl.CERT_OPTIONAL
        )
    return context


class ListenerTls:
    """The TLS side of one listener; build it once per worker."""

    def __init__(self, name: str, config: ListenerTlsConfig, resolve: Resolve) -> None:
        self.name = name
        self._config = config
        self._certificates = served_certificates(config, resolve)
        self._ca = str(resolve(config.client_ca)) if config.client_ca is not None else None
        paths = [p for c in self._certificates for p in (c.cert, c.key)]
        self._files = WatchedFiles(
            [*paths, *([self._ca] if self._ca else [])], config.reload_interval
        )
        # Raises (ssl.SSLError, OSError) on bad files: a listener never starts without them.
        self._contexts = self._build()
        self.context = server_context(config, self._ca)
        default = self._certificates[0]
        self.context.load_cert_chain(default.cert, default.key)
        self.context.sni_callback = self._on_hello
        self.reloads = 0

    def _build(self) -> tuple[ssl.SSLContext, ...]:
        contexts = []
        for served in self._certificates:
            context = server_context(self._config, self._ca)
            context.load_cert_chain(served.cert, served.key)
            contexts.append(context)
        return tuple(contexts)

    def reload_if_changed(self) -> None:
        if not self._files.changed():
            return
        try:
            self._contexts = self._build()
        except (OSError, ssl.SSLError) as exc:
            log.error(
                "listener %s: new certificates not loaded, keeping the old: %s", self.name, exc
            )
            return
        self.reloads += 1
        log.info("listener %s: certificates reloaded", self.name)

    def _on_hello(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        self.reload_if_changed()
        connection.context = self._contexts[pick_certificate(self._certificates, server_name)]
