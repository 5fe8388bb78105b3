from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
import pytest

from filters import FilterConfigError, build_filter
from filters.http import Handler, HttpRequest, HttpResponse
from filters.rate_limit import Config, TokenBuckets, build, key_func


def respond(handler: Handler, request: HttpRequest) -> HttpResponse:
    async def call() -> HttpResponse:
        return await handler(request)

    return asyncio.run(call())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Upstream:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.calls += 1
        return HttpResponse(200, [("content-type", "text/plain")], b"ok")


def limited(clock: FakeClock, upstream: Upstream, **config: Any) -> Handler:
    return build(Config.model_validate(config), clock=clock)(upstream)


def get(
    handler: Handler, headers: list[tuple[str, str]] | None = None, ip: str = "10.0.0.1"
) -> HttpResponse:
    request = HttpRequest("GET", "/", b"", headers or [], client=(ip, 40000))
    return respond(handler, request)


def header(response: HttpResponse, name: str) -> str | None:
    return next((v for n, v in response.headers if n == name), None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


def test_burst_is_allowed_then_refused_with_json_429(clock: FakeClock, upstream: Upstream) -> None:
    handler = limited(clock, upstream, requests_per_second=1, burst=3)

    statuses = [get(handler).status for _ in range(4)]
    refused = get(handler)

    assert statuses == [200, 200, 200, 429]
    assert upstream.calls == 3
    assert header(refused, "content-type") == "application/json"
    assert orjson.loads(refused.body) == {
        "code": 8,
        "message": "rate limit exceeded",
        "details": [],
    }


def test_every_response_reports_limit_and_remaining(clock: FakeClock, upstream: Upstream) -> None:
    handler = limited(clock, upstream, requests_per_second=1, burst=3)

    responses = [get(handler) for _ in range(4)]

    assert [header(r, "x-ratelimit-limit") for r in responses] == ["3"] * 4
    assert [header(r, "x-ratelimit-remaining") for r in responses] == ["2", "1", "0", "0"]
    assert [header(r, "retry-after") for r in responses] == [None, None, None, "1"]


@pytest.mark.parametrize(
    ("rate", "retry_after"),
    [(10.0, "1"), (1.0, "1"), (0.5, "2"), (0.3, "4")],
)
def test_retry_after_is_seconds_to_next_token_rounded_up(
    clock: FakeClock, upstream: Upstream, rate: float, retry_after: str
) -> None:
    handler = limited(clock, upstream, requests_per_second=rate, burst=1)
    get(handler)

    assert header(get(handler), "retry-after") == retry_after


def test_tokens_refill_at_the_configured_rate(clock: FakeClock, upstream: Upstream) -> None:
    handler = limited(clock, upstream, requests_per_second=2, burst=1)
    get(handler)

    clock.advance(0.4)
    too_soon = get(handler)
    clock.advance(0.1)  # exactly 1/rate since the first request, give or take float rounding
    in_time = get(handler)

    assert (too_soon.status, in_time.status) == (429, 200)


def test_requests_paced_exactly_at_the_rate_are_never_refused(
    clock: FakeClock, upstream: Upstream
) -> None:
    handler = limited(clock, upstream, requests_per_second=7, burst=1)
    statuses = []
    for _ in range(50):
        statuses.append(get(handler).status)
        clock.advance(1 / 7)

    assert statuses == [200] * 50


def test_refill_never_exceeds_burst(clock: FakeClock, upstream: Upstream) -> None:
    handler = limited(clock, upstream, requests_per_second=5, burst=2)
    clock.advance(3600)

    statuses = [get(handler).status for _ in range(3)]

    assert statuses == [200, 200, 429]


def test_a_clock_stepping_back_neither_drains_nor_raises(
    clock: FakeClock, upstream: Upstream
) -> None:
    handler = limited(clock, upstream, requests_per_second=1, burst=2)
    get(handler)
    clock.advance(-50)

    assert get(handler).status == 200


def test_burst_defaults_to_one_second_of_requests(clock: FakeClock, upstream: Upstream) -> None:
    handler = limited(clock, upstream, requests_per_second=2.5)

    statuses = [get(handler).status for _ in range(4)]

    assert statuses == [200, 200, 200, 429]


def test_header_key_gives_each_value_its_own_bucket(clock: FakeClock, upstream: Upstream) -> None:
    handler = limited(clock, upstream, requests_per_second=1, burst=1, key="header:X-Api-Key")

    first_a = get(handler, [("x-api-key", "a")])
    first_b = get(handler, [("x-api-key", "b")])
    second_a = get(handler, [("x-api-key", "a")])

    assert (first_a.status, first_b.status, second_a.status) == (200, 200, 429)


def test_requests_without_the_key_header_share_one_bucket(
    clock: FakeClock, upstream: Upstream
) -> None:
    handler = limited(clock, upstream, requests_per_second=1, burst=1, key="header:x-api-key")

    statuses = [get(handler, ip=f"10.0.0.{i}").status for i in range(2)]

    assert statuses == [200, 429]


def test_client_ip_key_ignores_the_port(clock: FakeClock, upstream: Upstream) -> None:
    handler = limited(clock, upstream, requests_per_second=1, burst=1, key="client_ip")

    first = get(handler, ip="10.0.0.1")
    other_ip = get(handler, ip="10.0.0.2")
    same_ip = respond(handler, HttpRequest("GET", "/", b"", [], client=("10.0.0.1", 1)))

    assert (first.status, other_ip.status, same_ip.status) == (200, 200, 429)


def test_global_key_shares_one_bucket_across_clients(clock: FakeClock, upstream: Upstream) -> None:
    handler = limited(clock, upstream, requests_per_second=1, burst=1)

    statuses = [get(handler, [("x-api-key", str(i))], ip=f"10.0.0.{i}").status for i in range(2)]

    assert statuses == [200, 429]


def test_buckets_are_bounded_by_max_keys(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=1, capacity=1, max_keys=100, clock=clock)

    for i in range(1000):
        buckets.take(f"key-{i}")

    assert len(buckets) == 100


def test_least_recently_used_key_is_evicted_first(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=1, capacity=1, max_keys=2, clock=clock)
    buckets.take("a")
    buckets.take("b")
    buckets.take("a")  # refused, but marks "a" as recently used
    buckets.take("c")  # evicts "b"

    a_granted, _ = buckets.take("a")
    b_granted, _ = buckets.take("b")  # back with a fresh bucket

    assert (a_granted, b_granted) == (False, True)


def test_huge_key_values_are_stored_as_distinct_digests() -> None:
    of_request = key_func("header:x-api-key")
    big = "k" * 1_000_000

    first = of_request(HttpRequest("GET", "/", b"", [("x-api-key", big + "1")]))
    second = of_request(HttpRequest("GET", "/", b"", [("x-api-key", big + "2")]))

    assert first != second
    assert max(len(first), len(second)) < 100


@pytest.mark.parametrize(
    "config",
    [
        {"requests_per_second": 0},
        {"requests_per_second": -1},
        {"requests_per_second": float("inf")},
        {"requests_per_second": 1, "burst": 0},
        {"requests_per_second": 1, "key": "cookie:session"},
        {"requests_per_second": 1, "key": "header:bad name"},
        {"requests_per_second": 1, "max_keys": 0},
        {},
        {"requests_per_second": 1, "backend": {"redis": {"url": "http://127.0.0.1:6379"}}},
        {"requests_per_second": 1, "backend": {"redis": {}}},
        {"requests_per_second": 1, "backend": {"on_error": "retry"}},
        {"requests_per_second": 1, "backend": {"memcached": {"url": "x"}}},
        {"requests_per_second": 1, "backend": {"redis": {"url": "redis://h", "timeout": 0}}},
    ],
)
def test_invalid_config_is_rejected_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(FilterConfigError, match="'rate_limit'"):
        build_filter("rate_limit", config)


def unreachable_redis(on_error: str, **config: Any) -> Config:
    """A redis backend on a loopback port where nothing listens: every call is refused."""
    backend = {"redis": {"url": f"redis://127.0.0.1:{closed_port()}/0"}, "on_error": on_error}
    return Config.model_validate({"requests_per_second": 1, "backend": backend, **config})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_many(handler: Handler, count: int) -> list[HttpResponse]:
    async def calls() -> list[HttpResponse]:
        request = HttpRequest("GET", "/", b"", [], client=("10.0.0.1", 40000))
        return [await handler(request) for _ in range(count)]

    return asyncio.run(calls())


def test_unreachable_redis_with_on_error_allow_lets_requests_through(
    clock: FakeClock, upstream: Upstream
) -> None:
    handler = build(unreachable_redis("allow", burst=1), clock=clock)(upstream)

    assert [r.status for r in get_many(handler, 3)] == [200, 200, 200]


def test_unreachable_redis_with_on_error_deny_answers_503_json(
    clock: FakeClock, upstream: Upstream
) -> None:
    handler = build(unreachable_redis("deny"), clock=clock)(upstream)

    refused = get_many(handler, 2)

    assert [r.status for r in refused] == [503, 503]
    assert upstream.calls == 0
    assert orjson.loads(refused[0].body) == {
        "code": 14,
        "message": "rate limit store unavailable",
        "details": [],
    }
    assert header(refused[0], "retry-after") == "1"


def test_unreachable_redis_with_on_error_local_counts_in_this_worker(
    clock: FakeClock, upstream: Upstream
) -> None:
    handler = build(unreachable_redis("local", burst=2), clock=clock)(upstream)

    assert [r.status for r in get_many(handler, 3)] == [200, 200, 429]


def test_redis_prefix_tells_different_limits_apart_and_keeps_an_explicit_one() -> None:
    def prefix(**config: Any) -> str:
        return Config.model_validate({"requests_per_second": 1, **config}).redis_prefix

    assert prefix(burst=5) == prefix(burst=5)
    assert prefix(burst=5) != prefix(burst=6)
    assert prefix(burst=5) != prefix(burst=5, key="client_ip")
    explicit = {"redis": {"url": "redis://127.0.0.1", "prefix": "team-a:"}}
    assert prefix(backend=explicit) == "team-a:"


def test_redis_password_comes_from_the_named_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = {"redis": {"url": "redis://127.0.0.1:1/0", "password_env": "MESHGATE_TEST_PW"}}
    config = {"requests_per_second": 1, "backend": backend}
    monkeypatch.delenv("MESHGATE_TEST_PW", raising=False)

    with pytest.raises(FilterConfigError, match="MESHGATE_TEST_PW is not set"):
        build_filter("rate_limit", config)

    monkeypatch.setenv("MESHGATE_TEST_PW", "s3cret")
    assert callable(build_filter("rate_limit", config))
