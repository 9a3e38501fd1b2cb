"""Tasks started on the side (an attempt, a reload, a spool round), never fire-and-forget.

The loop keeps only a weak reference to a task, so one nobody holds can be collected
mid-flight; a ``TaskSet`` holds each until it ends and lets its owner cancel or wait for
the ones still running at a stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TaskSet:
    """The running tasks one owner started, each dropped as it ends."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` as a task held here until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel(self) -> None:
        """Cancel every task still held."""
        for task in list(self._tasks):
            task.cancel()

    # A caller-side asyncio.timeout would cancel the wait and lose which tasks were still
    # running; a stop needs that count, and decides itself whether to cancel them.
    async def wait(self, timeout: float | None = None) -> int:  # noqa: ASYNC109
        """Wait for the tasks held now to end, at most ``timeout`` seconds; return how many are still running.

        Errors are not collected here: each task handles its own, and one that escapes is a
        bug that asyncio's "exception was never retrieved" report should show, not hide.
        """
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return len(pending)

    def __len__(self) -> int:
        return len(self._tasks)
