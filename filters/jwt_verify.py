"""Verifying one JWT against one provider, sans-IO (the keys are given).

The outcome is :class:`Verified` (the claims) or :class:`Rejected` with a
reason safe to show the client: it names what was wrong, never the token.
The reasons follow Envoy's jwt_authn wording where it has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from filters.jwks import SUPPORTED_ALGORITHMS, KeySet


@dataclass(frozen=True, slots=True)
class Verified:
    claims: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    # True when the token names a key the set does not have: worth a refetch.
    unknown_kid: bool = False


@dataclass(frozen=True, slots=True)
class Expectations:
    issuer: str | None
    audiences: tuple[str, ...]
    algorithms: frozenset[str]
    clock_skew: float


@dataclass(frozen=True, slots=True)
class TokenHeader:
    algorithm: str
    kid: str | None
    issuer: str | None


def read_header(token: str) -> TokenHeader | Rejected:
    """The token's alg, kid and (unverified) iss, to pick the provider and key."""
    if token.count(".") != 2:
        return Rejected("Jwt is not in the form of Header.Payload.Signature")
    try:
        header = jwt.get_unverified_header(token)
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.DecodeError:
        return Rejected("Jwt header or payload is not valid base64url JSON")
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm.lower() == "none":
        return Rejected("Jwt algorithm 'none' is not allowed")
    kid = header.get("kid")
    issuer = payload.get("iss")
    return TokenHeader(
        algorithm,
        kid if isinstance(kid, str) else None,
        issuer if isinstance(issuer, str) else None,
    )


def verify(
    token: str, header: TokenHeader, keys: KeySet, expect: Expectations
) -> Verified | Rejected:
    if header.algorithm not in SUPPORTED_ALGORITHMS or header.algorithm not in expect.algorithms:
        return Rejected(f"Jwt algorithm {header.algorithm!r} is not allowed")
    if expect.issuer is not None and header.issuer != expect.issuer:
        return Rejected("Jwt issuer is not configured")
    candidates = keys.candidates(header.kid, header.algorithm)
    if not candidates:
        unknown = header.kid is not None and not keys.has_kid(header.kid)
        return Rejected("Jwks doesn't have key to match kid or alg from Jwt", unknown)
    outcome: Verified | Rejected = Rejected("Jwt verification fails")
    for key in candidates:
        outcome = _decode(token, key.jwk, header.algorithm, expect)
        if not (isinstance(outcome, Rejected) and outcome.reason == "Jwt verification fails"):
            return outcome
    return outcome


def _decode(
    token: str, key: jwt.PyJWK, algorithm: str, expect: Expectations
) -> Verified | Rejected:
    audience: Sequence[str] | None = expect.audiences or None
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[algorithm],
            audience=audience,
            issuer=expect.issuer,
            leeway=expect.clock_skew,
            options={"verify_aud": audience is not None, "require": []},
        )
    except jwt.ExpiredSignatureError:
        return Rejected("Jwt is expired")
    except jwt.ImmatureSignatureError:
        return Rejected("Jwt not yet valid")
    except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError):
        return Rejected("Audiences in Jwt are not allowed")
    except jwt.InvalidIssuerError:
        return Rejected("Jwt issuer is not configured")
    except jwt.InvalidSignatureError:
        return Rejected("Jwt verification fails")
    except jwt.InvalidTokenError as exc:
        return Rejected(f"Jwt is not valid: {type(exc).__name__}")
    if not isinstance(claims, dict):
        return Rejected("Jwt payload is not a JSON object")
    return Verified(claims)
