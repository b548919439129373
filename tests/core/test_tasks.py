"""Background tasks are kept until they end, and shutdown can wait for them."""

from __future__ import annotations

import asyncio

import pytest

from core.tasks import TaskSet

pytestmark = pytest.mark.asyncio


async def test_tasks_are_kept_until_they_end_and_drain_waits_for_them() -> None:
    tasks, done = TaskSet(), []

    async def work(n: int) -> int:
        await asyncio.sleep(0.01 * n)
        done.append(n)
        return n

    spawned = [tasks.spawn(work(n)) for n in (3, 1, 2)]
    assert len(tasks) == 3
    await tasks.drain(5)
    assert sorted(done) == [1, 2, 3] and len(tasks) == 0
    assert [t.result() for t in spawned] == [3, 1, 2]


async def test_drain_gives_up_after_its_timeout_and_a_failure_is_not_raised_there() -> None:
    tasks = TaskSet()

    async def boom() -> None:
        raise RuntimeError("logged by its owner")

    failing = tasks.spawn(boom())
    slow = tasks.spawn(asyncio.sleep(10))
    await tasks.drain(0.05)
    assert failing.done() and not slow.done()
    slow.cancel()
    assert isinstance(failing.exception(), RuntimeError)
