"""A rate limit shared by every worker and replica, kept in Redis.

The limit is GCRA (the generic cell rate algorithm), which admits exactly what
a token bucket of ``capacity`` tokens refilled at ``rate`` per second would,
while storing one number per key: the theoretical arrival time (TAT) of the
next request. One Lua script reads and writes it, so the check and the update
are a single atomic step in Redis however many gateways race for the same key,
and the clock is Redis's own (``TIME``), so gateways with skewed clocks still
agree. Keys expire once their bucket would be full again.

When Redis cannot be reached (refused, timed out, any Redis error), the
``on_error`` policy decides: ``allow`` lets the request through, ``deny``
refuses it with 503, ``local`` falls back to this worker's in-memory bucket.
After a failure Redis is left alone for ``retry_interval`` so that a dead
Redis costs one timeout per interval, not one per request; the first call
after the interval tries it again, which is how a restarted Redis is picked
up.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

log = logging.getLogger(f"meshgate.{__name__}")

OnError = Literal["allow", "deny", "local"]

# KEYS[1]: the key's TAT, in microseconds of Redis time.
# ARGV[1]: emission interval (microseconds per request); ARGV[2]: capacity.
# Returns {granted (0/1), remaining whole requests, microseconds until a
# refused request would be granted}. Times stay below 2^53, exact in Lua's
# doubles; '%d' keeps the stored TAT from being written in exponent form.
GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - capacity * interval
if now < allow_at then
  return {0, 0, allow_at - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
return {1, math.floor((now - allow_at) / interval), 0}
"""

MICROSECONDS = 1_000_000
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the limiter says about one request."""

    granted: bool
    remaining: int
    retry_after: float
    # Refused because the shared store is down and the policy is ``deny``.
    unavailable: bool = False


LocalLimiter = Callable[[str], Decision]


class ScriptRunner(Protocol):
    def __call__(self, keys: list[str], args: list[Any]) -> Awaitable[Any]: ...


class RedisLimiter:
    """GCRA in Redis with an ``on_error`` policy and a pause after failures."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        rate: float,
        capacity: int,
        on_error: OnError,
        local: LocalLimiter,
        retry_interval: float,
        clock: Clock,
    ) -> None:
        self.prefix = prefix
        self.interval_us = max(1, round(MICROSECONDS / rate))
        self.capacity = capacity
        self.on_error = on_error
        self.local = local
        self.retry_interval = retry_interval
        self.clock = clock
        self._client = client
        self._script: ScriptRunner = client.register_script(GCRA_SCRIPT)
        self._paused_until = 0.0
        self._failing = False

    async def take(self, key: str) -> Decision:
        if self.clock() < self._paused_until:
            return self._fallback(key)
        try:
            granted, remaining, wait_us = await self._script(
                keys=[self.prefix + key], args=[self.interval_us, self.capacity]
            )
        except (RedisError, OSError) as exc:
            self._paused_until = self.clock() + self.retry_interval
            if not self._failing:
                log.warning("rate limit store unreachable, on_error=%s: %s", self.on_error, exc)
                self._failing = True
            return self._fallback(key)
        if self._failing:
            log.info("rate limit store reachable again")
            self._failing = False
        return Decision(bool(granted), int(remaining), int(wait_us) / MICROSECONDS)

    def _fallback(self, key: str) -> Decision:
        if self.on_error == "local":
            return self.local(key)
        if self.on_error == "deny":
            return Decision(False, 0, self.retry_interval, unavailable=True)
        return Decision(True, self.capacity, 0.0)

    async def close(self) -> None:
        await self._client.aclose()


def connect(url: str, timeout: float, password: str | None = None) -> aioredis.Redis:
    """A client for ``url`` (redis://, rediss:// or unix://) that connects on first use.

    Connections belong to the event loop that opens them: build the client in
    the worker that serves, never before a fork.
    """
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # One immediate retry on a new connection when a pooled one turns out
        # dead (Redis restarted since it was opened); none after a timeout,
        # which would stretch one request past ``timeout``. Anything longer is
        # the limiter's pause and on_error policy.
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )
    return client


def whole_seconds(seconds: float) -> int:
    """Retry-After for ``seconds`` of wait: whole seconds, rounded up, at least one."""
    return max(1, math.ceil(seconds))
