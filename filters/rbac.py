"""Role-based access control, in the spirit of Istio's AuthorizationPolicy.

Two lists of rules: ``deny`` is checked first, and a request matching any
deny rule is refused; then, if ``allow`` is given, a request must match one
of its rules (``allow: []`` refuses everything), otherwise it passes. This
is Istio's DENY-before-ALLOW order. Refusals are 403 ``RBAC: access denied``
(Envoy's words), without saying which rule matched.

In a rule, every field given must hold (AND); within a field, any value may
match (OR); the ``not_`` fields refuse a match. Strings match exactly, or by
prefix (``/api/*``) or suffix (``*.internal``) or anything (``*``), as in
Istio.

The source address is the peer's, unless the peer is one of
``trusted_proxies``: then ``X-Forwarded-For`` is read from the right,
skipping trusted proxies, and the first address that is not one is the
client. A client outside the trusted set cannot choose its address by
sending the header.

Claims come from the jwt_auth filter placed before this one: a ``claims``
condition holds when one provider's verified claims satisfy it. A claim is
named by its path (``groups``, or ``[realm_access, roles]``); a list claim
matches when one of its items does. ``request_principals`` are Istio's
``iss/sub``.

Config (YAML)::

    - name: rbac
      config:
        trusted_proxies: [10.0.0.0/8]
        deny:
          - {paths: [/admin/*], not_source_ips: [192.168.0.0/16]}
        allow:
          - {methods: [GET], paths: [/v1/*]}
          - {paths: [/v1/orders*], claims: [{path: groups, values: [shop-admin]}]}
          - {headers: {x-canary: ["1"]}, request_principals: ["https://id.example.com/*"]}
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from filters.errors import PERMISSION_DENIED, error_response
from filters.http import Filter, Handler, HttpRequest, HttpResponse
from filters.jwt_auth import CLAIMS_ATTRIBUTE

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Test = Callable[["RequestView"], bool]


def _network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR block") from None


def _networks(values: list[str]) -> list[str]:
    for value in values:
        _network(value)
    return values


class ClaimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    path: str | list[str]
    """The claim's name, or the names down a nested object."""
    values: list[str] = Field(min_length=1)
    """Values one of which the claim must have."""


class RuleConfig(BaseModel):
    """One rule: every field given must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    paths: list[str] | None = None
    """Request paths the rule takes (exact, or prefix ending in *)."""
    not_paths: list[str] | None = None
    """Request paths the rule does not take."""
    methods: list[str] | None = None
    """HTTP methods the rule takes."""
    not_methods: list[str] | None = None
    """HTTP methods the rule does not take."""
    headers: dict[str, list[str]] | None = None
    """Header name -> values, one of which the header must match."""
    source_ips: list[str] | None = None
    """Client networks (CIDR) the rule takes."""
    not_source_ips: list[str] | None = None
    """Client networks (CIDR) the rule does not take."""
    claims: list[ClaimConfig] | None = None
    """Claims of the verified JWT that must hold."""
    request_principals: list[str] | None = None
    """iss/sub of a verified JWT ("*" for any authenticated request)."""

    _ips = field_validator("source_ips", "not_source_ips")(_networks)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    deny: list[RuleConfig] = Field(default_factory=list)
    """Requests any of these rules take are refused (403), checked first."""
    allow: list[RuleConfig] | None = None
    """None: anything not denied passes; a list: only what one rule allows."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Networks whose X-Forwarded-For is believed for the client address."""

    _proxies = field_validator("trusted_proxies")(_networks)


class RequestView:
    """What rules look at, computed once per request and only when asked."""

    __slots__ = ("__dict__", "_proxies", "_source", "request")

    def __init__(self, request: HttpRequest, proxies: Sequence[Network]) -> None:
        self.request = request
        self._proxies = proxies
        self._source: Address | bool | None = False

    @functools.cached_property
    def path(self) -> str:
        return normalized_path(self.request.path)

    @property
    def source(self) -> Address | None:
        if self._source is False:
            self._source = client_address(self.request, self._proxies)
        assert not isinstance(self._source, bool)
        return self._source

    @property
    def claims(self) -> list[Mapping[str, Any]]:
        verified = self.request.attributes.get(CLAIMS_ATTRIBUTE) or {}
        return list(verified.values())


