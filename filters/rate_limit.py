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

Requests that lack the key (no such header, no client address) share one
bucket, so leaving the header out is not a way around the limit.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from filters.errors import RESOURCE_EXHAUSTED, error_response
from filters.http import Filter, Handler, HttpRequest, HttpResponse

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


def build(config: Config, clock: Clock = time.monotonic) -> Filter:
    buckets = TokenBuckets(config.requests_per_second, config.capacity, config.max_keys, clock)
    key_of = key_func(config.key)
    limit = str(config.capacity)

    def rate_limit(next_handler: Handler) -> Handler:
        async def handle(request: HttpRequest) -> HttpResponse:
            granted, tokens = buckets.take(key_of(request))
            counters = [("x-ratelimit-limit", limit), ("x-ratelimit-remaining", str(int(tokens)))]
            if not granted:
                retry_after = max(1, math.ceil(buckets.seconds_until_token(tokens)))
                return error_response(
                    429,
                    RESOURCE_EXHAUSTED,
                    "rate limit exceeded",
                    [("retry-after", str(retry_after)), *counters],
                )
            response = await next_handler(request)
            response.headers.extend(counters)
            return response

        return handle

    return rate_limit
