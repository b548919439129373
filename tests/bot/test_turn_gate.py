"""bot/turn_gate.py: at most `slots` turns run, the others get in in the order they came, a
turn waiting on another service frees its slot and gets back in before turns not yet started,
and a turn cancelled anywhere leaves the count right."""

from __future__ import annotations

import asyncio

import pytest

from bot.turn_gate import TurnGate, stepping_out

pytestmark = pytest.mark.asyncio


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_turns_past_the_slots_start_in_arrival_order() -> None:
    gate = TurnGate(2)
    started: list[int] = []
    release = asyncio.Event()

    async def turn(n: int) -> None:
        async with gate.turn():
            started.append(n)
            await release.wait()

    tasks = []
    for n in range(6):
        tasks.append(asyncio.create_task(turn(n)))
        await settle()
    assert started == [0, 1] and gate.running == 2 and gate.waiting == 4
    release.set()
    await asyncio.gather(*tasks)
    assert started == [0, 1, 2, 3, 4, 5]
    assert gate.running == 0 and gate.waiting == 0


async def test_a_turn_waiting_on_a_service_frees_its_slot_and_comes_back_first() -> None:
    gate = TurnGate(1)
    log: list[str] = []
    service = asyncio.Event()

    async def slow() -> None:
        async with gate.turn():
            log.append("slow starts")
            async with stepping_out():
                log.append("slow waits on its service")
                await service.wait()
            log.append("slow goes on")
            await settle()
            log.append("slow ends")

    async def quick(name: str) -> None:
        async with gate.turn():
            log.append(f"{name} runs")
            await settle()

    first = asyncio.create_task(slow())
    await settle()
    second = asyncio.create_task(quick("second"))
    await settle()
    assert log == ["slow starts", "slow waits on its service", "second runs"]
    # While `second` runs, the service answers and a third visitor writes.
    service.set()
    third = asyncio.create_task(quick("third"))
    await asyncio.gather(first, second, third)
    assert log[3:] == ["slow goes on", "slow ends", "third runs"]
    assert gate.running == 0 and gate.waiting == 0


async def test_outside_a_turn_stepping_out_changes_nothing() -> None:
    gate = TurnGate(1)
    async with stepping_out():
        assert gate.running == 0
    async with gate.turn():
        async with stepping_out():
            assert gate.running == 0
            async with stepping_out():  # already out: nothing more to give
                assert gate.running == 0
        assert gate.running == 1
    assert gate.running == 0


async def test_cancelled_turns_give_back_what_they_hold_and_nothing_more() -> None:
    gate = TurnGate(1)
    service, later = asyncio.Event(), asyncio.Event()

    async def turn(out: bool = False) -> None:
        async with gate.turn():
            if out:
                async with stepping_out():
                    await service.wait()
            await later.wait()

    running = asyncio.create_task(turn())
    queued = asyncio.create_task(turn())
    out = asyncio.create_task(turn(out=True))
    await settle()
    assert gate.running == 1 and gate.waiting == 2
    queued.cancel()  # cancelled while waiting to start
    await settle()
    assert gate.running == 1 and gate.waiting == 1
    running.cancel()  # cancelled while running: `out` gets in, then steps out
    await settle()
    assert gate.running == 0 and gate.waiting == 0
    blocker = asyncio.create_task(turn())
    await settle()
    service.set()  # `out` wants back in, behind `blocker`'s slot
    await settle()
    assert gate.running == 1 and gate.waiting == 1
    out.cancel()  # cancelled while waiting to come back in
    await settle()
    assert gate.running == 1 and gate.waiting == 0
    later.set()
    await blocker
    await asyncio.gather(running, queued, out, return_exceptions=True)
    assert gate.running == 0 and gate.waiting == 0
    async with gate.turn():  # the slot is free for the next visitor
        assert gate.running == 1


async def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        TurnGate(0)
