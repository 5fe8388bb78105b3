"""One rate limit shared by three meshgate processes of two workers each, through a real Redis.

Every listener has no routes: a request the limiter grants goes on to the
router and gets 404, one it refuses gets 429 (or 503 under ``on_error:
deny``), so the status alone says what the limiter decided.

Tolerance: GCRA admits ``burst`` at once plus ``requests_per_second`` for
every second the burst lasts, so a burst that took ``elapsed`` seconds is
granted between ``burst`` and ``burst + rate * elapsed + 1`` requests, whatever
the number of workers and replicas. The local backend would admit up to
workers x replicas x burst.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from filters.rate_limit_redis import Decision, RedisLimiter, connect
from tests.support.errors import error_body
from tests.support.gateway import run_gateway
from tests.support.redis import RedisServer, running_redis

pytestmark = pytest.mark.integration

REPLICAS = 3
WORKERS = 2
RATE = 2.0
BURST = 30
LOCAL_BURST = 5
BURST_REQUESTS = 120
CONNECTIONS_PER_REPLICA = 6
RETRY_INTERVAL = 0.5

GRANTED = 404  # no route: the limiter let it through to the router
REFUSED = 429
STORE_DOWN = 503


def limited_listener(name: str, redis_url: str, on_error: str, burst: int) -> dict[str, Any]:
    backend = {
        "redis": {
            "url": redis_url,
            "timeout": 0.5,
            "retry_interval": RETRY_INTERVAL,
            "prefix": f"test:{name}:",
        },
        "on_error": on_error,
    }
    config = {"requests_per_second": RATE, "burst": burst, "backend": backend}
    return {"name": name, "filters": [{"name": "rate_limit", "config": config}], "routes": []}


def gateway_config(redis_url: str) -> dict[str, Any]:
    return {
        "listeners": [
            limited_listener("allow", redis_url, "allow", BURST),
            limited_listener("deny", redis_url, "deny", BURST),
            limited_listener("local", redis_url, "local", LOCAL_BURST),
        ]
    }


def listener_urls(config_path: Path) -> dict[str, str]:
    config = yaml.safe_load(config_path.read_text())
    return {listener["name"]: f"http://{listener['address']}" for listener in config["listeners"]}


async def _burst(urls: list[str], count: int) -> tuple[Counter[int], float]:
    """``count`` GETs spread over ``urls``, several connections each, all at once."""
    clients = [
        httpx.AsyncClient(
            base_url=url,
            timeout=10.0,
            limits=httpx.Limits(max_connections=CONNECTIONS_PER_REPLICA),
        )
        for url in urls
    ]
    started = time.monotonic()
    try:
        responses = await asyncio.gather(
            *(clients[i % len(clients)].get(f"/burst/{i}") for i in range(count))
        )
    finally:
        for client in clients:
            await client.aclose()
    return Counter(response.status_code for response in responses), time.monotonic() - started


def burst(urls: list[str], count: int) -> tuple[Counter[int], float]:
    return asyncio.run(_burst(urls, count))


def assert_one_shared_limit(statuses: Counter[int], elapsed: float) -> None:
    granted = statuses[GRANTED]
    ceiling = BURST + RATE * elapsed + 1
    assert set(statuses) <= {GRANTED, REFUSED}, statuses
    assert BURST <= granted <= ceiling, (statuses, f"burst took {elapsed:.2f}s")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def replicas(redis_server: RedisServer, tmp_path: Path) -> Iterator[list[dict[str, str]]]:
    config = gateway_config(redis_server.url)
    with ExitStack() as stack:
        urls = []
        for replica in range(REPLICAS):
            workdir = tmp_path / f"replica-{replica}"
            workdir.mkdir()
            gateway = stack.enter_context(
                run_gateway(copy.deepcopy(config), workdir, workers=WORKERS)
            )
            urls.append(listener_urls(gateway.config_path))
        yield urls


def test_three_replicas_of_two_workers_share_one_limit_and_survive_redis_restarts(
    redis_server: RedisServer, replicas: list[dict[str, str]]
) -> None:
    allow_urls = [replica["allow"] for replica in replicas]

    statuses, elapsed = burst(allow_urls, BURST_REQUESTS)
    assert_one_shared_limit(statuses, elapsed)

    # Redis dies: each listener applies its own on_error policy.
    redis_server.kill()
    statuses, _ = burst(allow_urls, 30)
    assert statuses == Counter({GRANTED: 30})

    refused = httpx.get(f"{replicas[0]['deny']}/x", timeout=10.0)
    assert refused.status_code == STORE_DOWN
    assert error_body(refused) == {
        "code": 14,
        "message": "rate limit store unavailable",
        "details": [],
    }
    statuses, _ = burst([replica["deny"] for replica in replicas], 30)
    assert statuses == Counter({STORE_DOWN: 30})

    # local: every worker falls back to its own bucket of LOCAL_BURST, so the
    # limit still holds, at most workers x replicas times looser.
    statuses, elapsed = burst([replica["local"] for replica in replicas], 90)
    local_ceiling = REPLICAS * WORKERS * (LOCAL_BURST + RATE * elapsed + 1)
    assert set(statuses) == {GRANTED, REFUSED}, statuses
    assert statuses[GRANTED] <= local_ceiling, (statuses, f"took {elapsed:.2f}s")

    # Redis back (empty: no persistence): after the pause the shared limit
    # holds again, and deny lets requests through again.
    redis_server.start()
    time.sleep(RETRY_INTERVAL * 3)
    statuses, elapsed = burst(allow_urls, BURST_REQUESTS)
    assert_one_shared_limit(statuses, elapsed)
    statuses, _ = burst([replica["deny"] for replica in replicas], 12)
    assert statuses == Counter({GRANTED: 12})


def test_gcra_script_admits_the_burst_then_refuses_with_the_wait(
    redis_server: RedisServer,
) -> None:
    # One request per 100 s: no refill can happen while the test runs.
    rate, capacity = 0.01, 3

    async def scenario() -> tuple[list[Decision], int]:
        client = connect(redis_server.url, timeout=2.0)
        limiter = RedisLimiter(
            client,
            prefix="test:gcra:",
            rate=rate,
            capacity=capacity,
            on_error="deny",
            local=lambda key: Decision(False, 0, 0.0),
            retry_interval=1.0,
            clock=time.monotonic,
        )
        decisions = [await limiter.take("k") for _ in range(5)]
        other = await limiter.take("another key")
        ttl_ms = await client.pttl("test:gcra:k")
        await limiter.close()
        return [*decisions, other], ttl_ms

    decisions, ttl_ms = asyncio.run(scenario())

    assert [(d.granted, d.remaining) for d in decisions] == [
        (True, 2),
        (True, 1),
        (True, 0),
        (False, 0),
        (False, 0),
        (True, 2),
    ]
    assert all(not d.unavailable for d in decisions)
    # The next request is due one interval after the burst started.
    assert 90 < decisions[3].retry_after <= 100
    # The key lives until the bucket would be full again: 3 intervals.
    assert 290_000 < ttl_ms <= 300_000
