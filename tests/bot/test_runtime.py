"""The runtime's routing of turns to shops' models (bot/runtime.py `ShopRouter`), with agents
that stand in for Rasa's: which model answers a shop, switching without a failed turn,
unloading under the memory budget and loading again on demand.

Rasa's real agents behind it run in the stack's test of issue 15
(tests/integration/test_shop_models.py)."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot import runtime
from bot.runtime import BASE, ShopRouter, served_by
from bot.shop_models import Registry
from tests.polling import eventually

pytestmark = pytest.mark.asyncio
V1, V2, V3 = ("1" * 32, "2" * 32, "3" * 32)


@dataclass
class Message:
    sender_id: str


class FakeAgent:
    def __init__(self, name: str) -> None:
        self.name = name
        self.model_id = name
        self.turns: list[str] = []
        self.processor = f"processor of {name}"
        self.release = asyncio.Event()
        self.release.set()

    def is_ready(self) -> bool:
        return True

    async def handle_message(self, message: Message) -> list[dict[str, Any]]:
        await self.release.wait()
        self.turns.append(message.sender_id)
        return [{"text": f"{self.name} answers"}]


class FakeFactory:
    """Loads "models" (their file's text names the agent), slowly when asked."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def load(self, model: Path) -> FakeAgent:
        self.gate.wait(10)
        text = model.read_text()
        if text == "broken":
            raise ValueError("not a model archive")
        self.loads.append(text)
        return FakeAgent(text)


def write_model(registry: Registry, shop: str, version: str, text: str | None = None) -> None:
    path = registry.model_file(shop, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text or f"{shop}-{version[:1]}")


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "shop-models")


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(runtime, "POLL", 0.05)
    yield
    gc.unfreeze()  # every load settles the heap (core/heap.py); the session collects as usual


async def router_for(registry: Registry, budget_mb: float = 1024,
                     factory: FakeFactory | None = None) -> ShopRouter:
    router = ShopRouter(FakeAgent("base"), factory or FakeFactory(),  # type: ignore[arg-type]  # a stand-in
                        registry, budget_mb)
    router.start()
    return router


async def say(router: ShopRouter, sender: str) -> tuple[str, str | None]:
    answer = await router.handle_message(Message(sender))
    return answer[0]["text"], served_by.get()


async def test_each_shop_is_answered_by_its_own_model_others_by_the_base(
        registry: Registry) -> None:
    write_model(registry, "shop-a", V1)
    registry.set_active("shop-a", V1)
    router = await router_for(registry)
    assert await say(router, "shop-a:web:visitor") == ("shop-a-1 answers", V1)
    assert await say(router, "shop-b:web:visitor") == ("base answers", BASE)
    assert await say(router, "no-shop-in-this-id") == ("base answers", BASE)
    # Rasa's HTTP API routes read attributes: the request's shop picks the agent
    await router.prepare("shop-a")
    assert router.processor == "processor of shop-a-1"
    await router.prepare(None)
    assert router.processor == "processor of base"
    await router.stop()


async def test_a_new_version_answers_once_loaded_and_no_turn_waits_or_fails(
        registry: Registry) -> None:
    factory = FakeFactory()
    write_model(registry, "shop-a", V1)
    registry.set_active("shop-a", V1)
    router = await router_for(registry, factory=factory)
    assert (await say(router, "shop-a:web:v"))[1] == V1
    # a turn on the old model is in flight while the switch happens
    old = router.resident[V1].agent
    old.release.clear()
    in_flight = asyncio.create_task(say(router, "shop-a:web:v"))
    factory.gate.clear()  # the new model takes its time to load
    write_model(registry, "shop-a", V2)
    registry.set_active("shop-a", V2)
    await asyncio.sleep(0.3)
    assert router.wanted["shop-a"] == V2 and router.routes["shop-a"] == V1
    old.release.set()
    assert await in_flight == ("shop-a-1 answers", V1)  # finished on the model it started on
    assert await say(router, "shop-a:web:v") == ("shop-a-1 answers", V1)  # still the old one
    factory.gate.set()
    await eventually(lambda: router.routes["shop-a"] == V2)
    assert await say(router, "shop-a:web:v") == ("shop-a-2 answers", V2)
    assert V1 not in router.resident  # no shop uses it any more
    # rollback: the earlier version, the same way
    registry.set_active("shop-a", V1)
    await eventually(lambda: router.routes["shop-a"] == V1)
    assert await say(router, "shop-a:web:v") == ("shop-a-1 answers", V1)
    # back to the base model
    registry.set_active("shop-a", None)
    await eventually(lambda: "shop-a" not in router.routes)
    assert await say(router, "shop-a:web:v") == ("base answers", BASE)
    assert not router.resident
    await router.stop()


