"""Time, injected: batch windows and retry delays read it from here, so tests need not wait.

Deadlines are wall-clock unix seconds because they are stored and must mean the same
thing after a restart; timers convert them to the loop's monotonic clock when armed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the batcher, the dispatcher and the spool poller need of time."""

    def now(self) -> float:
        """Unix seconds."""
        ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` at unix time ``when`` (at once if it has passed)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class LoopClock:
    """The real clock: ``time.time()`` plus the running loop's timer heap."""

    def __init__(self) -> None:
        self._time = time.time

    def now(self) -> float:
        """Unix seconds."""
        return self._time()

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """A loop timer; 10,000 of them cost 10,000 small heap entries."""
        return asyncio.get_running_loop().call_later(max(0.0, when - self._time()), callback)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)
