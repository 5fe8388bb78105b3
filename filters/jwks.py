"""JSON Web Key Sets: parsing (sans-IO) and the sources that keep one current.

* :func:`parse_jwks` turns a JWKS document into :class:`KeySet`, skipping keys
  that cannot verify signatures (``use: enc``, unknown types) rather than
  failing the whole set, as identity providers publish mixed sets.
* :class:`FileJwks` reads a file when built and again when its modification
  time changes (checked at most once a second), keeping the last good set if
  the new content is broken.
* :class:`UrlJwks` fetches over HTTPS with httpx: the first request waits for
  the first fetch, later ones are served from the cache while a background
  task refreshes it every ``refresh``; a token whose ``kid`` is unknown asks
  for a refetch (at most once per cool-down), which is how a key rotation is
  picked up before the next scheduled refresh. A failed fetch keeps the last
  good set.

Which algorithms a key may verify follows from its type (and curve), so an
RSA public key can never be used as an HMAC secret (the HS/RS confusion).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

log = logging.getLogger(f"meshgate.{__name__}")

# The algorithms each key type can verify; "none" is in none of them.
ALGORITHMS_BY_KEY: Mapping[tuple[str, str | None], frozenset[str]] = {
    ("RSA", None): frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
    ("EC", "P-521"): frozenset({"ES512"}),
    ("OKP", "Ed25519"): frozenset({"EdDSA"}),
    ("OKP", "Ed448"): frozenset({"EdDSA"}),
    ("oct", None): frozenset({"HS256", "HS384", "HS512"}),
}
SUPPORTED_ALGORITHMS = frozenset().union(*ALGORITHMS_BY_KEY.values())
MAX_JWKS_BYTES = 1024 * 1024
FILE_CHECK_INTERVAL = 1.0
# A token with an unknown kid triggers at most one refetch per this many seconds.
REFETCH_COOLDOWN = 5.0

Clock = Callable[[], float]


class JwksError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Key:
    kid: str | None
    algorithms: frozenset[str]
    jwk: jwt.PyJWK


@dataclass(frozen=True, slots=True)
class KeySet:
    keys: tuple[Key, ...] = ()

    def candidates(self, kid: str | None, algorithm: str) -> list[Key]:
        """Keys that may verify a token with this ``kid`` and ``alg``.

        With a kid only that key is tried; without one, every key of a fitting
        type (as Envoy and most libraries do)."""
        return [k for k in self.keys if algorithm in k.algorithms and (kid is None or k.kid == kid)]

    def has_kid(self, kid: str) -> bool:
        return any(k.kid == kid for k in self.keys)


def parse_jwks(document: bytes | str) -> KeySet:
    """A key set from a JWKS document (``{"keys": [...]}``) or one bare JWK."""
    try:
        data = json.loads(document)
    except ValueError as exc:
        raise JwksError(f"JWKS is not JSON: {exc}") from None
    if isinstance(data, dict) and "keys" not in data and "kty" in data:
        data = {"keys": [data]}
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksError('JWKS must be an object with a "keys" list')
    keys = [key for raw in data["keys"] if (key := _key(raw)) is not None]
    if not keys:
        raise JwksError("JWKS has no usable signature key")
    return KeySet(tuple(keys))


def _key(raw: Any) -> Key | None:
    if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
        return None
    kty = str(raw.get("kty"))
    curve = raw.get("crv") if kty in ("EC", "OKP") else None
    family = ALGORITHMS_BY_KEY.get((kty, str(curve) if curve is not None else None))
    if family is None:
        return None
    declared = raw.get("alg")
    if declared is not None and declared not in family:
        return None
    try:
        jwk = jwt.PyJWK(raw, declared or min(family))
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        return None
    kid = raw.get("kid")
    return Key(
        kid if isinstance(kid, str) else None,
        frozenset({declared}) if declared else family,
        jwk,
    )


class FileJwks:
    """A JWKS file, re-read when it changes."""

    def __init__(self, path: Path, clock: Clock = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._mtime = os.stat(path).st_mtime_ns
        self.keys = parse_jwks(path.read_bytes())
        self._checked = clock()

    async def current(self) -> KeySet:
        now = self._clock()
        if now - self._checked >= FILE_CHECK_INTERVAL:
            self._checked = now
            self._reload_if_changed()
        return self.keys

    async def refetch(self) -> KeySet:
        return await self.current()

    def _reload_if_changed(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime_ns
            if mtime == self._mtime:
                return
            self._mtime = mtime
            self.keys = parse_jwks(self.path.read_bytes())
        except (OSError, JwksError) as exc:
            log.warning("JWKS file %s: %s; keeping the last good key set", self.path, exc)


@dataclass
class UrlJwks:
    """A JWKS over HTTPS, cached and refreshed in the background."""

    url: str
    refresh: float
    timeout: float
    ca: Path | None = None
    clock: Clock = time.monotonic
    keys: KeySet | None = None
    _fetched_at: float = float("-inf")
    _attempted_at: float = float("-inf")
    _fetching: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def current(self) -> KeySet:
        if self.keys is None:
            # Until a first fetch succeeds, ask again at most once per cool-down,
            # so an unreachable provider is not hit by every request.
            if self.clock() - self._attempted_at >= min(REFETCH_COOLDOWN, self.refresh):
                await self._fetch_once()
        elif self.clock() - self._fetched_at >= self.refresh:
            self._start_fetch()
        return self.keys or KeySet()

    async def refetch(self) -> KeySet:
        """Fetch now unless a fetch was tried within the cool-down."""
        if self.clock() - self._attempted_at >= min(REFETCH_COOLDOWN, self.refresh):
            await self._fetch_once()
        return self.keys or KeySet()

    async def _fetch_once(self) -> None:
        task = self._start_fetch()
        await asyncio.shield(task)

    def _start_fetch(self) -> asyncio.Task[None]:
        """The fetch in flight on this loop, or a new one: never two at once."""
        running = self._fetching
        loop = asyncio.get_running_loop()
        if running is not None and not running.done() and running.get_loop() is loop:
            return running
        self._attempted_at = self.clock()
        task = loop.create_task(self._fetch())
        self._fetching = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _fetch(self) -> None:
        try:
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=str(self.ca)) if self.ca else True
            )
            async with httpx.AsyncClient(verify=verify, timeout=self.timeout) as client:
                response = await client.get(self.url, headers={"accept": "application/json"})
            if response.status_code != 200:
                raise JwksError(f"HTTP {response.status_code}")
            if len(response.content) > MAX_JWKS_BYTES:
                raise JwksError(f"larger than {MAX_JWKS_BYTES} bytes")
            self.keys = parse_jwks(response.content)
            self._fetched_at = self.clock()
        except (httpx.HTTPError, JwksError, OSError, ssl.SSLError) as exc:
            log.warning(
                "JWKS fetch from %s failed: %s; keeping the last good key set", self.url, exc
            )


JwksSource = FileJwks | UrlJwks
