"""jwt_auth: tokens signed in the test with each algorithm, and every way a
token must be refused (expired, not yet valid, wrong issuer, audience or
signature, alg none, HS/RS confusion), against a JWKS file."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from filters import FilterConfigError, build_filter
from filters.http import HttpRequest, HttpResponse
from tests.support.awaiting import settle
from tests.support.jose import ALGORITHMS, AUDIENCE, ISSUER, SigningKeys, unsigned_token

KEYS = SigningKeys.generate()
OTHER_KEYS = SigningKeys.generate("other")


class Upstream:
    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return HttpResponse(200, body=b"ok")


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps(KEYS.jwks()))
    return path


def provider(jwks_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "corp",
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "jwks": {"file": str(jwks_file)},
        **extra,
    }


def run(
    config: dict[str, Any], headers: list[tuple[str, str]], query: bytes = b""
) -> tuple[HttpResponse, Upstream]:
    upstream = Upstream()
    handler = build_filter("jwt_auth", config)(upstream)
    request = HttpRequest("GET", "/v1/items", query, headers, ("127.0.0.1", 1))
    return settle(handler(request)), upstream


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_is_accepted(jwks_file: Path, algorithm: str) -> None:
    config = {"providers": [provider(jwks_file, forward_claims={"header": "x-jwt-claims"})]}
    response, upstream = run(config, bearer(KEYS.token(algorithm, sub=f"user-{algorithm}")))

    assert response.status == 200
    (forwarded,) = upstream.requests
    encoded = forwarded.headers["x-jwt-claims"]
    claims = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert claims["sub"] == f"user-{algorithm}"
    assert forwarded.attributes["jwt_claims"]["corp"]["sub"] == f"user-{algorithm}"
    assert "authorization" not in forwarded.headers  # forward: false removes the token


now = int(time.time())
REFUSALS = {
    "expired": (KEYS.token(exp=now - 3600), "Jwt is expired"),
    "not yet valid": (KEYS.token(nbf=now + 3600), "Jwt not yet valid"),
    "wrong issuer": (KEYS.token(iss="https://evil.test"), "Jwt issuer is not configured"),
    "no issuer": (KEYS.token(iss=None), "Jwt issuer is not configured"),
    "wrong audience": (KEYS.token(aud="other"), "Audiences in Jwt are not allowed"),
    "no audience": (KEYS.token(aud=None), "Audiences in Jwt are not allowed"),
    "signed by another key, same kid": (
        OTHER_KEYS.token("ES256", kid="p256-1"),
        "Jwt verification fails",
    ),
    "unknown kid": (
        OTHER_KEYS.token("ES256"),
        "Jwks doesn't have key to match kid or alg from Jwt",
    ),
    "alg none": (unsigned_token(), "Jwt algorithm 'none' is not allowed"),
    "garbage": ("not-a-jwt", "Jwt is not in the form of Header.Payload.Signature"),
    "HS256 signed with the RSA public key (alg confusion)": (
        # The attack: the verifier's RSA public key used as an HMAC secret.
        # PyJWT refuses to sign with a PEM as HMAC key, so sign by hand.
        None,
        "Jwks doesn't have key to match kid or alg from Jwt",
    ),
}


def confused_token() -> str:
    import hashlib
    import hmac

    def part(data: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    header = part({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    payload = part({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 86400})
    signing_input = header + b"." + payload
    signature = hmac.new(KEYS.rsa_public_pem(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


@pytest.mark.parametrize("case", REFUSALS.keys())
def test_bad_tokens_are_refused_with_401_and_the_reason(jwks_file: Path, case: str) -> None:
    token, reason = REFUSALS[case]
    token = token or confused_token()
    response, upstream = run({"providers": [provider(jwks_file)]}, bearer(token))

    assert response.status == 401
    assert upstream.requests == []
    body = json.loads(response.body)
    assert body == {"code": 16, "message": reason, "details": []}
    challenge = dict(response.headers)["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert token not in response.body.decode() and token not in challenge


def test_clock_skew_accepts_a_token_just_expired(jwks_file: Path) -> None:
    token = KEYS.token(exp=int(time.time()) - 30)
    lenient, _ = run({"providers": [provider(jwks_file, clock_skew="60s")]}, bearer(token))
    strict, _ = run({"providers": [provider(jwks_file, clock_skew=0)]}, bearer(token))
    assert (lenient.status, strict.status) == (200, 401)


def test_algorithms_restrict_what_a_provider_accepts(jwks_file: Path) -> None:
    config = {"providers": [provider(jwks_file, algorithms=["ES256"])]}
    assert run(config, bearer(KEYS.token("ES256")))[0].status == 200
    refused, _ = run(config, bearer(KEYS.token("RS256")))
    assert json.loads(refused.body)["message"] == "Jwt algorithm 'RS256' is not allowed"


def test_missing_token_is_401_without_error_code_unless_allowed(jwks_file: Path) -> None:
    missing, _ = run({"providers": [provider(jwks_file)]}, [])
    assert missing.status == 401
    assert dict(missing.headers)["www-authenticate"] == 'Bearer realm="meshgate"'
    allowed, upstream = run(
        {"providers": [provider(jwks_file)], "require": {"allow_missing": True}}, []
    )
    assert allowed.status == 200 and len(upstream.requests) == 1
    bad_still_refused, _ = run(
        {"providers": [provider(jwks_file)], "require": {"allow_missing": True}},
        bearer(KEYS.token(exp=now - 3600)),
    )
    assert bad_still_refused.status == 401


def test_token_from_query_or_cookie(jwks_file: Path) -> None:
    config = {
        "providers": [provider(jwks_file, **{"from": [{"query": "access_token"}, {"cookie": "s"}]})]
    }
    token = KEYS.token()
    by_query, upstream = run(config, [], query=f"access_token={token}&page=2".encode())
    assert by_query.status == 200
    assert upstream.requests[0].query_string == b"page=2"  # the token is not forwarded
    by_cookie, _ = run(config, [("cookie", f"a=b; s={token}")])
    assert by_cookie.status == 200
    in_header_only, _ = run(config, bearer(token))
    assert in_header_only.status == 401


def test_any_and_all_of_providers(jwks_file: Path, tmp_path: Path) -> None:
    other_jwks = tmp_path / "other.json"
    other_jwks.write_text(json.dumps(OTHER_KEYS.jwks()))
    corp = provider(jwks_file)
    partner = {
        "name": "partner",
        "issuer": "https://partner.test",
        "jwks": {"file": str(other_jwks)},
        "from": [{"header": "x-partner-token"}],
    }
    corp_token = KEYS.token()
    partner_token = OTHER_KEYS.token("ES384", iss="https://partner.test")
    both = [*bearer(corp_token), ("x-partner-token", partner_token)]

    any_config = {"providers": [corp, partner], "require": {"any": ["corp", "partner"]}}
    assert run(any_config, bearer(corp_token))[0].status == 200
    assert run(any_config, [("x-partner-token", partner_token)])[0].status == 200

    all_config = {"providers": [corp, partner], "require": {"all": ["corp", "partner"]}}
    assert run(all_config, bearer(corp_token))[0].status == 401
    response, upstream = run(all_config, both)
    assert response.status == 200
    assert set(upstream.requests[0].attributes["jwt_claims"]) == {"corp", "partner"}


def test_forged_claim_headers_are_removed(jwks_file: Path) -> None:
    config = {
        "providers": [
            provider(
                jwks_file,
                forward_claims={"header": "x-jwt-claims"},
                claims_to_headers={"sub": "x-user"},
            )
        ],
        "require": {"allow_missing": True},
    }
    forged = [("x-jwt-claims", "eyJzdWIiOiJyb290In0"), ("x-user", "root")]
    _, upstream = run(config, forged)
    assert "x-jwt-claims" not in upstream.requests[0].headers
    assert "x-user" not in upstream.requests[0].headers
    _, upstream = run(config, [*forged, *bearer(KEYS.token(sub="ada"))])
    assert upstream.requests[0].headers["x-user"] == "ada"


def test_config_errors() -> None:
    with pytest.raises(FilterConfigError, match="https"):
        build_filter(
            "jwt_auth",
            {"providers": [{"name": "a", "issuer": None, "jwks": {"url": "http://x/jwks"}}]},
        )
    with pytest.raises(FilterConfigError, match="none"):
        build_filter(
            "jwt_auth",
            {
                "providers": [
                    {"name": "a", "issuer": None, "jwks": {"file": "x"}, "algorithms": ["none"]}
                ]
            },
        )
    with pytest.raises(FilterConfigError, match="No such file"):
        build_filter(
            "jwt_auth", {"providers": [{"name": "a", "issuer": None, "jwks": {"file": "/nope"}}]}
        )


def test_a_rewritten_jwks_file_is_picked_up_and_a_broken_one_ignored(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(KEYS.jwks()))
    handler = build_filter("jwt_auth", {"providers": [provider(path)]})(Upstream())
    rotated = OTHER_KEYS.token("ES256", iss=ISSUER)

    async def scenario() -> list[int]:
        statuses = []
        request = HttpRequest("GET", "/", b"", bearer(rotated))
        statuses.append((await handler(request)).status)
        path.write_text(json.dumps(OTHER_KEYS.jwks()))
        import os

        os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
        await asyncio.sleep(1.05)
        statuses.append((await handler(HttpRequest("GET", "/", b"", bearer(rotated)))).status)
        path.write_text("{broken")
        os.utime(path, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
        await asyncio.sleep(1.05)
        statuses.append((await handler(HttpRequest("GET", "/", b"", bearer(rotated)))).status)
        return statuses

    assert asyncio.run(scenario()) == [401, 200, 200]


def test_pyjwt_refuses_alg_none_even_if_asked() -> None:
    # A guard on the library itself: decoding with no algorithm list must fail.
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(unsigned_token(), key="", algorithms=["HS256"])


def test_verified_cache_forgets_expired_tokens_and_old_key_sets() -> None:
    from filters.jwks import KeySet
    from filters.jwt_auth import VerifiedCache

    clock = [1000.0]
    cache = VerifiedCache(2, clock=lambda: clock[0])
    keys, rotated = KeySet(), KeySet()
    cache.put("a", keys, {"sub": "a", "exp": 1010})
    assert cache.get("a", keys, skew=5) == {"sub": "a", "exp": 1010}
    assert cache.get("a", rotated, skew=5) is None  # checked against another set
    cache.put("a", keys, {"sub": "a", "exp": 1010})
    clock[0] = 1016.0
    assert cache.get("a", keys, skew=5) is None  # past exp + skew
    for token in ("b", "c", "d"):
        cache.put(token, keys, {"sub": token})
    assert cache.get("b", keys, skew=0) is None  # evicted: size 2
    assert cache.get("d", keys, skew=0) == {"sub": "d"}


def test_a_cached_token_is_refused_once_expired(jwks_file: Path) -> None:
    token = KEYS.token(exp=int(time.time()) + 2)
    handler = build_filter("jwt_auth", {"providers": [provider(jwks_file, clock_skew=0)]})(
        Upstream()
    )

    async def twice() -> tuple[int, int]:
        first = await handler(HttpRequest("GET", "/", b"", bearer(token)))
        await asyncio.sleep(3.1)
        second = await handler(HttpRequest("GET", "/", b"", bearer(token)))
        return first.status, second.status

    assert settle(twice()) == (200, 401)
