"""JWT authentication, in the manner of Envoy's jwt_authn filter.

Each provider names an issuer, the audiences it accepts, where its keys are
(a JWKS file, or an HTTPS URL fetched with httpx, cached and refreshed in the
background; see :mod:`filters.jwks`) and where its token is read. The
requirement says which providers must accept the request: ``any`` of a list
(the default: any provider), ``all`` of a list, and whether a request with no
token at all may pass (``allow_missing``; a token that is present must still
verify). Routes change the requirement through ``routes[].filters``.

A verified request goes on with its claims in ``request.attributes["jwt_claims"]``
(provider -> claims, for the rbac filter) and, when configured, forwarded
upstream as a header: the payload as base64url JSON (as Envoy's
``forward_payload_header``), or single claims as their own headers. Both
become gRPC metadata. Headers of those names sent by the client are always
removed first, so they cannot be forged. The token itself is removed from
the request unless ``forward: true``.

Refusals are 401 with ``WWW-Authenticate: Bearer`` (RFC 6750: with
``error="invalid_token"`` when a token was there) and the reason in the JSON
body; the token never appears in either.

Config (YAML)::

    - name: jwt_auth
      config:
        providers:
          - name: corp
            issuer: https://id.example.com
            audiences: [shop]
            jwks: {url: https://id.example.com/jwks.json, refresh: 10m, ca: ca.pem}
            # or jwks: {file: jwks.json}
            from: [{header: authorization, prefix: "Bearer "}, {query: access_token},
                   {cookie: session}]
            algorithms: [RS256, ES256]        # default: every supported one
            clock_skew: 60s
            forward: false
            forward_claims: {header: x-jwt-claims}
            claims_to_headers: {sub: x-user, tenant: x-tenant}
            cache_size: 1000                  # verified tokens kept until they expire
        require: {any: [corp], allow_missing: false}   # or {all: [corp, partner]}
"""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from filters.credentials import (
    LocationConfig,
    find_credential,
    with_headers,
    without_credential,
    without_headers,
)
from filters.errors import UNAUTHENTICATED, error_response
from filters.http import Filter, Handler, HttpRequest, HttpResponse
from filters.jwks import SUPPORTED_ALGORITHMS, FileJwks, JwksSource, KeySet, UrlJwks
from filters.jwt_verify import Expectations, Rejected, Verified, read_header, verify
from filters.settings import Duration, FilePath, HeaderName

CLAIMS_ATTRIBUTE = "jwt_claims"
MAX_TOKEN_LENGTH = 16 * 1024
MAX_CACHED_TOKEN_LENGTH = 4 * 1024


