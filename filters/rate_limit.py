"""Token-bucket rate limiting, like Envoy's local_ratelimit filter.

Each key owns a bucket of ``burst`` tokens refilled at ``requests_per_second``;
a request takes one token or is refused with 429 and a JSON error. Every
response carries x-ratelimit-limit and x-ratelimit-remaining; a refusal also
carries retry-after (whole seconds, rounded up).

Config (YAML)::

    - name: rate_limit
      config:
        requests_per_second: 100
        burst: 200              # default: requests_per_second rounded up
        key: header:x-api-key   # global | client_ip | header:<name>
        max_keys: 10000         # per-key buckets kept, least recently used evicted
        backend:                # default: local (in this worker's memory)
          redis: {url: "redis://127.0.0.1:6379/0", timeout: 0.2, retry_interval: 1}
          on_error: allow       # allow | deny | local, when Redis is unreachable

Requests that lack the key (no such header, no client address) share one
bucket, so leaving the header out is not a way around the limit.

Where the buckets live. The local backend keeps them in the memory of each
worker process: a gateway run with ``--workers W`` on R replicas admits up to
W x R times the configured rate (and burst), because the kernel spreads
connections over the workers and every worker counts only its own. The redis
backend (:mod:`filters.rate_limit_redis`) keeps one bucket per key for all
workers and replicas that share the Redis and the filter's config.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from filters import FilterConfigError
from filters.errors import RESOURCE_EXHAUSTED, UNAVAILABLE, error_response
from filters.http import Filter, Handler, HttpRequest, HttpResponse
from filters.rate_limit_redis import Decision, OnError, RedisLimiter, connect, whole_seconds

Clock = Callable[[], float]
KeyFunc = Callable[[HttpRequest], str]

HEADER_KEY_PREFIX = "header:"
# Keys longer than this are stored as a digest: a client sending a megabyte
# header must not make each of max_keys buckets cost a megabyte.
MAX_STORED_KEY_LENGTH = 128
# Refills add up float products of rate and elapsed time; without a little
# slack a request arriving exactly on time could find 0.9999999 tokens.
TOKEN_EPSILON = 1e-6
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+$")


class RedisBackendConfig(BaseModel):
    """Where the shared buckets live and how long to wait for them."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    url: Annotated[str, Field(pattern=r"^(redis|rediss|unix)://")]
    """redis://[user:password@]host:port/db, rediss:// for TLS, unix:///path."""
    timeout: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = 0.2
    """Seconds to wait for a connection or a reply before on_error applies."""
    retry_interval: Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)] = 1.0
    """Seconds to leave Redis alone after a failure before trying it again."""
    password_env: str | None = None
    """Name of an environment variable holding the password, so that the secret stays out of
    the YAML (and out of the admin /config_dump)."""
    prefix: str | None = None
    """Key prefix in Redis; by default derived from the limit, so filters with the same limit
    and key share buckets and different limits never collide."""


