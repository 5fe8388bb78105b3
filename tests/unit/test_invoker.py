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


def cluster_plan(retry: RetryPolicy | None = None, endpoints: int = 3, **config) -> CallPlan:
    """A plan with the cluster's health and retry limiter, as StaticClusterRef makes it."""
    cluster = StaticCluster(
        ClusterConfig(
            name="c",
            endpoints=[EndpointConfig(address=f"127.0.0.1:{7000 + i}") for i in range(endpoints)],
            **config,
        ),
        random.Random(0),
    )
    return CallPlan(
        "c",
        cluster.balancer.pick(),
        cluster.balancer,
        cluster.requests,
        retry=retry,
        health=cluster.health,
        retries=cluster.retries,
    )


async def test_every_retry_goes_to_an_endpoint_not_yet_tried() -> None:
    time = FakeTime()
    for seed in range(20):
        upstream = Script(time, *(UpstreamUnavailable(str(i)) for i in range(3)))
        with pytest.raises(UpstreamUnavailable):
            await Invoker(random.Random(seed), time.clock, time.sleep).unary(
                cluster_plan(RETRY), upstream, CALL, None
            )
        assert len({address for address, _ in upstream.tries}) == 3


async def test_retry_on_transport_causes() -> None:
    time = FakeTime()
    retry = RetryPolicy(retry_on=frozenset(), retry_on_causes=frozenset({"connect_failure"}))
    refused = Script(time, UpstreamUnavailable("refused", cause="connect_failure"), Reply(b"ok"))
    reply = await Invoker(random.Random(0), time.clock, time.sleep).unary(
        cluster_plan(retry), refused, CALL, None
    )
    assert reply.body == b"ok"
    reset = Script(time, UpstreamUnavailable("reset", cause="reset"), Reply(b"never"))
    with pytest.raises(UpstreamUnavailable):
        await Invoker(random.Random(0), time.clock, time.sleep).unary(
            cluster_plan(retry), reset, CALL, None
        )
    assert len(reset.tries) == 1


class Hold:
    """An upstream that fails every call only once all ``n`` are waiting."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.waiting = 0
        self.calls = 0
        import asyncio

        self.all_in = asyncio.Event()

    async def unary(
        self, address: str, call: Call, timeout: float | None, security: object = None
    ) -> Reply:
        self.calls += 1
        self.waiting += 1
        if self.waiting >= self.n:
            self.all_in.set()
        await self.all_in.wait()
        raise UpstreamUnavailable("down")

    async def stream(
        self, address: str, call: Call, timeout: float | None, security: object = None
    ) -> ReplyStream:
        raise NotImplementedError

    async def close(self) -> None:
        pass


async def test_the_retry_budget_caps_concurrent_retries() -> None:
    import asyncio

    retry = RetryPolicy(retry_on=frozenset({Code.UNAVAILABLE}), max_attempts=2)
    the_plan = cluster_plan(retry, max_retries=2)
    upstream = Hold(10)

    async def one() -> None:
        with pytest.raises(UpstreamUnavailable):
            await Invoker(random.Random(0), sleep=lambda s: asyncio.sleep(0)).unary(
                the_plan,
                upstream,
                CALL,
                None,  # type: ignore[arg-type]
            )

    await asyncio.gather(*(one() for _ in range(10)))
    # Ten failures, but only max_retries (2) of them retried at the same time.
    assert upstream.calls == 12
    assert the_plan.retries is not None and the_plan.retries.active == 0
    assert the_plan.requests.in_flight == 0


async def test_outcomes_feed_outlier_detection() -> None:
    from gateway.config import OutlierDetectionConfig

    time = FakeTime()
    the_plan = cluster_plan(
        endpoints=2, outlier_detection=OutlierDetectionConfig(consecutive_5xx=2)
    )
    bad = the_plan.first
    failing = Script(time, *(UpstreamStatus("x", grpc_code=Code.INTERNAL) for _ in range(2)))
    for _ in range(2):
        plan_for_bad = CallPlan(
            "c", bad, the_plan.balancer, the_plan.requests, health=the_plan.health
        )
        with pytest.raises(UpstreamStatus):
            await Invoker(random.Random(0), time.clock, time.sleep).unary(
                plan_for_bad, failing, CALL, None
            )
    assert the_plan.health is not None and bad.address in the_plan.health.excluded
    assert {the_plan.balancer.pick().address for _ in range(10)} == {
        e.address for e in the_plan.balancer.all_endpoints if e.address != bad.address
    }
    # A client error (4xx) is the endpoint answering fine.
    from gateway.upstream.invoker import outcome_of
    from mesh.outlier import Outcome

    assert outcome_of(UpstreamStatus("x", grpc_code=Code.NOT_FOUND)) is Outcome.SUCCESS
    assert outcome_of(UpstreamStatus("x", grpc_code=Code.DEADLINE_EXCEEDED)) is (
        Outcome.GATEWAY_FAILURE
    )
    assert outcome_of(UpstreamUnavailable("x", cause="reset")) is Outcome.GATEWAY_FAILURE
