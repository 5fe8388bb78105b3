"""Executing a call plan: deadline, fault, in-flight cap, retries.

Retries apply to unary and client-streaming calls, whose whole request is in
hand; a response stream is never retried once it has started. Every decision
(which status retries, how long to back off) is the mesh core's pure helpers,
the same for static and xDS clusters. Time and randomness are injected so the
tests drive them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.errors import GatewayError, UpstreamStatus, UpstreamUnavailable
from gateway.upstream.call import Call, Reply, ReplyStream, Upstream
from gateway.upstream.clusters import CallPlan
from mesh.retry import retry_backoff, should_retry

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# The least a try is given when the deadline is (nearly) spent: the upstream
# then fails it as DEADLINE_EXCEEDED rather than being called with no deadline.
MIN_TRY_TIMEOUT = 0.001


def overloaded(plan: CallPlan) -> GatewayError:
    return UpstreamUnavailable(
        f"cluster {plan.cluster!r} is at its max_requests",
        headers=[("x-meshgate-overloaded", "true")],
    )


class Invoker:
    def __init__(
        self,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep

    async def unary(
        self, plan: CallPlan, upstream: Upstream, call: Call, timeout: float | None
    ) -> Reply:
        """Run the call on the plan's endpoints until it succeeds or retries run out."""
        await self._inject_fault(plan)
        retry = plan.retry
        timeout = shortest(timeout, plan.timeout)
        deadline = None if timeout is None else self._clock() + timeout
        endpoint = plan.first
        attempt = 1
        while True:
            try_timeout = self._remaining(deadline)
            if retry is not None and retry.per_try_timeout_s:
                try_timeout = shortest(try_timeout, retry.per_try_timeout_s)
            if not plan.begin(endpoint):
                raise overloaded(plan)
            try:
                return await upstream.unary(endpoint.address, call, try_timeout, plan.security)
            except GatewayError as error:
                out_of_time = deadline is not None and self._clock() >= deadline
                if out_of_time or not should_retry(retry, error.grpc_code, attempt):
                    raise
            finally:
                plan.end(endpoint)
            assert retry is not None
            backoff = retry_backoff(retry, attempt, self._rng)
            remaining = self._remaining(deadline)
            await self._sleep(backoff if remaining is None else min(backoff, remaining))
            attempt += 1
            endpoint = plan.pick()

    async def stream(
        self, plan: CallPlan, upstream: Upstream, call: Call, timeout: float | None
    ) -> ReplyStream:
        """Start a response stream; the in-flight slot is held until it ends."""
        await self._inject_fault(plan)
        endpoint = plan.first
        if not plan.begin(endpoint):
            raise overloaded(plan)
        try:
            started = await upstream.stream(
                endpoint.address, call, shortest(timeout, plan.timeout), plan.security
            )
        except BaseException:
            plan.end(endpoint)
            raise

        async def counted() -> AsyncIterator[bytes]:
            try:
                async for message in started.messages:
                    yield message
            finally:
                plan.end(endpoint)

        return ReplyStream(started.initial_metadata, counted())

    async def _inject_fault(self, plan: CallPlan) -> None:
        if plan.delay:
            await self._sleep(plan.delay)
        if plan.abort is not None:
            raise UpstreamStatus("fault injected by the mesh", grpc_code=plan.abort)

    def _remaining(self, deadline: float | None) -> float | None:
        if deadline is None:
            return None
        return max(deadline - self._clock(), MIN_TRY_TIMEOUT)


def shortest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