class JwksConfig(BaseModel):
    """Where a provider's keys are: exactly one of file or url."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    file: FilePath | None = None
    """A JWKS file, read again when it changes."""
    url: str | None = None
    """An https:// URL serving the JWKS, fetched and cached."""
    refresh: Duration = 600.0
    """How often a URL is fetched again (a kid it does not know asks sooner)."""
    timeout: Duration = 5.0
    """How long one JWKS fetch may take."""
    ca: FilePath | None = None
    """CA bundle for the URL's server certificate (default: the system's)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> JwksConfig:
        if (self.file is None) == (self.url is None):
            raise ValueError("give exactly one of file or url")
        if self.url is not None and not self.url.startswith("https://"):
            raise ValueError("a JWKS url must be https:// (keys fetched in clear can be forged)")
        if self.refresh <= 0:
            raise ValueError("refresh must be positive")
        return self


class ForwardClaimsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    header: HeaderName
    """The header (so, the gRPC metadata) carrying the payload as base64url JSON."""


DEFAULT_LOCATIONS = (LocationConfig(header="authorization", prefix="Bearer "),)


class ProviderConfig(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )

    name: str
    """The provider's name, as requirements name it."""
    issuer: str | None
    """The token's iss must equal this (None: any issuer, signature still checked)."""
    audiences: list[str] = Field(default_factory=list)
    """The token's aud must name one of these (empty: aud is not checked)."""
    jwks: JwksConfig
    """The provider's signing keys."""
    locations: list[LocationConfig] = Field(
        default_factory=lambda: list(DEFAULT_LOCATIONS), alias="from", min_length=1
    )
    """Where the token is looked for, in order (YAML key: from)."""
    algorithms: list[str] = Field(default_factory=lambda: sorted(SUPPORTED_ALGORITHMS))
    """Signature algorithms accepted (never none)."""
    clock_skew: Duration = 60.0
    """Leeway on exp and nbf."""
    forward: bool = False
    """Keep the token on the request to the upstream."""
    forward_claims: ForwardClaimsConfig | None = None
    """Pass the verified claims upstream in a header."""
    claims_to_headers: dict[str, HeaderName] = Field(default_factory=dict)
    """Claim name -> header carrying its value (JSON for non-string values)."""
    cache_size: int = Field(default=1000, ge=0)
    """Verified tokens remembered until they expire (0: verify every request)."""

    @model_validator(mode="after")
    def _known_algorithms(self) -> ProviderConfig:
        unknown = sorted(set(self.algorithms) - SUPPORTED_ALGORITHMS)
        if unknown:
            raise ValueError(
                f"unsupported algorithms {unknown} (supported: {sorted(SUPPORTED_ALGORITHMS)})"
            )
        return self


class RequireConfig(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )

    any_of: list[str] | None = Field(default=None, alias="any")
    """A token from one of these providers is enough (YAML key: any)."""
    all_of: list[str] | None = Field(default=None, alias="all")
    """Tokens from each of these providers are needed (YAML key: all)."""
    allow_missing: bool = False
    """A request without any token passes (one with a bad token does not)."""

    @model_validator(mode="after")
    def _one_kind(self) -> RequireConfig:
        if self.any_of is not None and self.all_of is not None:
            raise ValueError("give any or all, not both")
        return self


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    providers: list[ProviderConfig] = Field(min_length=1)
    """The token issuers this filter trusts."""
    require: RequireConfig = Field(default_factory=RequireConfig)
    """Which providers a request needs tokens from."""

    @model_validator(mode="after")
    def _names(self) -> Config:
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ValueError("provider names must be unique")
        required = self.require.any_of or self.require.all_of or []
        unknown = sorted(set(required) - set(names))
        if unknown:
            raise ValueError(f"require names unknown providers {unknown}")
        return self


