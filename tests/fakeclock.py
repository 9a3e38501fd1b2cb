"""A clock for tests: time stands still until the test advances it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable


class FakeTimer:
    """A pending callback of the fake clock."""

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run."""
        self.cancelled = True


class FakeClock:
    """Implements hookd.clock.Clock; ``advance()`` runs due callbacks in deadline order."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start
        self._heap: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        """The fake unix time."""
        return self.t

    def call_at(self, when: float, callback: Callable[[], object]) -> FakeTimer:
        """Schedule ``callback`` at ``when``."""
        timer = FakeTimer(when, callback)
        heapq.heappush(self._heap, (when, next(self._order), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock is advanced past now + seconds."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        self.call_at(self.t + seconds, wake)
        await fut

    def advance(self, seconds: float) -> int:
        """Move time forward, running every callback that comes due; return how many ran."""
        target = self.t + seconds
        ran = 0
        while self._heap and self._heap[0][0] <= target:
            when, _, timer = heapq.heappop(self._heap)
            self.t = max(self.t, when)
            if not timer.cancelled:
                timer.callback()
                ran += 1
        self.t = target
        return ran

    @property
    def pending(self) -> int:
        """Callbacks not yet run or cancelled."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def due(self) -> list[float]:
        """The times of the callbacks not yet run or cancelled, soonest first."""
        return sorted(when for when, _, t in self._heap if not t.cancelled)
