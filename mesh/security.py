"""How a cluster's connections are secured: TLS settings an upstream client dials with.

Both kinds of cluster end here: a YAML cluster's ``tls:`` and an xDS
cluster's ``UpstreamTlsContext`` whose certificate provider instances the
bootstrap resolved to files (gRFC A29). The value is frozen and hashable, so
upstream clients key their connection pools by (address, security): two
clusters with the same endpoint and different identities never share a
connection.

Checking a peer's subject alternative names is pure code, here, so every
protocol client verifies them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mesh.xds.matchers import StringMatcher, StringMatchKind

# How often certificate files are looked at for a change when nothing says
# otherwise (istio-agent rewrites them well before they expire).
DEFAULT_REFRESH_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    """TLS to a cluster's endpoints; ``cert_file``/``key_file`` present a client certificate.

    ``ca_file`` None trusts the system's roots. ``subject_alt_names`` empty
    checks the server's name against ``sni`` (or the endpoint's host), as a
    browser would; otherwise any one SAN (DNS, URI such as a SPIFFE ID, IP)
    matching any one matcher accepts the peer, as Envoy's
    ``match_subject_alt_names`` does.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    sni: str | None = None
    subject_alt_names: tuple[StringMatcher, ...] = ()
    refresh_interval_s: float = DEFAULT_REFRESH_INTERVAL_S

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f for f in (self.ca_file, self.cert_file, self.key_file) if f)


def exact_names(names: Iterable[str]) -> tuple[StringMatcher, ...]:
    """Exact matchers for a YAML list of accepted SANs."""
    return tuple(StringMatcher(StringMatchKind.EXACT, name) for name in names)


def matching_san(names: Sequence[str], matchers: Sequence[StringMatcher]) -> str | None:
    """The first of the peer's SANs any matcher accepts, or None."""
    for name in names:
        if any(m.matches(name) for m in matchers):
            return name
    return None
