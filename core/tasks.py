"""Background tasks a process starts and must not lose: kept referenced, awaited at shutdown.

`asyncio.create_task` holds only a weak reference to its task: one nobody keeps may be garbage
collected mid-flight, and a server that stops without waiting for them cuts replies off. Every
task the gateway starts after answering a request (a bot turn, storing a reply, crash recovery)
goes through one `TaskSet`, which keeps it until it ends and lets shutdown wait for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TaskSet:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run `work` in the background; the set keeps it until it ends."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the tasks still running (server shutdown), at most `timeout` seconds.
        Their exceptions were theirs to log; they are not raised here."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


async def wait_or_cancel(task: asyncio.Task[Any], timeout: float) -> None:
    """Give a loop that was told to stop `timeout` seconds to end by itself, then cancel it
    (a background loop's stop: the job worker, the webhook dispatcher)."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
