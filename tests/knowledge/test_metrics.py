"""Metrics of knowledge answers' LLM calls (issue 12, point 10), through the real SDK against
the fake Messages API: tokens by shop, errors by kind, breakers by state read at scrape time,
and no question text or model name in a label."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import REGISTRY, generate_latest

from knowledge import metrics
from knowledge.breaker import Breakers
from tests.fakes.anthropic_server import AnthropicFake
from tests.knowledge.test_llm_per_shop import (  # noqa: F401 - fixtures
    BAD_MODEL,
    QUESTIONS,
    World,
    answers,
    fake,
    for_model,
    world,
)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.asyncio
async def test_tokens_by_shop_errors_by_kind_and_breakers_by_state(
        world: World, fake: AnthropicFake) -> None:  # noqa: F811
    broken = replace(world.one, llm_model=BAD_MODEL)
    fake.fail_next(404, times=100, message=f"model: {BAD_MODEL}", match=for_model(BAD_MODEL))
    service = answers(world, fake, Breakers(threshold=5, cooldown=30))
    refused = value("switchboard_llm_errors_total", kind="model")
    circuit = value("switchboard_llm_errors_total", kind="circuit_open")

    assert (await service.answer(world.two, QUESTIONS[0])).mode == "llm"
    assert (await service.answer(broken, QUESTIONS[0])).mode == "fallback"  # 404: circuit open
    assert (await service.answer(broken, QUESTIONS[1])).mode == "fallback"  # not even called

    assert value("switchboard_llm_tokens_total", shop=world.two.id, direction="input") > 0
    assert value("switchboard_llm_tokens_total", shop=world.two.id, direction="output") > 0
    assert value("switchboard_llm_errors_total", kind="model") == refused + 1
    assert value("switchboard_llm_errors_total", kind="circuit_open") == circuit + 1
    assert value("switchboard_llm_breakers", state="open") == 1
    assert value("switchboard_llm_breakers", state="closed") == 1
    assert value("switchboard_llm_breakers_not_closed", shop=broken.id) == 1
    assert value("switchboard_llm_breakers_not_closed", shop=world.two.id) == 0

    text = generate_latest(REGISTRY).decode()
    for question in QUESTIONS:
        assert question not in text
    assert BAD_MODEL not in text


def test_breakers_are_read_when_scraped_a_half_open_one_included() -> None:
    now = [0.0]
    breakers = Breakers(threshold=1, cooldown=10, clock=lambda: now[0])
    metrics.BREAKERS.watch(breakers)
    breakers.get("shop-a", "m").failed()
    assert value("switchboard_llm_breakers", state="open") == 1
    now[0] = 11.0  # no call since: the clock alone made it half-open
    assert value("switchboard_llm_breakers", state="half-open") == 1
    assert value("switchboard_llm_breakers_not_closed", shop="shop-a") == 1


def test_status_kinds() -> None:
    assert [metrics.status_kind(s) for s in (429, 529, 500, 503, 401)] == [
        "rate_limited", "overloaded", "server", "server", "refused"]