async def test_a_model_that_does_not_load_leaves_the_shop_where_it_was(
        registry: Registry) -> None:
    write_model(registry, "shop-a", V1)
    registry.set_active("shop-a", V1)
    router = await router_for(registry)
    await say(router, "shop-a:web:v")
    write_model(registry, "shop-a", V2, "broken")
    registry.set_active("shop-a", V2)
    await asyncio.sleep(0.4)
    assert router.routes["shop-a"] == V1
    assert await say(router, "shop-a:web:v") == ("shop-a-1 answers", V1)
    await router.stop()


async def test_least_recently_used_models_are_unloaded_past_the_budget_and_reload(
        registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    factory = FakeFactory()
    for shop, version in (("shop-a", V1), ("shop-b", V2), ("shop-c", V3)):
        write_model(registry, shop, version)
        registry.set_active(shop, version)
    # every load costs 10 MB here; the budget holds two
    sizes = iter(range(0, 10_000, 10))
    monkeypatch.setattr(runtime, "rss_mb", lambda: float(next(sizes)))
    router = ShopRouter(FakeAgent("base"), factory, registry, 25)  # type: ignore[arg-type]  # a stand-in
    router.routes = registry.active()
    router.wanted = dict(router.routes)
    await say(router, "shop-a:web:v")
    await say(router, "shop-b:web:v")
    await say(router, "shop-a:web:v")  # a used more recently than b
    assert list(router.resident) == [V2, V1]
    b = router.resident[V2].agent
    b.itself = b  # Rasa's agents hold reference cycles: only the collector frees them
    b_alive = weakref.ref(b)
    del b
    await say(router, "shop-c:web:v")
    assert set(router.resident) == {V1, V3}  # b, the least recently used, went
    assert b_alive() is None  # and is freed, although loading settled it (core/heap.py)
    assert router.used_mb() <= 25
    assert await say(router, "shop-b:web:v") == ("shop-b-2 answers", V2)  # loaded again
    assert factory.loads.count("shop-b-2") == 2
    assert V1 not in router.resident  # a was the least recent now
    described = router.describe()
    assert described["budget_mb"] == 25 and len(described["resident"]) == 2
    assert json.dumps(described)


async def test_at_start_models_load_while_they_fit_the_budget_the_rest_on_demand(
        registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five shops have their own model, the budget holds two: the runtime loads two at start
    (loading the others would only unload those), and a later shop's first turn loads its."""
    factory = FakeFactory()
    shops = [f"shop-{n}" for n in range(5)]
    for n, shop in enumerate(shops):
        write_model(registry, shop, str(n + 1) * 32)
        registry.set_active(shop, str(n + 1) * 32)
    sizes = iter(range(0, 10_000, 10))  # every load costs 10 MB
    monkeypatch.setattr(runtime, "rss_mb", lambda: float(next(sizes)))
    router = await router_for(registry, budget_mb=25, factory=factory)
    await eventually(lambda: router._preloading is not None and router._preloading.done())
    assert len(factory.loads) == 2 and len(router.resident) == 2
    later = next(shop for shop in shops if f"{shop}-" not in " ".join(factory.loads))
    number = shops.index(later) + 1
    assert await say(router, f"{later}:web:v") == (f"{later}-{number} answers", str(number) * 32)
    assert len(factory.loads) == 3 and router.used_mb() <= 25
    await router.stop()


async def test_many_turns_waiting_for_one_model_load_it_once(registry: Registry) -> None:
    factory = FakeFactory()
    write_model(registry, "shop-a", V1)
    registry.set_active("shop-a", V1)
    factory.gate.clear()
    router = ShopRouter(FakeAgent("base"), factory, registry, 1024)  # type: ignore[arg-type]  # a stand-in
    router.routes = {"shop-a": V1}
    turns = [asyncio.create_task(say(router, f"shop-a:web:v{i}")) for i in range(5)]
    await asyncio.sleep(0.1)
    factory.gate.set()
    assert {answer for answer in await asyncio.gather(*turns)} == {("shop-a-1 answers", V1)}
    assert factory.loads == ["shop-a-1"]
