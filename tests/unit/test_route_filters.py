"""Per-route filter chains: routes[].filters overrides, disables or adds a
listener filter for one route; the chain runs after route matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, ConfigIssue, FilterConfig, RouteFilterConfig
from gateway.filter_chain import route_filter_specs
from gateway.snapshot import compile_snapshot
from gateway.upstream.call import Call, Reply
from tests.support.in_process import InProcessGateway
from tests.unit.test_request_path import BOOKSTORE, config

pytestmark = pytest.mark.anyio
KEYS = Path(__file__).resolve().parents[1] / "data" / "auth" / "contract-api-keys.txt"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def specs(route: list[dict]) -> tuple[list[tuple[str, dict]], list[ConfigIssue]]:
    listener = [
        FilterConfig(name="cors", config={"allow_origins": ["*"]}),
        FilterConfig(name="rate_limit", config={"requests_per_second": 5, "key": "client_ip"}),
    ]
    issues: list[ConfigIssue] = []
    found = route_filter_specs(
        listener,
        [RouteFilterConfig.model_validate(r) for r in route],
        ("listeners", 0, "filters"),
        ("listeners", 0, "routes", 0, "filters"),
        issues,
    )
    return [(s.name, s.config) for s in found], issues


def test_a_route_without_changes_runs_the_listener_chain() -> None:
    found, issues = specs([])
    assert [name for name, _ in found] == ["cors", "rate_limit"]
    assert issues == []


def test_override_replaces_named_keys_and_keeps_the_position() -> None:
    found, _ = specs([{"name": "rate_limit", "config": {"requests_per_second": 50}}])
    assert found[1] == ("rate_limit", {"requests_per_second": 50, "key": "client_ip"})


def test_disable_drops_and_unknown_names_are_added_after() -> None:
    found, issues = specs([{"name": "cors", "disabled": True}, {"name": "headers", "config": {}}])
    assert [name for name, _ in found] == ["rate_limit", "headers"]
    assert issues == []


def test_disabling_a_filter_the_listener_lacks_is_an_error() -> None:
    _, issues = specs([{"name": "jwt_auth", "disabled": True}])
    assert issues[0].path == ("listeners", 0, "routes", 0, "filters", 0, "disabled")


def test_disabled_with_config_is_rejected_by_the_model() -> None:
    with pytest.raises(ValueError, match="disabled filter takes no config"):
        RouteFilterConfig.model_validate({"name": "cors", "disabled": True, "config": {}})


ROUTES = f"""      - name: health
        match: {{path: /{BOOKSTORE}/GetShelf}}
        transcode: {{services: [{BOOKSTORE}], auto_mapping: true}}
        cluster: books
        filters: [{{name: api_key, disabled: true}}]
      - name: admin
        match: {{path: /{BOOKSTORE}/ArchiveShelf}}
        transcode: {{services: [{BOOKSTORE}], auto_mapping: true}}
        cluster: books
        filters:
          - {{name: rbac, config: {{allow: [{{headers: {{x-role: [admin]}}}}]}}}}
      - match: {{prefix: /}}
        transcode: {{services: [{BOOKSTORE}], auto_mapping: true}}
        cluster: books
