"""Waiting in async tests for something another task or thread makes true: one copy instead of
one per test module."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(check: Callable[[], bool], timeout: float = 5.0,
                     every: float = 0.01) -> None:
    """Return once `check()` holds; AssertionError when it still does not after `timeout`
    seconds (polled every `every` seconds, the event loop running meanwhile)."""
    for _ in range(max(1, round(timeout / every))):
        if check():
            return
        await asyncio.sleep(every)
    if not check():
        raise AssertionError(f"the condition did not hold within {timeout:g} s")
