"""Rate limits: token buckets per client, conversation and shop, in the process and in Redis;
REST and the widget get 429 with Retry-After, provider messages over the limit are stored and
answered later in order, never dropped."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import update

from connectors.app import create_app
from connectors.errors import RateLimited
from connectors.limits import Limits, MemoryBuckets, buckets_for
from connectors.messages import InboundMessage
from core.conversations import MessageRow
from core.db import create_engine, session_factory, utcnow
from core.settings import Settings, async_database_url
from devtools.bootstrap import migrate, seed
from devtools.demo_shop import DEMO_TENANT_ID
from tenants.api_keys import issue_key
from tenants.models import TenantRow
from tests.conftest import services
from tests.connectors.channels.harness import shop
from tests.connectors.conftest import World
from tests.fakes.rasa_server import RasaFake
from tests.servers import serving

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(params=["memory", "redis"])
async def limits(request: pytest.FixtureRequest) -> AsyncIterator[Limits]:
    if request.param == "memory":
        yield Limits()
        return
    url = services()["redis_url"]
    if not url:
        pytest.skip("Redis not answering (make test sets TEST_REDIS_URL)")
    import redis.asyncio as aioredis
    client = aioredis.from_url(url)
    yield Limits(client)
    await client.aclose()


def message(channel: str = "web", user: str = "v1", client: str | None = "203.0.113.7",
            **rates: int) -> InboundMessage:
    # A shop of its own per test: Redis keeps buckets between runs.
    settings: dict[str, Any] = {"rate_per_client": 30, "rate_per_conversation": 20,
                                "rate_per_shop": 600, **rates}
    tenant = shop(f"s{uuid.uuid4().hex[:8]}", **settings)
    return InboundMessage(tenant=tenant, provider="web" if channel == "web" else "memory",
                          channel=channel, user_key=user, text="hi",
                          client_address=client if channel in ("web", "rest") else None)


def again(inbound: InboundMessage, **fields: Any) -> InboundMessage:
    return dataclasses.replace(inbound, **fields)


async def test_a_conversation_gets_a_minutes_worth_then_429_with_retry_after(
        limits: Limits) -> None:
    first = message(rate_per_conversation=6)
    for _ in range(6):
        await limits.admit(first)
    with pytest.raises(RateLimited) as refused:
        await limits.admit(first)
    assert refused.value.status == 429
    assert 1 <= refused.value.retry_after <= 10  # one token back in 60/6 = 10 s
    assert refused.value.headers == {"Retry-After": str(refused.value.retry_after)}
    # Another conversation of the same client and shop is not held back.
    await limits.admit(again(first, user_key="v2"))


async def test_one_client_across_conversations_is_held_to_its_own_rate(limits: Limits) -> None:
    first = message(rate_per_client=5)
    for i in range(5):
        await limits.admit(again(first, user_key=f"visitor-{i}"))
    with pytest.raises(RateLimited):
        await limits.admit(again(first, user_key="visitor-new"))
    await limits.admit(again(first, user_key="visitor-new", client_address="198.51.100.1"))


async def test_a_refused_message_takes_nothing_from_its_shop(limits: Limits) -> None:
    flood = message(rate_per_client=3, rate_per_shop=5)
    for _ in range(3):
        await limits.admit(flood)
    for _ in range(50):  # the flood goes on, refused: the shop's bucket keeps its two tokens
        with pytest.raises(RateLimited):
            await limits.admit(flood)
    for address in ("198.51.100.1", "198.51.100.2"):
        await limits.admit(again(flood, user_key=address, client_address=address))


async def test_concurrent_takes_never_exceed_the_bucket(limits: Limits) -> None:
    first = message(rate_per_conversation=20)
    results = await asyncio.gather(*(limits.admit(first) for _ in range(60)),
                                   return_exceptions=True)
    assert sum(r is None for r in results) == 20
    assert all(isinstance(r, RateLimited) for r in results if r is not None)


async def test_provider_messages_are_never_refused_but_spaced_out(limits: Limits) -> None:
    sms = message(channel="sms", user="+15550001", rate_per_conversation=6, rate_per_client=0)
    waits = [await limits.reserve(sms) for _ in range(9)]
    assert waits[:6] == [0.0] * 6
    # One every 10 s after the burst, each after the one before.
    assert [math.ceil(w) for w in waits[6:]] == [10, 20, 30]


async def test_rest_counts_by_conversation_and_shop_not_by_the_calling_server() -> None:
    rest = message(channel="rest")
    assert [b.key.split(":")[3] for b in buckets_for(rest)] == ["conv", "shop"]
    web = message(channel="web")
    assert any(":client:" in b.key for b in buckets_for(web))
    assert not buckets_for(message(rate_per_client=0, rate_per_conversation=0, rate_per_shop=0))


async def test_memory_buckets_refill_and_forget_full_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("connectors.limits.time.monotonic", lambda: clock[0])
    buckets = MemoryBuckets()
    bucket = buckets_for(message(rate_per_conversation=60, rate_per_client=0,
                                 rate_per_shop=0))
    assert [buckets.take(bucket, reserve=False) for _ in range(60)] == [0.0] * 60
    assert buckets.take(bucket, reserve=False) == pytest.approx(1.0)
    clock[0] += 1.0  # one token back a second
    assert buckets.take(bucket, reserve=False) == 0.0
    clock[0] += 120.0
    buckets._forget_full(clock[0])
    assert buckets._levels == {}


# -- through the inbox ---------------------------------------------------------------------


async def test_a_provider_flood_is_stored_and_answered_later_in_order(world: World) -> None:
    world.tenant = dataclasses.replace(world.tenant, rate_per_conversation=3, rate_per_client=0,
                                       rate_per_shop=0)
    user = f"+1555{uuid.uuid4().int % 10**7:07d}"
    accepted = [await world.inbox.accept(world.message(f"m{i}", f"SM-flood-{i}", user=user))
                for i in range(6)]
    assert accepted == [True] * 6  # the provider is never refused: it would only retry
    await world.settle()
    assert [part for _, part in world.sender.sent] == ["echo: m0", "echo: m1", "echo: m2"]
    waiting = [m for m in await world.rows(MessageRow) if m.direction == "in" and not m.handled_at]
    assert len(waiting) == 3
    due = [m.lease_expires_at for m in waiting]
    assert due == sorted(due) and due[0] > utcnow() + timedelta(seconds=10)  # 20 s apart
    async with world.sessions() as session:  # ... a minute later
        await session.execute(update(MessageRow).where(MessageRow.handled_at.is_(None))
                              .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    await world.inbox.sweep()
    await world.settle()
    assert [part for _, part in world.sender.sent] == [f"echo: m{i}" for i in range(6)]


async def test_a_widget_flood_gets_429_and_stores_nothing(world: World) -> None:
    world.tenant = dataclasses.replace(world.tenant, rate_per_client=2)
    address = f"203.0.113.{uuid.uuid4().int % 250}-{world.run}"
    for i in range(2):
        await world.inbox.converse(world.message("hi", f"web-{i}", channel="web",
                                                 client_address=address))
    with pytest.raises(RateLimited):
        await world.inbox.converse(world.message("hi", "web-2", channel="web",
                                                 client_address=address))
    await world.settle()
    assert len([m for m in await world.rows(MessageRow) if m.direction == "in"]) == 2


# -- over HTTP, through the real gateway -----------------------------------------------------


async def test_a_rest_flood_gets_429_json_with_retry_after(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    await asyncio.to_thread(migrate, db)
    await seed(async_database_url(db))
    engine = create_engine(async_database_url(db))
    async with engine.begin() as conn:
        await conn.execute(update(TenantRow).where(TenantRow.id == DEMO_TENANT_ID)
                           .values(rate_per_conversation=5))
    await engine.dispose()
    key = await demo_key(async_database_url(db))
    with RasaFake() as rasa:
        settings = Settings.from_env({
            "DATABASE_URL": db,
            "SWITCHBOARD_CREDENTIALS_KEY": os.environ["SWITCHBOARD_CREDENTIALS_KEY"],
            "RASA_TOKEN": "t", "RASA_URL": rasa.base_url, "ACTION_SERVER_URL": rasa.base_url,
            "RASA_TIMEOUT": "3", "SWITCHBOARD_VAR_DIR": str(tmp_path)})
        app = create_app(settings, name=f"gw{uuid.uuid4().hex[:8]}")
        async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
            answers = [await client.post("/channels/demo/rest/webhook",
                                         json={"sender": "me", "message": f"hi {i}"},
                                         headers={"Authorization": f"Bearer {key}"})
                       for i in range(8)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    for answer in answers[5:]:
        assert 1 <= int(answer.headers["retry-after"]) <= 12  # 60 / 5 s a token
        assert set(answer.json()) == {"detail"}
    rows = sqlite3.connect(tmp_path / "gw.db").execute(
        "select count(*) from messages where direction = 'in'").fetchone()
    assert rows == (5,)  # nothing of a refused message is stored


async def demo_key(url: str) -> str:
    engine = create_engine(url)
    try:
        return (await issue_key(session_factory(engine), DEMO_TENANT_ID, "tests")).secret
    finally:
        await engine.dispose()
