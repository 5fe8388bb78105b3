"""rbac: deny before allow, path/method/header/source/claim conditions, and
X-Forwarded-For believed only from trusted proxies."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from filters import build_filter
from filters.http import HttpRequest, HttpResponse
from filters.rbac import client_address, normalized_path
from tests.support.awaiting import settle


async def _ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse(200)


def status(
    config: dict[str, Any],
    *,
    method: str = "GET",
    path: str = "/",
    headers: list[tuple[str, str]] | None = None,
    client: str = "192.0.2.1",
    claims: dict[str, Any] | None = None,
) -> int:
    request = HttpRequest(method, path, b"", headers or [], (client, 1000))
    if claims is not None:
        request.attributes["jwt_claims"] = {"corp": claims}
    return settle(build_filter("rbac", config)(_ok)(request)).status


def test_no_rules_allows_and_empty_allow_denies() -> None:
    assert status({}) == 200
    assert status({"allow": []}) == 403


def test_deny_wins_over_allow() -> None:
    config = {"deny": [{"paths": ["/admin/*"]}], "allow": [{"paths": ["*"]}]}
    assert status(config, path="/admin/users") == 403
    assert status(config, path="/shop") == 200


def test_fields_are_anded_values_ored() -> None:
    config = {"allow": [{"methods": ["GET", "HEAD"], "paths": ["/v1/*", "*.json"]}]}
    assert status(config, path="/v1/a") == 200
    assert status(config, path="/x/list.json", method="HEAD") == 200
    assert status(config, path="/v1/a", method="POST") == 403
    assert status(config, path="/v2/a") == 403


def test_not_fields_and_headers() -> None:
    config = {"allow": [{"not_methods": ["DELETE"], "headers": {"x-tenant": ["acme", "beta*"]}}]}
    assert status(config, headers=[("x-tenant", "beta-1")]) == 200
    assert status(config, headers=[("x-tenant", "other")]) == 403
    assert status(config, headers=[("x-tenant", "acme")], method="DELETE") == 403
    assert status(config) == 403


def test_dot_segments_do_not_slip_past_a_path_rule() -> None:
    config = {"deny": [{"paths": ["/admin*"]}]}
    assert status(config, path="/v1/../admin") == 403
    assert status(config, path="//admin/./x") == 403
    assert normalized_path("/a/b/../c/") == "/a/c/"


def test_source_ip_rules_use_the_peer_unless_it_is_a_trusted_proxy() -> None:
    config = {"allow": [{"source_ips": ["203.0.113.0/24"]}], "trusted_proxies": ["10.0.0.0/8"]}
    forwarded = [("x-forwarded-for", "203.0.113.9, 10.1.1.1")]
    # From a trusted proxy: the right-most untrusted hop is the client.
    assert status(config, client="10.2.2.2", headers=forwarded) == 200
    # From anyone else the header is ignored: the peer is the client.
    assert status(config, client="198.51.100.7", headers=forwarded) == 403
    # A client cannot prepend a fake address in front of the real one.
    spoofed = [("x-forwarded-for", "203.0.113.9, 198.51.100.7")]
    assert status(config, client="10.2.2.2", headers=spoofed) == 403


def test_client_address_edge_cases() -> None:
    proxies = [ipaddress.ip_network("127.0.0.0/8")]
    request = HttpRequest("GET", "/", b"", [("x-forwarded-for", "garbage")], ("127.0.0.1", 1))
    assert client_address(request, proxies) is None
    only_proxies = HttpRequest("GET", "/", b"", [("x-forwarded-for", "127.0.0.2")], ("::1", 1))
    assert str(client_address(only_proxies, proxies)) == "::1"


def test_claims_and_request_principals() -> None:
    config = {
        "allow": [
            {"claims": [{"path": "groups", "values": ["admin"]}]},
            {"claims": [{"path": ["realm", "roles"], "values": ["ops"]}]},
            {"request_principals": ["https://id.test/svc-*"]},
        ]
    }
    assert status(config, claims={"groups": ["dev", "admin"]}) == 200
    assert status(config, claims={"groups": "admin"}) == 200
    assert status(config, claims={"realm": {"roles": ["ops"]}}) == 200
    assert status(config, claims={"iss": "https://id.test", "sub": "svc-billing"}) == 200
    assert status(config, claims={"groups": ["dev"], "sub": "ada"}) == 403
    assert status(config) == 403  # no verified token at all


def test_refusal_is_403_json_without_the_rule() -> None:
    request = HttpRequest("GET", "/admin", b"", [], ("192.0.2.1", 1))
    response = settle(build_filter("rbac", {"deny": [{"paths": ["/admin"]}]})(_ok)(request))
    assert response.status == 403
    assert response.body == b'{"code":7,"message":"RBAC: access denied","details":[]}'


def test_bad_cidr_is_a_config_error() -> None:
    from filters import FilterConfigError

    with pytest.raises(FilterConfigError, match="CIDR"):
        build_filter("rbac", {"trusted_proxies": ["10.0.0.0/33"]})
