"""Executing a call plan: deadline, fault, in-flight cap, retries.

Retries apply to unary and client-streaming calls, whose whole request is in
hand; a response stream is never retried once it has started.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.errors import GatewayError, UpstreamStatus, UpstreamUnavailable
from gateway.plan import CallPlan
from gateway.transcode.bindings import MethodBinding
from gateway.upstream.grpc import GrpcUpstream, UnaryReply
from gateway.upstream.metadata import Metadata
from mesh.endpoint import Endpoint


def overloaded(plan: CallPlan) -> GatewayError:
    return UpstreamUnavailable(f"cluster {plan.cluster!r} is at its max_requests",
                               headers=[("x-meshgate-overloaded", "true")])


async def inject_fault(plan: CallPlan) -> None:
    if plan.delay:
        await asyncio.sleep(plan.delay)
    if plan.abort is not None:
        raise UpstreamStatus("fault injected by the mesh", grpc_code=plan.abort)


async def with_retries(plan: CallPlan, timeout: float | None, rng: random.Random,
                       attempt: Callable[[Endpoint, float | None], Awaitable[UnaryReply]]
                       ) -> UnaryReply:
    """Run ``attempt`` on the plan's endpoints until it succeeds or retries run out."""
    await inject_fault(plan)
    retry = plan.retry
    deadline = time.monotonic() + timeout if timeout else None
    endpoint = plan.first
    number = 1
    while True:
        try_timeout = _remaining(deadline)
        if retry and retry.per_try_timeout:
            try_timeout = min(try_timeout or retry.per_try_timeout, retry.per_try_timeout)
        if not plan.begin(endpoint):
            raise overloaded(plan)
        try:
            return await attempt(endpoint, try_timeout)
        except GatewayError as error:
            out_of_time = deadline is not None and time.monotonic() >= deadline
            if (retry is None or number >= retry.max_attempts
                    or error.grpc_code not in retry.codes or out_of_time):
                raise
        finally:
            plan.end(endpoint)
        ceiling = min(retry.backoff * 2 ** (number - 1), retry.max_backoff)
        await asyncio.sleep(min(rng.uniform(0, ceiling), _remaining(deadline) or ceiling))
        number += 1
        endpoint = plan.pick()


class Invoker:
    def __init__(self, grpc: GrpcUpstream, rng: random.Random) -> None:
        self._grpc = grpc
        self._rng = rng

    async def unary(self, plan: CallPlan, binding: MethodBinding, payloads: list[bytes],
                    metadata: Metadata, timeout: float | None) -> UnaryReply:
        async def attempt(endpoint: Endpoint, try_timeout: float | None) -> UnaryReply:
            if binding.client_streaming:
                return await self._grpc.client_stream(endpoint.address, binding.path, payloads,
                                                      metadata, try_timeout)
            return await self._grpc.unary(endpoint.address, binding.path, payloads[0],
                                          metadata, try_timeout)

        return await with_retries(plan, _shortest(timeout, plan.timeout), self._rng, attempt)

    async def stream(self, plan: CallPlan, binding: MethodBinding, payloads: list[bytes],
                     metadata: Metadata, timeout: float | None
                     ) -> tuple[Metadata, AsyncIterator[bytes]]:
        await inject_fault(plan)
        endpoint = plan.first
        if not plan.begin(endpoint):
            raise overloaded(plan)
        try:
            initial, messages = await self._grpc.server_stream(
                endpoint.address, binding.path, payloads, metadata,
                _shortest(timeout, plan.timeout), client_streaming=binding.client_streaming)
        except BaseException:
            plan.end(endpoint)
            raise

        async def counted() -> AsyncIterator[bytes]:
            try:
                async for message in messages:
                    yield message
            finally:
                plan.end(endpoint)

        return initial, counted()


def _shortest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(deadline - time.monotonic(), 0.001)
