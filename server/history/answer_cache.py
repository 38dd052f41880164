"""Answers kept for a few seconds, and one read for many askers: every kiosk of an entrance polls the same
counts of today, and N screens must cost the history's read threads one read, not N.

Only good answers are kept: an error (a busy or unreachable database) is answered to those waiting for
that read and asked again by the next request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class RecentAnswers(Generic[T]):
    """`get(key, compute)`: the answer for `key` computed less than `ttl_s` ago, or the one being computed
    now, or a new one. Holds at most `max_keys` answers (the oldest go first)."""

    def __init__(
        self,
        ttl_s: float,
        keep: Callable[[T], bool],
        max_keys: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0 or max_keys < 1:
            raise ValueError("ttl_s must be >= 0 and max_keys >= 1")
        self.ttl_s = ttl_s
        self._keep = keep
        self._max_keys = max_keys
        self._clock = clock
        self._answers: dict[Hashable, tuple[float, T]] = {}
        self._pending: dict[Hashable, asyncio.Future[T]] = {}
        self.computed = 0
        """How many answers were computed (the rest were shared or kept ones): for tests and metrics."""

    def __len__(self) -> int:
        return len(self._answers)

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        kept = self._answers.get(key)
        if kept is not None:
            if kept[0] > self._clock():
                return kept[1]
            del self._answers[key]
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._compute(key, compute))
            self._pending[key] = pending
        # A waiter that goes away (client hung up) does not cancel the read the others wait for.
        return await asyncio.shield(pending)

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        try:
            self.computed += 1
            answer = await compute()
            if self._keep(answer) and self.ttl_s > 0:
                self._store(key, answer)
            return answer
        finally:
            self._pending.pop(key, None)

    def _store(self, key: Hashable, answer: T) -> None:
        now = self._clock()
        if len(self._answers) >= self._max_keys:
            for old in [k for k, (expires, _) in self._answers.items() if expires <= now]:
                del self._answers[old]
            while len(self._answers) >= self._max_keys:
                del self._answers[next(iter(self._answers))]
        self._answers[key] = (now + self.ttl_s, answer)