def normalized_path(path: str) -> str:
    """The path rules see: ``.`` and ``..`` segments resolved and repeated
    slashes merged (Istio's default normalization), so ``/v1/../admin`` is
    ``/admin`` to a rule as it will be to many backends."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    tail = "/" if path.endswith("/") and segments else ""
    return "/" + "/".join(segments) + tail


def client_address(request: HttpRequest, proxies: Sequence[Network]) -> Address | None:
    """The peer, or, behind trusted proxies, the right-most untrusted X-Forwarded-For hop."""
    peer = _address(request.client[0]) if request.client else None
    if peer is None or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        address = _address(hop)
        if address is None:
            return None  # a garbled chain names nobody we can trust
        if not _trusted(address, proxies):
            return address
    return peer


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address in network for network in proxies)


def string_matcher(pattern: str) -> Callable[[str], bool]:
    if pattern == "*":
        return lambda value: True
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return lambda value: value.startswith(prefix)
    if pattern.startswith("*"):
        suffix = pattern[1:]
        return lambda value: value.endswith(suffix)
    return lambda value: value == pattern


def _any_of(patterns: Sequence[str]) -> Callable[[str], bool]:
    matchers = [string_matcher(p) for p in patterns]
    return lambda value: any(m(value) for m in matchers)


def _claim_values(claims: Mapping[str, Any], path: Sequence[str]) -> list[str]:
    node: Any = claims
    for name in path:
        if not isinstance(node, Mapping) or name not in node:
            return []
        node = node[name]
    items = node if isinstance(node, list) else [node]
    return [item if isinstance(item, str) else str(item).lower() for item in items]


def compile_rule(rule: RuleConfig) -> Test:
    tests: list[Test] = []
    if rule.paths is not None:
        paths = _any_of(rule.paths)
        tests.append(lambda view: paths(view.path))
    if rule.not_paths is not None:
        not_paths = _any_of(rule.not_paths)
        tests.append(lambda view: not not_paths(view.path))
    if rule.methods is not None:
        methods = frozenset(m.upper() for m in rule.methods)
        tests.append(lambda view: view.request.method in methods)
    if rule.not_methods is not None:
        not_methods = frozenset(m.upper() for m in rule.not_methods)
        tests.append(lambda view: view.request.method not in not_methods)
    for name, values in (rule.headers or {}).items():
        tests.append(_header_test(name.lower(), _any_of(values)))
    if rule.source_ips is not None:
        nets = [_network(n) for n in rule.source_ips]
        tests.append(lambda view: view.source is not None and _trusted(view.source, nets))
    if rule.not_source_ips is not None:
        not_nets = [_network(n) for n in rule.not_source_ips]
        tests.append(lambda view: view.source is None or not _trusted(view.source, not_nets))
    if rule.claims is not None:
        tests.append(_claims_test(rule.claims))
    if rule.request_principals is not None:
        principals = _any_of(rule.request_principals)
        tests.append(
            lambda view: any(
                principals(f"{c.get('iss', '')}/{c.get('sub', '')}") for c in view.claims
            )
        )
    return lambda view: all(test(view) for test in tests)


def _header_test(name: str, matches: Callable[[str], bool]) -> Test:
    def test(view: RequestView) -> bool:
        value = view.request.headers.get(name)
        return value is not None and matches(value)

    return test


def _claims_test(conditions: Sequence[ClaimConfig]) -> Test:
    compiled = [
        ([c.path] if isinstance(c.path, str) else c.path, _any_of(c.values)) for c in conditions
    ]

    def satisfied(claims: Mapping[str, Any]) -> bool:
        return all(any(m(v) for v in _claim_values(claims, path)) for path, m in compiled)

    return lambda view: any(satisfied(c) for c in view.claims)


def build(config: Config) -> Filter:
    proxies = [_network(n) for n in config.trusted_proxies]
    deny = [compile_rule(r) for r in config.deny]
    allow = [compile_rule(r) for r in config.allow] if config.allow is not None else None

    def rbac(next_handler: Handler) -> Handler:
        async def handle(request: HttpRequest) -> HttpResponse:
            view = RequestView(request, proxies)
            denied = any(rule(view) for rule in deny) or (
                allow is not None and not any(rule(view) for rule in allow)
            )
            if denied:
                return error_response(403, PERMISSION_DENIED, "RBAC: access denied")
            return await next_handler(request)

        return handle

    return rbac