class VerifiedCache:
    """Tokens that verified, so a client sending the same token again costs a
    lookup rather than a signature check (Envoy's jwt_cache_config).

    An entry holds while the key set it was checked against is current and
    the token has not expired; at most ``size`` entries, least recently used
    evicted. Long tokens are not cached, to bound the memory.
    """

    def __init__(self, size: int, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[str, tuple[KeySet, float, dict[str, Any]]] = OrderedDict()

    def get(self, token: str, keys: KeySet, skew: float) -> dict[str, Any] | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        checked_with, expires, claims = entry
        if checked_with is not keys or self.clock() > expires + skew:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return claims

    def put(self, token: str, keys: KeySet, claims: dict[str, Any]) -> None:
        if len(token) > MAX_CACHED_TOKEN_LENGTH or self.size == 0:
            return
        exp = claims.get("exp")
        expires = float(exp) if isinstance(exp, int | float) else float("inf")
        self._entries[token] = (keys, expires, claims)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    locations: tuple[LocationConfig, ...]
    expect: Expectations
    keys: JwksSource
    forward: bool
    forward_header: str | None
    claim_headers: tuple[tuple[str, str], ...]
    cache: VerifiedCache

    async def check(self, token: str) -> Verified | Rejected:
        if len(token) > MAX_TOKEN_LENGTH:
            return Rejected("Jwt is too long")
        keys = await self.keys.current()
        cached = self.cache.get(token, keys, self.expect.clock_skew)
        if cached is not None:
            return Verified(cached)
        header = read_header(token)
        if isinstance(header, Rejected):
            return header
        outcome = verify(token, header, keys, self.expect)
        if isinstance(outcome, Rejected) and outcome.unknown_kid:
            # A rotated key: look at the provider's current set once more.
            keys = await self.keys.refetch()
            outcome = verify(token, header, keys, self.expect)
        if isinstance(outcome, Verified):
            self.cache.put(token, keys, outcome.claims)
        return outcome

    def forwarded(self, claims: dict[str, Any]) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        if self.forward_header is not None:
            payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=")
            headers.append((self.forward_header, payload.decode("ascii")))
        for claim, header in self.claim_headers:
            value = claims.get(claim)
            if value is None:
                continue
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            if text.isascii() and text.isprintable():
                headers.append((header, text))
        return headers


def _provider(config: ProviderConfig) -> Provider:
    jwks = config.jwks
    keys: JwksSource
    if jwks.file is not None:
        keys = FileJwks(jwks.file)
    else:
        assert jwks.url is not None
        keys = UrlJwks(jwks.url, jwks.refresh, jwks.timeout, jwks.ca)
    return Provider(
        name=config.name,
        locations=tuple(config.locations),
        expect=Expectations(
            config.issuer, tuple(config.audiences), frozenset(config.algorithms), config.clock_skew
        ),
        keys=keys,
        forward=config.forward,
        forward_header=config.forward_claims.header if config.forward_claims else None,
        claim_headers=tuple(config.claims_to_headers.items()),
        cache=VerifiedCache(config.cache_size),
    )


def _unauthorized(reason: str, token_seen: bool) -> HttpResponse:
    challenge = 'Bearer realm="meshgate"'
    if token_seen:
        # The reason is ours (jwt_verify), never the token: quoting is safe.
        challenge += f', error="invalid_token", error_description="{reason}"'
    return error_response(401, UNAUTHENTICATED, reason, [("www-authenticate", challenge)])


def build(config: Config) -> Filter:
    providers = {p.name: _provider(p) for p in config.providers}
    require = config.require
    all_mode = require.all_of is not None
    required: Sequence[Provider] = [
        providers[n] for n in (require.all_of or require.any_of or list(providers))
    ]
    owned_headers = frozenset(
        h
        for p in providers.values()
        for h in ([p.forward_header] if p.forward_header else []) + [h for _, h in p.claim_headers]
    )

    def jwt_auth(next_handler: Handler) -> Handler:
        async def handle(request: HttpRequest) -> HttpResponse:
            request = without_headers(request, owned_headers)
            verified: dict[str, dict[str, Any]] = {}
            failure: str | None = None
            forwarded: list[tuple[str, str]] = []
            for provider in required:
                found = find_credential(request, provider.locations)
                if found is None:
                    if all_mode and not require.allow_missing:
                        return _unauthorized("Jwt is missing", token_seen=False)
                    continue
                outcome = await provider.check(found.value)
                if isinstance(outcome, Rejected):
                    if all_mode:
                        return _unauthorized(outcome.reason, token_seen=True)
                    failure = failure or outcome.reason
                    continue
                verified[provider.name] = outcome.claims
                forwarded.extend(provider.forwarded(outcome.claims))
                if not provider.forward:
                    request = without_credential(request, found.location)
                if not all_mode:
                    break
            if not verified:
                if failure is not None:
                    return _unauthorized(failure, token_seen=True)
                if not require.allow_missing:
                    return _unauthorized("Jwt is missing", token_seen=False)
            request = with_headers(request, forwarded)
            if verified:
                claims = request.attributes.setdefault(CLAIMS_ATTRIBUTE, {})
                claims.update(verified)
            return await next_handler(request)

        return handle

    return jwt_auth
