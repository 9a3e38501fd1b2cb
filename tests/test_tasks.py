"""TaskSet: tasks held until they end, cancelled or waited for at a stop."""

from __future__ import annotations

import asyncio

from hookd.tasks import TaskSet


async def test_a_spawned_task_is_held_until_it_ends() -> None:
    """spawn() keeps the task (the loop holds only a weak reference) and lets it go once it has ended."""
    tasks = TaskSet()
    gate = asyncio.Event()
    task = tasks.spawn(gate.wait(), name="gate")
    assert task.get_name() == "gate"
    assert len(tasks) == 1
    gate.set()
    assert await task is True
    await asyncio.sleep(0)  # done callbacks run on the loop's next turn
    assert len(tasks) == 0


async def test_wait_reports_what_is_still_running_and_cancel_ends_it() -> None:
    """wait(timeout) returns how many tasks outlived it; cancel() then ends them without waiting."""
    tasks = TaskSet()
    assert await tasks.wait(0) == 0
    finished = tasks.spawn(asyncio.sleep(0))
    hung = tasks.spawn(asyncio.Event().wait())
    assert await tasks.wait(0.01) == 1
    assert finished.done()
    assert not hung.done()
    tasks.cancel()
    assert await tasks.wait() == 0
    assert hung.cancelled()
    assert len(tasks) == 0
