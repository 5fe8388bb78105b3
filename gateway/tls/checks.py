"""The config's TLS files, loaded once at load time so a missing file or a key
that does not match its certificate is a config error with its place, not a
failed handshake later. (At run time the same files are re-read on change,
and a bad rotation keeps the last good ones.)"""

from __future__ import annotations

import ssl

from gateway.config import ConfigIssue, LoadedConfig
from gateway.tls.client import client_context
from gateway.tls.server import ListenerTls
from gateway.upstream.clusters import cluster_security


def tls_file_issues(loaded: LoadedConfig) -> list[ConfigIssue]:
    issues = []
    config = loaded.config
    for i, listener in enumerate(config.listeners):
        if listener.tls is None:
            continue
        try:
            ListenerTls(listener.name, listener.tls, loaded.resolve)
        except (OSError, ssl.SSLError) as exc:
            issues.append(ConfigIssue(("listeners", i, "tls"), f"cannot load: {_reason(exc)}"))
    for i, cluster in enumerate(config.clusters):
        if cluster.tls is None:
            continue
        try:
            client_context(cluster_security(cluster.tls, loaded.resolve), ())
        except (OSError, ssl.SSLError) as exc:
            issues.append(ConfigIssue(("clusters", i, "tls"), f"cannot load: {_reason(exc)}"))
    return issues


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