"""
FILTERS = f"[{{name: api_key, config: {{keys_file: {KEYS}}}}}]"


async def test_one_listener_two_routes_two_kinds_of_auth() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        return Reply(b"")

    gateway = InProcessGateway(config(ROUTES, filters=FILTERS), handler)
    async with gateway.client() as client:
        open_route = await client.post(f"/{BOOKSTORE}/GetShelf", json={})
        keyed_missing = await client.post(f"/{BOOKSTORE}/GetBook", json={})
        keyed = await client.post(
            f"/{BOOKSTORE}/GetBook", json={}, headers={"x-api-key": "contract-key"}
        )
        admin_no_role = await client.post(
            f"/{BOOKSTORE}/ArchiveShelf", json={}, headers={"x-api-key": "contract-key"}
        )
        admin_no_key = await client.post(
            f"/{BOOKSTORE}/ArchiveShelf", json={}, headers={"x-role": "admin"}
        )
        admin = await client.post(
            f"/{BOOKSTORE}/ArchiveShelf",
            json={},
            headers={"x-api-key": "contract-key", "x-role": "admin"},
        )
    assert open_route.status_code == 200
    assert keyed_missing.status_code == 401
    assert keyed.status_code == 200
    assert admin_no_role.status_code == 403
    assert admin_no_role.json()["message"] == "RBAC: access denied"
    assert admin_no_key.status_code == 401  # the listener's api_key runs first
    assert admin.status_code == 200
    assert len(gateway.calls) == 3
    # The key is removed before the upstream sees the request.
    assert all(name != "x-api-key" for seen in gateway.calls for name, _ in seen.call.metadata)


async def test_unmatched_requests_run_the_listener_filters() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        raise AssertionError("no call expected")

    routes = f"""      - match: {{path: /only}}
        transcode: {{services: [{BOOKSTORE}], auto_mapping: true}}
        cluster: books
"""
    gateway = InProcessGateway(config(routes, filters=FILTERS), handler)
    async with gateway.client() as client:
        without_key = await client.get("/nowhere")
        with_key = await client.get("/nowhere", headers={"x-api-key": "contract-key"})
    assert without_key.status_code == 401
    assert with_key.status_code == 404


def test_routes_with_the_same_config_share_one_instance_across_reloads() -> None:
    routes = ROUTES.replace(
        "filters: [{name: api_key, disabled: true}]",
        f"filters: [{{name: api_key, config: {{keys_file: {KEYS}}}}}]",
    )
    gateway = InProcessGateway(config(routes, filters=FILTERS), lambda *a: None)  # type: ignore[arg-type,return-value]
    first = gateway.snapshot
    (listener,) = first.listeners
    health, admin, rest = (route for _, route in listener.routes.entries)
    assert health.filters[0] is listener.filters[0] is rest.filters[0] is admin.filters[0]
    assert admin.filter_names == ("api_key", "rbac")
    again = compile_snapshot(gateway.loaded, first.sources, previous=first)
    assert again.listeners[0].filters[0] is listener.filters[0]


def test_a_bad_route_filter_config_is_reported_at_its_place() -> None:
    routes = ROUTES.replace("x-role: [admin]", "x-role: admin")
    with pytest.raises(ConfigError) as raised:
        InProcessGateway(config(routes, filters=FILTERS), lambda *a: None)  # type: ignore[arg-type,return-value]
    assert "listeners.public" in str(raised.value) or "routes[1].filters[0]" in str(raised.value)


async def test_jwt_requirement_overridden_per_route(tmp_path: Path) -> None:
    import json

    from tests.support.jose import ISSUER, SigningKeys

    keys = SigningKeys.generate("route")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    provider = {"name": "corp", "issuer": ISSUER, "jwks": {"file": str(jwks)}}
    filters = json.dumps([{"name": "jwt_auth", "config": {"providers": [provider]}}])
    routes = f"""      - match: {{path: /{BOOKSTORE}/GetShelf}}
        transcode: {{services: [{BOOKSTORE}], auto_mapping: true}}
        cluster: books
        filters: [{{name: jwt_auth, config: {{require: {{allow_missing: true}}}}}}]
      - match: {{prefix: /}}
        transcode: {{services: [{BOOKSTORE}], auto_mapping: true}}
        cluster: books
"""

    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        return Reply(b"")

    gateway = InProcessGateway(config(routes, filters=filters), handler)
    expired = {"authorization": f"Bearer {keys.token(exp=1)}"}
    async with gateway.client() as client:
        optional = await client.post(f"/{BOOKSTORE}/GetShelf", json={})
        optional_bad = await client.post(f"/{BOOKSTORE}/GetShelf", json={}, headers=expired)
        required = await client.post(f"/{BOOKSTORE}/GetBook", json={})
    assert optional.status_code == 200
    assert optional_bad.status_code == 401  # allow_missing, not allow_failed
    assert required.status_code == 401
