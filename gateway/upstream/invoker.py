"""Executing a call plan: deadline, fault, in-flight cap, retries.

Retries apply to unary and client-streaming calls, whose whole request is in
hand; a response stream is never retried once it has started. Every decision
(which status retries, how long to back off) is the mesh core's pure helpers,
the same for static and xDS clusters. Time and randomness are injected so the
tests drive them.

Retries cannot multiply an outage: each one needs a slot of the cluster's
retry budget (or max_retries circuit breaker), goes to an endpoint the
request has not tried yet when there is one, and never runs past the
deadline. Every attempt's outcome is reported to the cluster's outlier
detection (``CallPlan.end``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.errors import GatewayError, UpstreamStatus, UpstreamUnavailable, http_status_for
from gateway.exchange import Attempt, Exchange
from gateway.metrics import count_overflow, count_retry
from gateway.upstream.call import (
    Call,
    CallStatus,
    DuplexReply,
    DuplexUpstream,
    Reply,
    ReplyStream,
    RequestMessages,
    Upstream,
)
from gateway.upstream.clusters import CallPlan
from mesh.endpoint import Endpoint
from mesh.outlier import Outcome
from mesh.retry import RetryPolicy, retry_backoff, should_retry

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# The least a try is given when the deadline is (nearly) spent: the upstream
# then fails it as DEADLINE_EXCEEDED rather than being called with no deadline.
MIN_TRY_TIMEOUT = 0.001


def overloaded(plan: CallPlan) -> GatewayError:
    count_overflow(plan.cluster)
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
        self,
        plan: CallPlan,
        upstream: Upstream,
        call: Call,
        timeout: float | None,
        exchange: Exchange | None = None,
    ) -> Reply:
        """Run the call on the plan's endpoints until it succeeds or retries run out."""
        await self._inject_fault(plan)
        retry = plan.retry
        timeout = shortest(timeout, plan.timeout)
        deadline = None if timeout is None else self._clock() + timeout
        endpoint = plan.first
        attempt = 1
        tried: list[str] | None = None  # endpoints tried, once a retry is in sight
        trace = None if exchange is None else exchange.trace
        holds_retry = False  # this attempt took a slot of the retry budget
        try:
            while True:
                try_timeout = self._remaining(deadline)
                if retry is not None and retry.per_try_timeout_s:
                    try_timeout = shortest(try_timeout, retry.per_try_timeout_s)
                if not plan.begin(endpoint):
                    raise overloaded(plan)
                outcome: Outcome | None = None
                record = None if exchange is None else exchange.begin_attempt(endpoint.address)
                sent = call if trace is None or record is None else trace.attempt_call(call, record)
                try:
                    reply = await upstream.unary(endpoint.address, sent, try_timeout, plan.security)
                    outcome = Outcome.SUCCESS
                    if record is not None:
                        record.grpc_status = 0
                    return reply
                except GatewayError as error:
                    outcome = outcome_of(error)
                    if record is not None and outcome is not None:
                        record.grpc_status = error.grpc_code
                    out_of_time = deadline is not None and self._clock() >= deadline
                    cause = getattr(error, "cause", None)
                    if out_of_time or not should_retry(retry, error.grpc_code, attempt, cause):
                        raise
                    failure = error
                finally:
                    if record is not None:
                        record.seconds = time.perf_counter() - record.started
                    plan.end(endpoint, outcome, self._clock)
                    if holds_retry:
                        plan.retry_done()
                        holds_retry = False
                tried = [endpoint.address] if tried is None else [*tried, endpoint.address]
                if not plan.may_retry():
                    count_retry(plan.cluster, sent=False)
                    raise failure
                holds_retry = True
                count_retry(plan.cluster, sent=True)
                assert retry is not None
                await self._back_off(retry, attempt, deadline)
                attempt += 1
                endpoint = plan.pick(tried)
        finally:
            if holds_retry:
                plan.retry_done()

    async def stream(
        self,
        plan: CallPlan,
        upstream: Upstream,
        call: Call,
        timeout: float | None,
        exchange: Exchange | None = None,
    ) -> ReplyStream:
        """Start a response stream; the in-flight slot is held until it ends."""
        await self._inject_fault(plan)
        endpoint = plan.first
        if not plan.begin(endpoint):
            raise overloaded(plan)
        attempt = None if exchange is None else exchange.begin_attempt(endpoint.address)
        trace = None if exchange is None else exchange.trace
        if trace is not None and attempt is not None:
            call = trace.attempt_call(call, attempt)
        try:
            started = await upstream.stream(
                endpoint.address, call, shortest(timeout, plan.timeout), plan.security
            )
        except GatewayError as error:
            _finish(attempt, error.grpc_code)
            plan.end(endpoint, outcome_of(error), self._clock)
            raise
        except BaseException:
            _finish(attempt, None)
            plan.end(endpoint)
            raise

        async def counted() -> AsyncIterator[bytes]:
            outcome: Outcome | None = None
            status: int | None = None
            try:
                async for message in started.messages:
                    yield message
                outcome = Outcome.SUCCESS
                status = 0
            except GatewayError as error:
                outcome = outcome_of(error)
                status = error.grpc_code
                raise
            finally:
                _finish(attempt, status)
                plan.end(endpoint, outcome, self._clock)

        return ReplyStream(started.initial_metadata, counted())

    async def duplex(
        self,
        plan: CallPlan,
        upstream: DuplexUpstream,
        call: Call,
        requests: RequestMessages,
        timeout: float | None,
        exchange: Exchange | None = None,
    ) -> DuplexReply:
        """A passthrough call, streaming both ways. With a retry policy, an
        attempt that ends with a retryable status before any reply message is
        tried again (on an untried endpoint, within the deadline and the retry
        budget) with the request messages replayed; the first reply message
        commits the call. The in-flight slot is held until the reply ends."""
        await self._inject_fault(plan)
        retry = plan.retry
        if retry is None:
            requests.commit()
        timeout = shortest(timeout, plan.timeout)
        deadline = None if timeout is None else self._clock() + timeout
        endpoint = plan.first
        attempt = 1
        tried: list[str] = []
        trace = None if exchange is None else exchange.trace
        holds_retry = False
        try:
            while True:
                try_timeout = self._remaining(deadline)
                if retry is not None and retry.per_try_timeout_s:
                    try_timeout = shortest(try_timeout, retry.per_try_timeout_s)
                if not plan.begin(endpoint):
                    raise overloaded(plan)
                record = None if exchange is None else exchange.begin_attempt(endpoint.address)
                sent = call if trace is None or record is None else trace.attempt_call(call, record)
                try:
                    reply = await upstream.duplex(
                        endpoint.address, sent, requests.attempt(), try_timeout, plan.security
                    )
                    first = None
                    if requests.replayable:
                        first = await anext(reply.messages, None)
                except BaseException:
                    _finish(record, None)
                    plan.end(endpoint)
                    raise
                finally:
                    if holds_retry:
                        plan.retry_done()
                        holds_retry = False
                if first is not None or not requests.replayable:
                    requests.commit()
                    return self._counted(plan, endpoint, record, reply, first)
                status = await reply.status()
                error = status_error(status)
                out_of_time = deadline is not None and self._clock() >= deadline
                if (
                    error is None
                    or out_of_time
                    or not should_retry(retry, status.code, attempt, status.cause)
                ):
                    return self._counted(plan, endpoint, record, reply, None)
                _finish(record, status.code)
                plan.end(endpoint, outcome_of(error), self._clock)
                tried.append(endpoint.address)
                if not plan.may_retry():
                    count_retry(plan.cluster, sent=False)
                    return DuplexReply(reply.initial_metadata, _nothing(), reply.status)
                holds_retry = True
                count_retry(plan.cluster, sent=True)
                assert retry is not None
                await self._back_off(retry, attempt, deadline)
                attempt += 1
                endpoint = plan.pick(tried)
        finally:
            if holds_retry:
                plan.retry_done()

    def _counted(
        self,
        plan: CallPlan,
        endpoint: Endpoint,
        record: Attempt | None,
        reply: DuplexReply,
        first: bytes | None,
    ) -> DuplexReply:
        """The reply, reporting the attempt's outcome when its status is known."""
        clock = self._clock

        async def messages() -> AsyncIterator[bytes]:
            status: CallStatus | None = None
            try:
                if first is not None:
                    yield first
                async for message in reply.messages:
                    yield message
                status = await reply.status()
            finally:
                error = None if status is None else status_error(status)
                _finish(record, None if status is None else status.code)
                if status is None:
                    plan.end(endpoint)
                else:
                    plan.end(
                        endpoint, Outcome.SUCCESS if error is None else outcome_of(error), clock
                    )

        return DuplexReply(reply.initial_metadata, messages(), reply.status)

    async def _inject_fault(self, plan: CallPlan) -> None:
        if plan.delay:
            await self._sleep(plan.delay)
        if plan.abort is not None:
            raise UpstreamStatus("fault injected by the mesh", grpc_code=plan.abort)

    async def _back_off(self, retry: RetryPolicy, attempt: int, deadline: float | None) -> None:
        """Wait before the next attempt: the policy's backoff, never past the deadline."""
        backoff = retry_backoff(retry, attempt, self._rng)
        remaining = self._remaining(deadline)
        await self._sleep(backoff if remaining is None else min(backoff, remaining))

    def _remaining(self, deadline: float | None) -> float | None:
        if deadline is None:
            return None
        return max(deadline - self._clock(), MIN_TRY_TIMEOUT)


