"""ReadAhead: a reply stream taken in batches of what is ready, sans sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.errors import UpstreamUnavailable
from gateway.upstream.read_ahead import MAX_MISSES, ReadAhead

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def ready(*messages: bytes) -> AsyncIterator[bytes]:
    for message in messages:
        yield message


async def test_messages_ready_together_are_taken_together() -> None:
    reader = ReadAhead(ready(b"a", b"b", b"c"))
    assert await reader.take() == [b"a", b"b", b"c"]
    assert await reader.take() == []
    assert await reader.take() == []


async def test_the_first_message_is_not_held_for_the_next() -> None:
    release = asyncio.Event()
    sent_second = False

    async def held() -> AsyncIterator[bytes]:
        nonlocal sent_second
        yield b"first"
        await release.wait()
        sent_second = True
        yield b"second"
        yield b"third"

    reader = ReadAhead(held())
    assert await reader.take() == [b"first"]
    assert not sent_second
    release.set()
    # The read left waiting carries on, and what is ready after it joins it.
    assert await reader.take() == [b"second", b"third"]
    assert await reader.take() == []


async def test_an_error_comes_after_the_messages_before_it() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"
        raise UpstreamUnavailable("backend went away")

    reader = ReadAhead(failing())
    assert await reader.take() == [b"one", b"two"]
    with pytest.raises(UpstreamUnavailable):
        await reader.take()
    assert await reader.take() == []


async def test_an_error_while_waiting_is_raised_by_that_take() -> None:
    release = asyncio.Event()

    async def failing() -> AsyncIterator[bytes]:
        yield b"one"
        await release.wait()
        raise UpstreamUnavailable("backend went away")

    reader = ReadAhead(failing())
    assert await reader.take() == [b"one"]
    release.set()
    with pytest.raises(UpstreamUnavailable):
        await reader.take()


async def test_a_batch_is_bounded_by_its_bytes() -> None:
    reader = ReadAhead(ready(*[b"x" * 10] * 5), max_bytes=25)
    assert await reader.take() == [b"x" * 10] * 3
    assert await reader.take() == [b"x" * 10] * 2
    assert await reader.take() == []


async def test_closing_cancels_the_read_left_waiting() -> None:
    cleaned: list[str] = []

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield b"one"
            await asyncio.Event().wait()
            yield b"never"
        except asyncio.CancelledError:
            cleaned.append("cancelled")
            raise
        finally:
            cleaned.append("finally")

    source = endless()
    reader = ReadAhead(source)
    assert await reader.take() == [b"one"]
    await reader.aclose()
    assert cleaned == ["cancelled", "finally"]
    # The source is finished: nothing is left running.
    with pytest.raises(StopAsyncIteration):
        await anext(source)
    assert await reader.take() == []


async def test_a_take_cancelled_while_waiting_ends_the_source() -> None:
    cleaned: list[str] = []

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield b"one"
            await asyncio.Event().wait()
            yield b"never"
        finally:
            cleaned.append("finally")

    reader = ReadAhead(endless())
    assert await reader.take() == [b"one"]
    waiting = asyncio.ensure_future(reader.take())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert cleaned == ["finally"]
    await reader.aclose()


async def test_a_stream_never_ready_early_is_then_read_plainly() -> None:
    async def one_per_wakeup_then_a_burst() -> AsyncIterator[bytes]:
        for n in range(MAX_MISSES + 1):
            await asyncio.sleep(0)
            yield b"slow %d" % n
        for n in range(3):
            yield b"burst %d" % n

    reader = ReadAhead(one_per_wakeup_then_a_burst())
    batches = []
    while batch := await reader.take():
        batches.append(batch)
    # The reads started early after the first MAX_MISSES messages all had to
    # wait: the burst after them is no longer looked for, so it is taken one
    # by one.
    assert batches == [[b"slow %d" % n] for n in range(MAX_MISSES + 1)] + [
        [b"burst %d" % n] for n in range(3)
    ]