class BackendConfig(BaseModel):
    """Which store holds the buckets: absent (local memory) or redis."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    redis: RedisBackendConfig | None = None
    """Keep the buckets in Redis, shared by every worker and replica."""
    on_error: OnError = "allow"
    """When Redis fails: let the request through, refuse it with 503, or count it in this
    worker's local bucket instead."""


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    requests_per_second: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    """Sustained rate each key may send, refilling its token bucket."""
    burst: Annotated[int, Field(ge=1)] | None = None
    """Bucket size: requests a key may send at once (default: one second's worth)."""
    key: str = "global"
    """What a bucket is kept per: global, client_ip, or header:<name>."""
    max_keys: Annotated[int, Field(ge=1)] = 10000
    """Most buckets kept at once; the least recently used goes first."""
    backend: BackendConfig = BackendConfig()
    """Where the buckets live: each worker's memory (local) or Redis, shared."""

    @field_validator("key")
    @classmethod
    def _known_key(cls, key: str) -> str:
        if key in ("global", "client_ip"):
            return key
        if key.startswith(HEADER_KEY_PREFIX):
            name = key.removeprefix(HEADER_KEY_PREFIX).lower()
            if _HEADER_NAME.match(name):
                return HEADER_KEY_PREFIX + name
        raise ValueError("must be 'global', 'client_ip' or 'header:<name>'")

    @property
    def capacity(self) -> int:
        """The bucket size: ``burst``, or one second's worth of requests."""
        return self.burst if self.burst is not None else math.ceil(self.requests_per_second)

    @property
    def redis_prefix(self) -> str:
        redis = self.backend.redis
        if redis is not None and redis.prefix is not None:
            return redis.prefix
        limit = f"{self.requests_per_second!r}/{self.capacity}/{self.key}"
        return f"meshgate:ratelimit:{hashlib.sha256(limit.encode()).hexdigest()[:16]}:"


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Buckets by key, at most ``max_keys`` of them, least recently used evicted.

    An evicted key comes back with a full bucket: the bound on memory is worth
    a burst for a key idle long enough to fall out of the LRU.
    """

    def __init__(self, rate: float, capacity: int, max_keys: int, clock: Clock) -> None:
        self.rate = rate
        self.capacity = capacity
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> tuple[bool, float]:
        """Take one token; return whether it was granted and the tokens left."""
        bucket = self._refilled(key)
        if bucket.tokens >= 1 - TOKEN_EPSILON:
            bucket.tokens = max(0.0, bucket.tokens - 1)
            return True, bucket.tokens
        return False, bucket.tokens

    def seconds_until_token(self, tokens: float) -> float:
        return max(0.0, (1 - tokens) / self.rate)

    def _refilled(self, key: str) -> Bucket:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = Bucket(tokens=float(self.capacity), updated=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return bucket
        self._buckets.move_to_end(key)
        # A clock that steps backwards must not drain the bucket.
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.capacity), bucket.tokens + elapsed * self.rate)
        bucket.updated = now
        return bucket


def key_func(key: str) -> KeyFunc:
    if key == "global":
        return lambda request: ""
    if key == "client_ip":
        return lambda request: request.client[0] if request.client else ""
    name = key.removeprefix(HEADER_KEY_PREFIX)
    return lambda request: _bounded(request.headers.get(name, ""))


def _bounded(key: str) -> str:
    if len(key) <= MAX_STORED_KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


Take = Callable[[str], Awaitable[Decision]]


def local_limiter(config: Config, clock: Clock) -> Callable[[str], Decision]:
    buckets = TokenBuckets(config.requests_per_second, config.capacity, config.max_keys, clock)

    def take(key: str) -> Decision:
        granted, tokens = buckets.take(key)
        wait = 0.0 if granted else buckets.seconds_until_token(tokens)
        return Decision(granted, int(tokens), wait)

    return take


def limiter(config: Config, clock: Clock) -> Take:
    """The backend's take(key): local memory, or Redis with its on_error policy."""
    local = local_limiter(config, clock)
    redis = config.backend.redis
    if redis is None:

        async def take_local(key: str) -> Decision:
            return local(key)

        return take_local
    shared = RedisLimiter(
        connect(redis.url, redis.timeout, _password(redis.password_env)),
        prefix=config.redis_prefix,
        rate=config.requests_per_second,
        capacity=config.capacity,
        on_error=config.backend.on_error,
        local=local,
        retry_interval=redis.retry_interval,
        clock=clock,
    )
    return shared.take


def _password(variable: str | None) -> str | None:
    if variable is None:
        return None
    password = os.environ.get(variable)
    if password is None:
        raise FilterConfigError(
            f"filter 'rate_limit': backend.redis.password_env: {variable} is not set"
        )
    return password


def build(config: Config, clock: Clock = time.monotonic) -> Filter:
    take = limiter(config, clock)
    key_of = key_func(config.key)
    limit = str(config.capacity)

    def rate_limit(next_handler: Handler) -> Handler:
        async def handle(request: HttpRequest) -> HttpResponse:
            decision = await take(key_of(request))
            counters = [
                ("x-ratelimit-limit", limit),
                ("x-ratelimit-remaining", str(decision.remaining)),
            ]
            if not decision.granted:
                retry_after = ("retry-after", str(whole_seconds(decision.retry_after)))
                if decision.unavailable:
                    return error_response(
                        503, UNAVAILABLE, "rate limit store unavailable", [retry_after]
                    )
                return error_response(
                    429, RESOURCE_EXHAUSTED, "rate limit exceeded", [retry_after, *counters]
                )
            response = await next_handler(request)
            response.headers.extend(counters)
            return response

        return handle

    return rate_limit