def _finish(attempt: Attempt | None, grpc_status: int | None) -> None:
    if attempt is not None:
        attempt.grpc_status = grpc_status
        attempt.seconds = time.perf_counter() - attempt.started


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield


def status_error(status: CallStatus) -> GatewayError | None:
    """A passthrough call's non-OK status as the error the retry and outlier
    logic judges (None for OK)."""
    if status.code == 0:
        return None
    if status.code == UpstreamUnavailable.grpc_code:
        return UpstreamUnavailable(status.message, cause=status.cause)
    return UpstreamStatus(status.message, grpc_code=status.code)


def shortest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def outcome_of(error: GatewayError) -> Outcome | None:
    """What a failed attempt says about its endpoint (Envoy's view: the gRPC
    status mapped to HTTP; 502/503/504 and transport failures are gateway
    failures, other 5xx errors, anything else the endpoint answering fine).
    Errors the gateway raised itself, before or instead of the upstream, say
    nothing about it (None)."""
    if not isinstance(error, UpstreamStatus | UpstreamUnavailable):
        return None
    if isinstance(error, UpstreamUnavailable) and error.cause is not None:
        return Outcome.GATEWAY_FAILURE
    status = http_status_for(error.grpc_code)
    if status in (502, 503, 504):
        return Outcome.GATEWAY_FAILURE
    if status >= 500:
        return Outcome.ERROR
    return Outcome.SUCCESS
