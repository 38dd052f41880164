"""`server.history.answer_cache.RecentAnswers`: kept answers, shared reads, errors not kept, bounded
memory."""

from __future__ import annotations

import asyncio

import pytest

from server.history.answer_cache import RecentAnswers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def answers(clock: Clock, max_keys: int = 256) -> RecentAnswers[object]:
    return RecentAnswers(
        2.0, keep=lambda answer: not isinstance(answer, Exception), max_keys=max_keys, clock=clock
    )


async def test_an_answer_is_reused_until_it_is_too_old() -> None:
    clock = Clock()
    cache = answers(clock)
    calls: list[int] = []

    async def compute() -> object:
        calls.append(1)
        return {"people": len(calls)}

    assert await cache.get("a", compute) == {"people": 1}
    clock.now += 1.9
    assert await cache.get("a", compute) == {"people": 1}
    assert await cache.get("b", compute) == {"people": 2}, "another key is another question"
    clock.now += 0.2
    assert await cache.get("a", compute) == {"people": 3}
    assert cache.computed == 3


async def test_many_askers_at_once_cost_one_read_and_a_leaving_one_does_not_cancel_it() -> None:
    cache = answers(Clock())
    release = asyncio.Event()
    calls: list[int] = []

    async def compute() -> object:
        calls.append(1)
        await release.wait()
        return "counts"

    waiters = [asyncio.ensure_future(cache.get("a", compute)) for _ in range(10)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    release.set()
    results = await asyncio.gather(*waiters[1:])
    assert results == ["counts"] * 9 and calls == [1]


async def test_an_error_answer_is_given_to_its_waiters_but_not_kept() -> None:
    cache = answers(Clock())
    outcomes: list[object] = [RuntimeError("database away"), "counts"]

    async def compute() -> object:
        return outcomes.pop(0)

    first = await cache.get("a", compute)
    assert isinstance(first, RuntimeError)
    assert await cache.get("a", compute) == "counts", "asked again at once"
    assert len(cache) == 1


async def test_a_failing_read_raises_to_every_waiter_and_is_asked_again() -> None:
    cache = answers(Clock())
    failures = [True]

    async def compute() -> object:
        await asyncio.sleep(0)
        if failures.pop(0) if failures else False:
            raise OSError("read failed")
        return "counts"

    results = await asyncio.gather(cache.get("a", compute), cache.get("a", compute), return_exceptions=True)
    assert all(isinstance(result, OSError) for result in results)
    assert await cache.get("a", compute) == "counts"


async def test_memory_is_bounded() -> None:
    clock = Clock()
    cache = answers(clock, max_keys=3)

    async def compute() -> object:
        return "x"

    for key in range(10):
        await cache.get(key, compute)
    assert len(cache) == 3
    clock.now += 5
    await cache.get("new", compute)
    assert len(cache) == 1, "expired answers go first"


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        RecentAnswers(-1.0, keep=bool)
    with pytest.raises(ValueError):
        RecentAnswers(1.0, keep=bool, max_keys=0)
