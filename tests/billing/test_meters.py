"""Usage reported to Stripe's Billing Meters, against the Stripe sandbox over real HTTP: a
conversation reported once; a failed call (500, or a timeout after Stripe recorded it) retried
with the same identifier and counted once; LLM tokens reported; shops without a Stripe
customer skipped without a call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from billing.conversations import ConversationMeter
from billing.meters import NO_CUSTOMER, MeterReporter, unreported
from billing.stripe_api import StripeApi
from billing.tables import BillingAccountRow, MeterEventRow
from knowledge.tables import LlmUsageRow
from tests.billing.storage import PRICING, accounts
from tests.fakes.stripe_server import StripeServer, stripe_server

PAYING, FREE = "shop-paying", "shop-free"
CUSTOMER = "cus_paying"
CONVERSATIONS = PRICING.meters["conversations"]
TOKENS = PRICING.meters["llm_tokens"]
NOW = datetime.now(UTC).replace(microsecond=0)  # Stripe takes events of the last 35 days


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[StripeServer]:
    async with stripe_server() as server:
        yield server


@pytest_asyncio.fixture
async def api(fake: StripeServer) -> AsyncIterator[StripeApi]:
    # No retries inside the library and a short timeout: the reporter's own retries are what
    # is tested here.
    client = StripeApi(fake.api_key, fake.base_url, max_network_retries=0, timeout=0.5)
    yield client
    await client.aclose()


def reporter(sessions: async_sessionmaker, api: StripeApi) -> MeterReporter:
    return MeterReporter(sessions, api, PRICING, backoff=(0.0,), call_attempts=1)


async def paying_shop(sessions: async_sessionmaker) -> None:
    async with sessions() as session:
        session.add(BillingAccountRow(tenant_id=PAYING, stripe_customer_id=CUSTOMER,
                                      plan="pro", status="active"))
        await session.commit()


async def conversation(sessions: async_sessionmaker, tenant_id: str, visitor: str) -> None:
    admitted = await ConversationMeter(sessions, accounts(sessions)).admit(
        tenant_id, f"{tenant_id}:web:{visitor}", "web", NOW)
    assert not admitted.refused


async def events(sessions: async_sessionmaker) -> list[MeterEventRow]:
    async with sessions() as session:
        return list((await session.execute(
            select(MeterEventRow).order_by(MeterEventRow.id))).scalars())


@pytest.mark.asyncio
async def test_a_conversation_is_reported_once(sessions: async_sessionmaker, api: StripeApi,
                                               fake: StripeServer) -> None:
    await paying_shop(sessions)
    await conversation(sessions, PAYING, "a")
    sender = reporter(sessions, api)
    assert (await sender.report_once()).sent == 1
    assert (await sender.report_once()).sent == 0  # nothing left: not sent again
    assert fake.sandbox.meter_total(CONVERSATIONS, CUSTOMER) == 1
    [sent] = fake.sandbox.meter_events
    [row] = await events(sessions)
    assert sent["identifier"] == row.identifier == f"conversation-{1}"
    assert sent["timestamp"] == int(NOW.timestamp())
    assert row.reported_at is not None and row.attempts == 0 and row.error is None


@pytest.mark.asyncio
async def test_a_failed_call_is_retried_with_the_same_identifier_and_counted_once(
        sessions: async_sessionmaker, api: StripeApi, fake: StripeServer) -> None:
    await paying_shop(sessions)
    await conversation(sessions, PAYING, "a")
    await conversation(sessions, PAYING, "b")
    sender = reporter(sessions, api)
    # A 500 for the first; Stripe being away, the second waits for the next pass.
    fake.sandbox.fail_next("/v1/billing/meter_events", status=500)
    assert (await sender.report_once()).failed == 1
    first, second = await events(sessions)
    assert first.reported_at is None and first.attempts == 1 and first.error
    assert second.attempts == 0 and second.reported_at is None
    # Then a call Stripe records but whose answer never comes (the client times out).
    fake.sandbox.fail_next("/v1/billing/meter_events", mode="hang", seconds=5)
    assert (await sender.report_once()).failed == 1
    assert (await sender.report_once()).sent == 2
    assert await unreported(sessions) == 0
    calls = fake.sandbox.calls_to("/v1/billing/meter_events", "POST")
    assert len(calls) == 4  # 500, timeout, then both again
    by_identifier: dict[str, set[str | None]] = {}
    for call in calls:
        by_identifier.setdefault(call.params["identifier"], set()).add(call.idempotency_key)
    # Every try of a row carried its identifier and the same idempotency key.
    assert all(len(keys) == 1 for keys in by_identifier.values())
    assert sorted(by_identifier) == ["conversation-1", "conversation-2"]
    # Stripe counted each conversation once.
    assert fake.sandbox.meter_total(CONVERSATIONS, CUSTOMER) == 2
    assert sorted(e["identifier"] for e in fake.sandbox.meter_events) == sorted(by_identifier)


@pytest.mark.asyncio
async def test_llm_tokens_are_reported_and_shops_without_customer_skipped(
        sessions: async_sessionmaker, api: StripeApi, fake: StripeServer) -> None:
    await paying_shop(sessions)
    async with sessions() as session:
        session.add_all([
            LlmUsageRow(tenant_id=PAYING, model="m", input_tokens=300, output_tokens=45,
                        created_at=NOW),
            LlmUsageRow(tenant_id=FREE, model="m", input_tokens=10, output_tokens=5,
                        created_at=NOW),
            LlmUsageRow(tenant_id=PAYING, model="m", input_tokens=100, output_tokens=5,
                        created_at=NOW)])
        await session.commit()
    await conversation(sessions, FREE, "z")
    sender = reporter(sessions, api)
    done = await sender.report_once()
    assert (done.sent, done.skipped) == (2, 2)
    assert fake.sandbox.meter_total(TOKENS, CUSTOMER) == 450
    assert fake.sandbox.meter_total(CONVERSATIONS) == 0
    rows = {row.identifier: row for row in await events(sessions)}
    assert set(rows) == {"llm-1", "llm-2", "llm-3", "conversation-1"}
    assert rows["llm-1"].value == 345 and rows["llm-1"].meter == "llm_tokens"
    for skipped in ("llm-2", "conversation-1"):
        assert rows[skipped].reported_at is not None and rows[skipped].error == NO_CUSTOMER
    # New usage is picked up; what was copied is not copied again (also by a new reporter,
    # as after a restart or in another admin process).
    async with sessions() as session:
        session.add(LlmUsageRow(tenant_id=PAYING, model="m", input_tokens=1, output_tokens=1,
                                created_at=NOW))
        await session.commit()
    assert await reporter(sessions, api).collect_llm_usage() == 1
    assert await sender.collect_llm_usage() == 0
    assert (await sender.report_once()).sent == 1
    assert fake.sandbox.meter_total(TOKENS, CUSTOMER) == 452
    assert len(fake.sandbox.calls_to("/v1/billing/meter_events")) == 3
