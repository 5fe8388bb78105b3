"""The auth filters on the in-process request path (GatewayApp over httpx's
ASGI transport, a fake upstream), with the real peers they call: the HTTPS
JWKS endpoint and the grpcio Authorization service. The same peers as
test_auth_filters.py, without a gateway process, so failures point at the
filter rather than at the process around it."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from filters.jwks import UrlJwks
from gateway.upstream.call import Call, Reply
from tests.support.authz_server import AuthorizationService, authorization_server
from tests.support.in_process import InProcessGateway
from tests.support.jose import AUDIENCE, ISSUER, SigningKeys
from tests.support.jwks_server import JwksEndpoint, jwks_server
from tests.unit.test_request_path import BOOKSTORE, TRANSCODE, config

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

KEYS = SigningKeys.generate("inproc")
ROTATED = SigningKeys.generate("inproc-rotated")
GET_SHELF = f"/{BOOKSTORE}/GetShelf"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def jwks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwksEndpoint]:
    with jwks_server(tmp_path_factory.mktemp("idp"), KEYS.jwks()) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def authz() -> Iterator[tuple[str, AuthorizationService]]:
    with authorization_server() as running:
        yield running


async def empty_reply(address: str, call: Call, timeout: float | None) -> Reply:
    return Reply(b"")


def jwt_filters(jwks: JwksEndpoint, refresh: str = "10m") -> str:
    provider = {
        "name": "corp",
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "jwks": {"url": jwks.url, "ca": str(jwks.tls.ca), "refresh": refresh},
        "claims_to_headers": {"sub": "x-user"},
    }
    return json.dumps([{"name": "jwt_auth", "config": {"providers": [provider]}}])


async def test_jwt_auth_in_process_with_an_https_jwks(jwks: JwksEndpoint) -> None:
    jwks.document = KEYS.jwks()
    gateway = InProcessGateway(config(TRANSCODE, filters=jwt_filters(jwks)), empty_reply)
    async with gateway.client() as client:
        missing = await client.post(GET_SHELF, json={"shelf": "1"})
        ok = await client.post(
            GET_SHELF,
            json={"shelf": "1"},
            headers={"authorization": f"Bearer {KEYS.token('PS256', sub='ada')}"},
        )
        wrong_audience = await client.post(
            GET_SHELF,
            json={"shelf": "1"},
            headers={"authorization": f"Bearer {KEYS.token(aud='billing')}"},
        )
    assert missing.status_code == 401
    assert ok.status_code == 200
    assert wrong_audience.status_code == 401
    assert wrong_audience.json()["message"] == "Audiences in Jwt are not allowed"
    (seen,) = gateway.calls
    metadata = dict(seen.call.metadata)
    assert metadata["x-user"] == "ada" and "authorization" not in metadata


async def test_a_rotated_key_is_fetched_on_its_unknown_kid(jwks: JwksEndpoint) -> None:
    jwks.document = KEYS.jwks()
    clock = [0.0]
    source = UrlJwks(jwks.url, refresh=600.0, timeout=5.0, ca=jwks.tls.ca, clock=lambda: clock[0])
    first = await source.current()
    assert first.has_kid("rsa-inproc")
    jwks.document = ROTATED.jwks()
    # Within the refresh period the cached set is served without a fetch...
    fetches = jwks.fetches
    assert (await source.current()) is first and jwks.fetches == fetches
    # ...an unknown kid right after a fetch waits for the cool-down...
    assert (await source.refetch()) is first and jwks.fetches == fetches
    # ...and then asks for the current set.
    clock[0] = 6.0
    rotated = await source.refetch()
    assert rotated.has_kid("rsa-inproc-rotated") and not rotated.has_kid("rsa-inproc")
    jwks.document = KEYS.jwks()


# anyio's connect_tcp can leave a happy-eyeballs coroutine unclosed when a
# fetch fails (see the unknown-CA test below); the fetch itself fails cleanly.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_failed_fetch_keeps_the_last_good_set(jwks: JwksEndpoint) -> None:
    jwks.document, jwks.failing = KEYS.jwks(), False
    clock = [0.0]
    source = UrlJwks(jwks.url, refresh=1.0, timeout=5.0, ca=jwks.tls.ca, clock=lambda: clock[0])
    good = await source.current()
    jwks.failing = True
    clock[0] = 10.0
    fetches = jwks.fetches
    await source.current()  # starts a background refresh, serves the cache
    for _ in range(100):
        if jwks.fetches > fetches and source._fetching is not None and source._fetching.done():
            break
        await asyncio.sleep(0.05)
    assert jwks.fetches > fetches
    assert (await source.current()) is good
    jwks.failing = False


# anyio's connect_tcp leaves one of its happy-eyeballs coroutines unclosed when
# the TLS handshake fails; the fetch itself fails cleanly (the test's point).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_jwks_server_with_an_unknown_ca_is_not_trusted(
    jwks: JwksEndpoint, tmp_path: Path
) -> None:
    source = UrlJwks(jwks.url, refresh=600.0, timeout=5.0)  # the system CAs only
    keys = await source.current()
    assert keys.keys == ()
    del source
    gc.collect()  # report anyio's leftover coroutine here, where it is expected


async def test_ext_authz_in_process(authz: tuple[str, AuthorizationService]) -> None:
    target, service = authz
    filters = json.dumps([{"name": "ext_authz", "config": {"target": target, "timeout": "2s"}}])
    gateway = InProcessGateway(config(TRANSCODE, filters=filters), empty_reply)
    async with gateway.client() as client:
        allowed = await client.post(
            GET_SHELF + "?x=1", json={"shelf": "1"}, headers={"x-user": "alice"}
        )
        denied = await client.post(GET_SHELF, json={"shelf": "1"}, headers={"x-user": "bob"})
        anonymous = await client.post(GET_SHELF, json={"shelf": "1"})
    assert allowed.status_code == 200 and allowed.headers["x-authz"] == "ok"
    assert denied.status_code == 403 and denied.json()["message"] == "bob may not"
    assert anonymous.status_code == 401
    (seen,) = gateway.calls
    assert ("x-authz-user", "alice") in seen.call.metadata
    check = service.checks[-3].attributes
    assert check.request.http.path == GET_SHELF + "?x=1"
    assert check.source.address.socket_address.address == "127.0.0.9"
