"""Turn slots shared fairly: a shop at its cap leaves slots to others, waiting turns are served
round-robin across shops and first come first served within one, and a turn that gives up
waiting leaks nothing."""

from __future__ import annotations

import asyncio

import pytest

import connectors.rasa_client
from connectors.fairness import FairSlots
from connectors.rasa_client import RasaClient
from core.settings import Secret
from tests.fakes.rasa_server import RasaFake

pytestmark = pytest.mark.asyncio


async def hold(slots: FairSlots, shop: str, order: list[str], release: asyncio.Event,
               name: str) -> None:
    async with slots.slot(shop):
        order.append(name)
        await release.wait()


async def test_a_shop_at_its_cap_leaves_slots_for_the_others() -> None:
    slots = FairSlots(total=4, per_shop=3)
    order: list[str] = []
    release = asyncio.Event()
    flood = [asyncio.create_task(hold(slots, "a", order, release, f"a{i}")) for i in range(50)]
    await asyncio.sleep(0)
    assert slots.in_flight["a"] == 3 and slots.waiting("a") == 47
    other = asyncio.create_task(hold(slots, "b", order, release, "b0"))
    await asyncio.sleep(0)
    assert "b0" in order  # started at once, not behind a's 47
    release.set()
    await asyncio.gather(*flood, other)
    assert not slots.in_flight and not slots.waiting("a")


async def test_freed_slots_go_round_robin_across_shops() -> None:
    slots = FairSlots(total=2, per_shop=2)
    order: list[str] = []
    gates = {name: asyncio.Event() for name in ("x1", "x2")}
    blockers = [asyncio.create_task(hold(slots, "x", order, gates[n], n)) for n in gates]
    await asyncio.sleep(0)
    done = asyncio.Event()
    done.set()
    waiting = [asyncio.create_task(hold(slots, shop, order, done, f"{shop}{i}"))
               for shop in ("a", "b") for i in range(3)]  # a's three queued before b's
    await asyncio.sleep(0)
    for gate in gates.values():
        gate.set()
    await asyncio.gather(*blockers, *waiting)
    served = [name for name in order if name[0] in "ab"]
    assert served == ["a0", "b0", "a1", "b1", "a2", "b2"]


async def test_a_turn_that_stops_waiting_leaks_no_slot() -> None:
    slots = FairSlots(total=1, per_shop=1)
    release = asyncio.Event()
    order: list[str] = []
    holder = asyncio.create_task(hold(slots, "a", order, release, "a0"))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await slots.acquire("b")
    assert not slots.waiting("b")
    release.set()
    await holder
    await asyncio.wait_for(slots.acquire("b"), 1)  # the slot came back
    slots.release("b")
    assert not slots.in_flight


async def test_another_shops_turn_is_not_queued_behind_a_flood(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the Rasa client: 40 slow turns (0.3 s each) of one shop fill its share; the
    other shop's turn is answered while most of the flood still waits."""
    monkeypatch.setattr(connectors.rasa_client, "MAX_TURNS_IN_FLIGHT", 8)
    monkeypatch.setattr(connectors.rasa_client, "PER_SHOP", 6)
    with RasaFake() as fake:
        rasa = RasaClient(fake.base_url, Secret("t"), 10.0, fake.base_url)
        try:
            flood = [asyncio.create_task(rasa.turn(f"shop-a:rest:{i}", "slow",
                                                   {"tenant_id": "shop-a"}))
                     for i in range(40)]
            await asyncio.sleep(0.05)
            assert rasa.slots.waiting("shop-a") == 34
            answer = await rasa.turn("shop-b:rest:1", "slow", {"tenant_id": "shop-b"})
            still_queued = rasa.slots.waiting("shop-a")
            await asyncio.gather(*flood)
        finally:
            await rasa.aclose()
    assert answer.messages[0]["text"] == "echo: slow"
    assert still_queued > 20  # b was answered while most of the flood still waited
