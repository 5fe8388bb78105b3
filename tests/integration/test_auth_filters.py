"""The auth filters through a real meshgate process, in front of the tests'
own grpcio echo backend, with real peers for what the filters call: an HTTPS
JWKS endpoint (a test CA), a grpcio Authorization service, and the example
third-party filter installed as a package of its own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.authz_server import AuthorizationService, authorization_server
from tests.support.errors import error_body
from tests.support.example_filter import ensure_example_filter
from tests.support.gateway import run_gateway
from tests.support.jose import AUDIENCE, ISSUER, SigningKeys
from tests.support.jwks_server import JwksEndpoint, jwks_server
from tests.support.net import free_port
from tests.support.toolchain import missing

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"
PING = "/meshgate.test.v1.EchoService/Ping"
API_KEY = "integration-key"
KEYS = SigningKeys.generate("gw")
ROTATED = SigningKeys.generate("rotated")


def route(**extra: Any) -> dict[str, Any]:
    return {
        "match": {"prefix": "/"},
        "transcode": {"auto_mapping": True},
        "cluster": "echo",
        **extra,
    }


def listener(name: str, filters: list[dict[str, Any]], routes: list[dict[str, Any]]) -> dict:
    return {
        "name": name,
        "address": f"127.0.0.1:{free_port()}",
        "filters": filters,
        "routes": routes,
    }


@pytest.fixture(scope="module")
def jwks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwksEndpoint]:
    with jwks_server(tmp_path_factory.mktemp("idp"), KEYS.jwks()) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def authz() -> Iterator[tuple[str, AuthorizationService]]:
    with authorization_server() as running:
        yield running


@pytest.fixture(scope="module")
def gateway(
    echo_set: Path,
    backend_port: int,
    jwks: JwksEndpoint,
    authz: tuple[str, AuthorizationService],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    reason = ensure_example_filter()
    if reason is not None:
        missing(reason)
    jwt_filter: dict[str, Any] = {
        "name": "jwt_auth",
        "config": {
            "providers": [
                {
                    "name": "corp",
                    "issuer": ISSUER,
                    "audiences": [AUDIENCE],
                    "jwks": {"url": jwks.url, "ca": str(jwks.tls.ca), "refresh": "1s"},
                    "forward_claims": {"header": "x-jwt-claims"},
                    "claims_to_headers": {"sub": "x-user"},
                }
            ]
        },
    }
    authz_target = authz[0]
    listeners = [
        listener(
            "jwt",
            [jwt_filter],
            [
                route(
                    match={"path": PING},
                    filters=[{"name": "jwt_auth", "disabled": True}],
                ),
                route(),
            ],
        ),
        listener(
            "rbac",
            [
                {
                    **jwt_filter,
                    "config": {**jwt_filter["config"], "require": {"allow_missing": True}},
                },
                {
                    "name": "rbac",
                    "config": {"allow": [{"claims": [{"path": "groups", "values": ["admin"]}]}]},
                },
            ],
            [route()],
        ),
        listener(
            "apikey",
            [{"name": "api_key", "config": {"keys_env": "MESHGATE_TEST_API_KEYS"}}],
            [route()],
        ),
        listener(
            "authz",
            [{"name": "ext_authz", "config": {"target": authz_target, "timeout": "300ms"}}],
            [
                route(
                    match={"path": PING},
                    filters=[
                        {
                            "name": "ext_authz",
                            "config": {
                                "target": f"127.0.0.1:{free_port()}",
                                "failure_mode_allow": True,
                            },
                        }
                    ],
                ),
                route(),
            ],
        ),
        listener(
            "plain",
            [
                {"name": "stamp", "config": {"value": "plugin"}},
                {
                    "name": "headers",
                    "config": {"request": {"set": {"authorization": "Bearer s3cr3t-t0ken"}}},
                },
            ],
            [
                route(),
            ],
        ),
        listener(
            "dead",
            [],
            [{"match": {"prefix": "/"}, "transcode": {"auto_mapping": True}, "cluster": "dead"}],
        ),
    ]
    config = {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": listeners,
        "clusters": [
            {"name": "echo", "endpoints": [{"address": f"127.0.0.1:{backend_port}"}]},
            {"name": "dead", "endpoints": [{"address": f"127.0.0.1:{free_port()}"}]},
        ],
    }
    env = {"MESHGATE_TEST_API_KEYS": f"other,svc={API_KEY}"}
    with run_gateway(config, tmp_path_factory.mktemp("gw"), env=env) as running:
        urls = {entry["name"]: f"http://{entry['address']}" for entry in listeners}
        urls["admin"] = running.admin_url
        yield urls


def echo(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        url + ECHO, json={"message": "hi", "echo_metadata": True}, headers=headers or {}, timeout=10
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def poll(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_jwt_required_on_one_route_and_disabled_on_another(gateway: dict[str, str]) -> None:
    url = gateway["jwt"]
    assert httpx.post(url + PING, json={}).status_code == 200
    missing_token = echo(url)
    assert missing_token.status_code == 401
    assert missing_token.headers["www-authenticate"] == 'Bearer realm="meshgate"'
    assert error_body(missing_token) == {"code": 16, "message": "Jwt is missing", "details": []}


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES384", "EdDSA"])
def test_a_verified_token_reaches_the_backend_with_its_claims(
    gateway: dict[str, str], algorithm: str
) -> None:
    token = KEYS.token(algorithm, sub="ada")
    response = echo(gateway["jwt"], {**bearer(token), "x-user": "forged"})
    assert response.status_code == 200, response.text
    metadata = response.json()["metadata"]
    assert metadata["x-user"] == "ada"
    assert "x-jwt-claims" in metadata
    assert "authorization" not in metadata


def test_an_expired_token_is_refused_without_echoing_it(gateway: dict[str, str]) -> None:
    token = KEYS.token(exp=int(time.time()) - 3600)
    response = echo(gateway["jwt"], bearer(token))
    assert response.status_code == 401
    assert response.json()["message"] == "Jwt is expired"
    assert token not in response.text


def test_jwks_rotation_and_last_good_set_on_fetch_failure(
    gateway: dict[str, str], jwks: JwksEndpoint
) -> None:
    url = gateway["jwt"]
    old, new = KEYS.token("ES256"), ROTATED.token("ES256")
    assert echo(url, bearer(old)).status_code == 200
    assert echo(url, bearer(new)).status_code == 401
    jwks.document = ROTATED.jwks()
    assert poll(lambda: echo(url, bearer(new)).status_code == 200)
    assert poll(lambda: echo(url, bearer(old)).status_code == 401)
    jwks.failing = True
    fetches = jwks.fetches

    def served_while_failing() -> bool:
        # Requests drive the refresh; each must still pass on the last good set.
        assert echo(url, bearer(new)).status_code == 200
        return jwks.fetches > fetches + 1

    assert poll(served_while_failing)
    jwks.failing = False
    jwks.document = KEYS.jwks()


def test_rbac_on_jwt_claims(gateway: dict[str, str], jwks: JwksEndpoint) -> None:
    jwks.document, jwks.failing = KEYS.jwks(), False
    url = gateway["rbac"]
    assert echo(url).status_code == 403
    assert echo(url, bearer(KEYS.token(groups=["dev"]))).status_code == 403
    admin = echo(url, bearer(KEYS.token(groups=["dev", "admin"])))
    assert admin.status_code == 200
    assert admin.json()["request"]["message"] == "hi"


def test_api_key_from_the_environment(gateway: dict[str, str]) -> None:
    url = gateway["apikey"]
    assert echo(url).status_code == 401
    assert echo(url, {"x-api-key": "guess"}).status_code == 403
    response = echo(url, {"x-api-key": API_KEY})
    assert response.status_code == 200
    assert "x-api-key" not in response.json()["metadata"]


def test_ext_authz_allows_denies_and_times_out(
    gateway: dict[str, str], authz: tuple[str, AuthorizationService]
) -> None:
    url = gateway["authz"]
    allowed = echo(url, {"x-user": "alice", "x-remove-me": "1"})
    assert allowed.status_code == 200
    assert allowed.headers["x-authz"] == "ok"
    metadata = allowed.json()["metadata"]
    assert metadata["x-authz-user"] == "alice"
    assert "x-remove-me" not in metadata
    check = authz[1].checks[-1].attributes.request.http
    assert (check.method, check.path) == ("POST", ECHO)

    denied = echo(url, {"x-user": "bob"})
    assert denied.status_code == 403
    assert denied.headers["x-denied-by"] == "authz"
    assert denied.json()["message"] == "bob may not"
    assert echo(url, {}).status_code == 401
    slow = echo(url, {"x-user": "slow"})
    assert slow.status_code == 503
    assert slow.json()["message"] == "authorization service unavailable"
    # The Ping route's own ext_authz points nowhere and fails open.
    assert httpx.post(url + PING, json={}).status_code == 200


def test_plugin_filter_from_an_installed_package(gateway: dict[str, str]) -> None:
    response = echo(gateway["plain"])
    assert response.status_code == 200
    assert response.headers["x-stamp"] == "plugin"
    assert response.json()["metadata"]["x-stamp"] == "plugin"


def test_unreachable_backend_does_not_reveal_its_address(gateway: dict[str, str]) -> None:
    response = echo(gateway["dead"])
    assert response.status_code == 503
    assert error_body(response) == {"code": 14, "message": "upstream unavailable", "details": []}


def test_config_dump_redacts_secrets(gateway: dict[str, str]) -> None:
    dump = httpx.get(gateway["admin"] + "/config_dump").text
    assert "s3cr3t-t0ken" not in dump
    assert "[redacted]" in dump
    assert "MESHGATE_TEST_API_KEYS" in dump  # where a secret is stays visible
