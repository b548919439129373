"""bot/turn_gate.py: at most `slots` turns run, the others get in in the order they came; a
turn keeps its slot through a quick call to another service, frees it when the call takes
longer than the gate's patience and gets back in before turns not yet started; a turn
cancelled anywhere leaves the count right and its call cancelled."""

from __future__ import annotations

import asyncio

import pytest

from bot.turn_gate import TurnGate, waiting_on
from tests.polling import eventually

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


class ShopTurns:
    """Turns named "<shop><n>" in `gate`: each notes its start, then runs until `finish`
    lets the running ones end, one at a time."""

    def __init__(self, gate: TurnGate) -> None:
        self.gate = gate
        self.started: list[str] = []
        self.release = asyncio.Event()

    def start(self, name: str) -> asyncio.Task[None]:
        async def turn() -> None:
            async with self.gate.turn(name[0]):
                self.started.append(name)
                await self.release.wait()
                self.release.clear()

        return asyncio.create_task(turn())

    async def finish(self, tasks: list[asyncio.Task[None]]) -> None:
        while not all(task.done() for task in tasks):
            self.release.set()
            await settle()


async def test_shops_take_turns_so_a_burst_of_one_holds_up_another_by_one_turn() -> None:
    """Shop a's ten turns are waiting when shop b's two come: b's get in after one more of
    a's each, not after all ten; each shop's own turns keep their order."""
    shops = ShopTurns(TurnGate(1))
    tasks = [shops.start(f"a{n}") for n in range(10)]
    await settle()
    tasks += [shops.start(f"b{n}") for n in range(2)]
    await settle()
    assert shops.started == ["a0"] and shops.gate.waiting == 11
    await shops.finish(tasks)
    assert shops.started[:5] == ["a0", "a1", "b0", "a2", "b1"]
    assert [n for n in shops.started if n[0] == "a"] == [f"a{n}" for n in range(10)]
    assert shops.gate.running == 0 and shops.gate.waiting == 0


async def test_a_shops_only_waiter_cancelled_leaves_the_others_their_turns() -> None:
    shops = ShopTurns(TurnGate(1))
    first = shops.start("a0")
    await settle()
    lone, later = shops.start("b0"), shops.start("c0")
    await settle()
    lone.cancel()
    await settle()
    again = shops.start("b1")  # b's place in line went with its only waiter
    await settle()
    await shops.finish([first, later, again])
    assert lone.cancelled() and shops.started == ["a0", "c0", "b1"]
    assert shops.gate.running == 0 and shops.gate.waiting == 0


async def test_each_turn_says_how_long_it_waited_to_start() -> None:
    waits: list[float] = []
    gate = TurnGate(1, waited=waits.append)
    release = asyncio.Event()

    async def turn() -> None:
        async with gate.turn():
            await release.wait()

    first, second = asyncio.create_task(turn()), asyncio.create_task(turn())
    await settle()
    assert len(waits) == 1 and waits[0] < 0.05  # the first got in at once
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(first, second)
    assert len(waits) == 2 and waits[1] >= 0.05  # the second waited for the first


async def test_a_quick_call_keeps_the_slot() -> None:
    gate = TurnGate(1, patience=0.5)
    log: list[str] = []

    async def turn(name: str) -> None:
        async with gate.turn():
            log.append(f"{name} starts")
            await waiting_on(asyncio.sleep(0.01))
            log.append(f"{name} ends")

    await asyncio.gather(turn("first"), turn("second"))
    assert log == ["first starts", "first ends", "second starts", "second ends"]


async def test_a_slow_call_frees_the_slot_and_its_turn_comes_back_first() -> None:
    gate = TurnGate(1, patience=0.02)
    log: list[str] = []
    service, second_done = asyncio.Event(), asyncio.Event()

    async def answer() -> str:
        await service.wait()
        return "shipped"

    async def slow() -> None:
        async with gate.turn():
            log.append("slow starts")
            log.append(await waiting_on(answer()))
            log.append("slow ends")

    async def quick(name: str, done: asyncio.Event | None = None) -> None:
        async with gate.turn():
            log.append(f"{name} runs")
            if done is not None:
                await done.wait()

    first = asyncio.create_task(slow())
    await settle()
    second = asyncio.create_task(quick("second", second_done))
    await settle()
    assert log == ["slow starts"]  # within its patience the slow turn keeps the slot
    await eventually(lambda: len(log) == 2, timeout=2.0, every=0.005)
    assert log == ["slow starts", "second runs"] and gate.running == 1
    # While `second` runs, the service answers and a third visitor writes.
    service.set()
    third = asyncio.create_task(quick("third"))
    await settle()
    assert gate.waiting == 2
    second_done.set()
    await asyncio.gather(first, second, third)
    assert log[2:] == ["shipped", "slow ends", "third runs"]
    assert gate.running == 0 and gate.waiting == 0


async def test_outside_a_turn_a_call_is_just_awaited() -> None:
    gate = TurnGate(1, patience=0.01)
    assert await waiting_on(asyncio.sleep(0.03, result="plain")) == "plain"
    assert gate.running == 0


async def test_cancelled_turns_give_back_what_they_hold_and_nothing_more() -> None:
    gate = TurnGate(1, patience=0.01)
    service, later = asyncio.Event(), asyncio.Event()
    calls: list[asyncio.Task[None]] = []

    async def call() -> None:
        calls.append(asyncio.current_task())  # type: ignore[arg-type]  # inside a task
        await service.wait()

    async def turn(out: bool = False) -> None:
        async with gate.turn():
            if out:
                await waiting_on(call())
            await later.wait()

    running = asyncio.create_task(turn())
    queued = asyncio.create_task(turn())
    out = asyncio.create_task(turn(out=True))
    await settle()
    assert gate.running == 1 and gate.waiting == 2
    queued.cancel()  # cancelled while waiting to start
    await settle()
    assert gate.running == 1 and gate.waiting == 1
    running.cancel()  # cancelled while running: `out` gets in, calls, and steps out
    await eventually(lambda: gate.running == 0, timeout=2.0, every=0.005)
    assert gate.running == 0 and gate.waiting == 0
    blocker = asyncio.create_task(turn())
    await settle()
    service.set()  # `out`'s call answers: it wants back in, behind `blocker`'s slot
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


async def test_a_turn_cancelled_during_its_call_cancels_the_call() -> None:
    gate = TurnGate(1, patience=0.01)
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def call() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def turn() -> None:
        async with gate.turn():
            await waiting_on(call())

    for wait in (0.0, 0.05):  # within the patience, and once out of the gate
        task = asyncio.create_task(turn())
        await started.wait()
        await asyncio.sleep(wait)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await settle()
        started.clear()
    assert cancelled == [True, True]
    assert gate.running == 0 and gate.waiting == 0


async def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        TurnGate(0)
