"""Keys and tokens for the auth tests, made in the test with cryptography and PyJWT.

keys = SigningKeys.generate()          # one key per algorithm family
token = keys.token("ES256", iss=..., aud=...)
jwks = keys.jwks()                     # the public half, as a JWKS document
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://id.meshgate.test"
AUDIENCE = "shop"
HMAC_SECRET = b"a-shared-secret-of-at-least-32-bytes!!"
ALGORITHMS = ("RS256", "RS384", "PS256", "ES256", "ES384", "EdDSA", "HS256")


@dataclass
class SigningKeys:
    """Private keys by kid; ``kid_for`` says which kid signs each algorithm."""

    private: dict[str, Any] = field(default_factory=dict)
    kid_for: dict[str, str] = field(default_factory=dict)

    @classmethod
    def generate(cls, suffix: str = "1") -> SigningKeys:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        keys = cls()
        keys.private = {
            f"rsa-{suffix}": rsa_key,
            f"p256-{suffix}": ec.generate_private_key(ec.SECP256R1()),
            f"p384-{suffix}": ec.generate_private_key(ec.SECP384R1()),
            f"ed-{suffix}": ed25519.Ed25519PrivateKey.generate(),
            f"hmac-{suffix}": HMAC_SECRET,
        }
        keys.kid_for = {
            "RS256": f"rsa-{suffix}",
            "RS384": f"rsa-{suffix}",
            "PS256": f"rsa-{suffix}",
            "ES256": f"p256-{suffix}",
            "ES384": f"p384-{suffix}",
            "EdDSA": f"ed-{suffix}",
            "HS256": f"hmac-{suffix}",
        }
        return keys

    def token(self, algorithm: str = "RS256", *, kid: str | None = "", **claims: Any) -> str:
        now = int(time.time())
        # A day: tests build some tokens at collection, and the whole suite runs
        # for more than a few minutes before they are used.
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ada", "iat": now, "exp": now + 86400}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        key_id = self.kid_for[algorithm] if kid == "" else kid
        headers = {"kid": key_id} if key_id is not None else {}
        return jwt.encode(
            payload, self.private[self.kid_for[algorithm]], algorithm=algorithm, headers=headers
        )

    def jwks(self, include_hmac: bool = True) -> dict[str, Any]:
        keys = []
        for kid, key in self.private.items():
            if isinstance(key, bytes):
                if not include_hmac:
                    continue
                jwk = json.loads(jwt.algorithms.HMACAlgorithm.to_jwk(key))
            elif isinstance(key, rsa.RSAPrivateKey):
                jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            elif isinstance(key, ec.EllipticCurvePrivateKey):
                jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
            else:
                jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
            jwk["kid"] = kid
            keys.append(jwk)
        return {"keys": keys}

    def rsa_public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        key = self.private[self.kid_for["RS256"]]
        return bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def unsigned_token(**claims: Any) -> str:
    """An ``alg: none`` token, as an attacker would send it."""
    import base64

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 86400, **claims}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."
