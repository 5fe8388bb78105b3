"""The invoker alone: retries, backoff, deadlines, faults and the in-flight cap,
with an injected clock, sleep and rng (no real time passes)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from gateway.config import ClusterConfig, EndpointConfig
from gateway.errors import Code, GatewayError, UpstreamStatus, UpstreamUnavailable
from gateway.upstream.call import Call, Reply, ReplyStream
from gateway.upstream.clusters import CallPlan, StaticCluster
from gateway.upstream.invoker import Invoker
from mesh.retry import RetryPolicy
from mesh.security import UpstreamTls

pytestmark = pytest.mark.anyio
CALL = Call("pkg.Service", "Method", [b"x"])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Script:
    """An upstream answering from a list: a Reply, an error, or seconds to spend."""

    def __init__(self, time: FakeTime, *answers: Reply | GatewayError | float) -> None:
        self.time = time
        self.answers = list(answers)
        self.tries: list[tuple[str, float | None]] = []
        self.in_flight_seen: list[int] = []

    async def unary(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> Reply:
        self.tries.append((address, timeout))
        answer = self.answers.pop(0)
        if isinstance(answer, float):
            self.time.now += answer
            raise UpstreamStatus("deadline", grpc_code=Code.DEADLINE_EXCEEDED)
        if isinstance(answer, GatewayError):
            raise answer
        return answer

    async def stream(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> ReplyStream:
        async def messages() -> AsyncIterator[bytes]:
            yield b"1"
            yield b"2"

        return ReplyStream((), messages())

    async def close(self) -> None:
        pass


def plan(
    retry: RetryPolicy | None = None,
    max_requests: int = 100,
    endpoints: int = 3,
    *,
    timeout: float | None = None,
    delay: float | None = None,
    abort: int | None = None,
) -> CallPlan:
    cluster = StaticCluster(
        ClusterConfig(
            name="c",
            max_requests=max_requests,
            endpoints=[EndpointConfig(address=f"127.0.0.1:{7000 + i}") for i in range(endpoints)],
        ),
        random.Random(0),
    )
    first = cluster.balancer.pick()
    return CallPlan(
        "c", first, cluster.balancer, cluster.requests, None, timeout, retry, delay, abort
    )


RETRY = RetryPolicy(
    retry_on=frozenset({Code.UNAVAILABLE}), max_attempts=3, backoff_base_s=0.1, backoff_max_s=0.4
)


async def test_retries_retryable_codes_on_other_endpoints_with_backoff() -> None:
    time = FakeTime()
    upstream = Script(time, UpstreamUnavailable("a"), UpstreamUnavailable("b"), Reply(b"ok"))
    the_plan = plan(RETRY)
    reply = await Invoker(random.Random(0), time.clock, time.sleep).unary(
        the_plan, upstream, CALL, 10.0
    )
    assert reply.body == b"ok"
    assert len(upstream.tries) == 3
    assert len({address for address, _ in upstream.tries}) > 1
    assert len(time.slept) == 2
    assert 0 <= time.slept[0] <= 0.1 and 0 <= time.slept[1] <= 0.2  # full jitter, doubling
    assert the_plan.requests.in_flight == 0


async def test_gives_up_after_max_attempts_and_on_other_codes() -> None:
    time = FakeTime()
    down = Script(time, *(UpstreamUnavailable(str(i)) for i in range(5)))
    with pytest.raises(UpstreamUnavailable):
        await Invoker(random.Random(0), time.clock, time.sleep).unary(plan(RETRY), down, CALL, None)
    assert len(down.tries) == 3
    broken = Script(time, UpstreamStatus("bug", grpc_code=Code.INTERNAL), Reply(b"never"))
    with pytest.raises(UpstreamStatus):
        await Invoker(random.Random(0), time.clock, time.sleep).unary(
            plan(RETRY), broken, CALL, None
        )
    assert len(broken.tries) == 1


async def test_each_try_gets_what_is_left_of_the_deadline_capped_per_try() -> None:
    time = FakeTime()
    retry = RetryPolicy(
        retry_on=frozenset({Code.DEADLINE_EXCEEDED}),
        max_attempts=5,
        per_try_timeout_s=2.0,
        backoff_base_s=0.001,
        backoff_max_s=0.001,
    )
    upstream = Script(time, 2.0, 2.0, 2.0, 2.0)
    with pytest.raises(UpstreamStatus):
        await Invoker(random.Random(0), time.clock, time.sleep).unary(
            plan(retry), upstream, CALL, 5.0
        )
    timeouts = [t for _, t in upstream.tries]
    assert timeouts[0] == 2.0 and timeouts[1] == 2.0
    assert timeouts[2] == pytest.approx(5.0 - 4.0 - 0.002, abs=0.01)  # what is left
    assert len(upstream.tries) == 3  # the deadline passed: no fourth try


async def test_mesh_timeout_shortens_the_route_deadline() -> None:
    time = FakeTime()
    upstream = Script(time, Reply(b"ok"))
    await Invoker(random.Random(0), time.clock, time.sleep).unary(
        plan(timeout=1.5), upstream, CALL, 10.0
    )
    assert upstream.tries[0][1] == 1.5


async def test_fault_delay_then_abort() -> None:
    time = FakeTime()
    upstream = Script(time, Reply(b"never"))
    with pytest.raises(UpstreamStatus) as caught:
        await Invoker(random.Random(0), time.clock, time.sleep).unary(
            plan(delay=0.3, abort=Code.PERMISSION_DENIED), upstream, CALL, None
        )
    assert caught.value.grpc_code == Code.PERMISSION_DENIED and caught.value.status == 403
    assert time.slept == [0.3] and upstream.tries == []


async def test_in_flight_cap_answers_503_and_releases_on_every_outcome() -> None:
    time = FakeTime()
    the_plan = plan(max_requests=1)
    assert the_plan.begin(the_plan.first)  # another request holds the only slot
    upstream = Script(time, Reply(b"ok"))
    with pytest.raises(UpstreamUnavailable) as caught:
        await Invoker(random.Random(0), time.clock, time.sleep).unary(
            the_plan, upstream, CALL, None
        )
    assert ("x-meshgate-overloaded", "true") in caught.value.headers
    the_plan.end(the_plan.first)
    failing = Script(time, UpstreamStatus("x", grpc_code=Code.INTERNAL))
    with pytest.raises(UpstreamStatus):
        await Invoker().unary(the_plan, failing, CALL, None)
    assert the_plan.requests.in_flight == 0


async def test_a_stream_holds_its_slot_until_it_ends() -> None:
    time = FakeTime()
    the_plan = plan()
    stream = await Invoker().stream(the_plan, Script(time), CALL, None)
    assert the_plan.requests.in_flight == 1
    assert [m async for m in stream.messages] == [b"1", b"2"]
    assert the_plan.requests.in_flight == 0
