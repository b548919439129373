"""Conversations counted as they start and refused past the monthly limit: a new one after 60
minutes of silence, the month it starts in, the limit refusing the next new conversation but
not ongoing ones (until the limit is raised), a person's conversation never refused, refusals
recorded, billing off free."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from billing.conversations import ConversationMeter
from billing.tables import BilledConversationRow, BillingAccountRow, MeterEventRow
from billing.usage import monthly_usage
from tests.billing.storage import accounts

SHOP = "shop-1"
NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def meter(sessions: async_sessionmaker) -> ConversationMeter:
    return ConversationMeter(sessions, accounts(sessions))


async def rows(sessions: async_sessionmaker) -> list[BilledConversationRow]:
    async with sessions() as session:
        return list((await session.execute(select(BilledConversationRow)
                                           .order_by(BilledConversationRow.id))).scalars())


async def meter_events(sessions: async_sessionmaker) -> list[str]:
    async with sessions() as session:
        return list((await session.execute(select(MeterEventRow.identifier)
                                           .order_by(MeterEventRow.id))).scalars())


@pytest.mark.asyncio
async def test_a_conversation_is_a_senders_messages_without_an_hour_of_silence(
        sessions: async_sessionmaker) -> None:
    gateway = meter(sessions)
    first = await gateway.admit(SHOP, f"{SHOP}:web:a", "web", NOW)
    assert first.new and not first.refused
    for minutes in (1, 30, 89):  # each within the hour of the message before
        again = await gateway.admit(SHOP, f"{SHOP}:web:a", "web", NOW + minutes * MINUTE)
        assert not again.new and again.conversation_id == first.conversation_id
    later = await gateway.admit(SHOP, f"{SHOP}:web:a", "web", NOW + 149 * MINUTE)
    assert later.new and later.conversation_id != first.conversation_id
    # Another gateway process (no memory of this sender) sees the same conversation.
    other = await meter(sessions).admit(SHOP, f"{SHOP}:web:a", "web", NOW + 150 * MINUTE)
    assert not other.new and other.conversation_id == later.conversation_id
    assert [r.last_message_at for r in await rows(sessions)] == [
        NOW + 89 * MINUTE, NOW + 150 * MINUTE]
    # Each counted conversation waits for Stripe's meter, keyed by its row.
    assert await meter_events(sessions) == [f"conversation-{first.conversation_id}",
                                            f"conversation-{later.conversation_id}"]


@pytest.mark.asyncio
async def test_the_limit_refuses_the_next_new_conversation_but_not_ongoing_ones(
        sessions: async_sessionmaker) -> None:
    gateway = meter(sessions)  # the free plan: 2 conversations a month
    assert not (await gateway.admit(SHOP, f"{SHOP}:sms:+1", "sms", NOW)).refused
    assert not (await gateway.admit(SHOP, f"{SHOP}:web:b", "web", NOW)).refused
    refused = await gateway.admit(SHOP, f"{SHOP}:whatsapp:+2", "whatsapp", NOW)
    assert refused.refused and refused.new and refused.limit == 2
    # Every message of the refused conversation is refused again (never a silent drop).
    assert (await gateway.admit(SHOP, f"{SHOP}:whatsapp:+2", "whatsapp", NOW + MINUTE)).refused
    # The two that started under the limit go on.
    assert not (await gateway.admit(SHOP, f"{SHOP}:sms:+1", "sms", NOW + 5 * MINUTE)).refused
    assert not (await gateway.admit(SHOP, f"{SHOP}:web:b", "web", NOW + 5 * MINUTE)).refused
    # Another shop has its own count.
    assert not (await gateway.admit("shop-2", "shop-2:web:c", "web", NOW)).refused
    # Recorded: the refusal is counted apart, and Stripe is not told of it.
    usage = await monthly_usage(sessions, SHOP, NOW)
    assert (usage.conversations, usage.conversations_refused) == (2, 1)
    assert len(await meter_events(sessions)) == 3
    assert [(r.channel, r.over_limit) for r in await rows(sessions) if r.tenant_id == SHOP] == [
        ("sms", False), ("web", False), ("whatsapp", True)]


@pytest.mark.asyncio
async def test_a_conversation_counts_in_the_month_it_starts(
        sessions: async_sessionmaker) -> None:
    gateway = meter(sessions)
    last_evening = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    await gateway.admit(SHOP, f"{SHOP}:web:a", "web", last_evening)
    await gateway.admit(SHOP, f"{SHOP}:web:b", "web", last_evening)
    # Past midnight the ongoing one is still November's; a new one is December's, under the
    # new month's limit although November's is used up.
    ongoing = await gateway.admit(SHOP, f"{SHOP}:web:a", "web", last_evening + 40 * MINUTE)
    assert not ongoing.new and not ongoing.refused
    december = await gateway.admit(SHOP, f"{SHOP}:web:c", "web", last_evening + 40 * MINUTE)
    assert december.new and not december.refused
    assert [r.month for r in await rows(sessions)] == ["2026-11", "2026-11", "2026-12"]
    assert (await monthly_usage(sessions, SHOP, last_evening)).conversations == 2
    assert (await monthly_usage(sessions, SHOP, last_evening + MINUTE * 40)).conversations == 1


@pytest.mark.asyncio
async def test_a_conversation_a_person_owns_is_never_refused(
        sessions: async_sessionmaker) -> None:
    gateway = meter(sessions)
    for sender in ("a", "b"):
        await gateway.admit(SHOP, f"{SHOP}:web:{sender}", "web", NOW)
    # Past the limit, but an agent has it: counted as served, not refused.
    owned = await gateway.admit(SHOP, f"{SHOP}:sms:+3", "sms", NOW, person_owns=True)
    assert owned.new and not owned.refused
    refused = await gateway.admit(SHOP, f"{SHOP}:web:d", "web", NOW)
    assert refused.refused
    # A refused conversation an agent takes over is answered from then on.
    assert not (await gateway.admit(SHOP, f"{SHOP}:web:d", "web", NOW + MINUTE,
                                    person_owns=True)).refused
    assert (await monthly_usage(sessions, SHOP, NOW)).conversations == 3


@pytest.mark.asyncio
async def test_without_billing_nothing_is_counted_or_refused(
        sessions: async_sessionmaker) -> None:
    off = ConversationMeter(sessions, accounts(sessions, pricing=None))
    for n in range(5):
        assert not (await off.admit(SHOP, f"{SHOP}:web:{n}", "web", NOW)).refused
    assert await rows(sessions) == [] and await meter_events(sessions) == []


@pytest.mark.asyncio
async def test_a_refused_conversation_is_answered_once_the_limit_is_raised(
        sessions: async_sessionmaker) -> None:
    gateway = meter(sessions)
    for sender in ("a", "b"):
        await gateway.admit(SHOP, f"{SHOP}:web:{sender}", "web", NOW)
    refused = await gateway.admit(SHOP, f"{SHOP}:web:c", "web", NOW)
    assert refused.refused
    # The owner subscribes to a plan without a conversation limit (Stripe's webhook).
    async with sessions() as session:
        session.add(BillingAccountRow(tenant_id=SHOP, plan="pro", status="active",
                                      stripe_customer_id="cus_1"))
        await session.commit()
    raised = await gateway.admit(SHOP, f"{SHOP}:web:c", "web", NOW + 5 * MINUTE)
    assert not raised.refused and raised.new and raised.limit is None
    assert not (await gateway.admit(SHOP, f"{SHOP}:web:c", "web", NOW + 6 * MINUTE)).refused
    usage = await monthly_usage(sessions, SHOP, NOW)
    assert (usage.conversations, usage.conversations_refused) == (3, 1)


@pytest.mark.asyncio
async def test_a_billed_conversation_names_its_visitor_by_pseudonym_only(
        sessions: async_sessionmaker) -> None:
    phone, email = f"{SHOP}:sms:+15551234567", f"{SHOP}:email:sam@example.com"
    for sender in (phone, email):
        await meter(sessions).admit(SHOP, sender, sender.split(":")[1], NOW)
    stored = [r.visitor for r in await rows(sessions)]
    assert len(set(stored)) == 2
    assert not any("5551234567" in v or "sam@" in v for v in stored)
    # The same visitor later is the same conversation (the pseudonym is stable).
    again = await meter(sessions).admit(SHOP, phone, "sms", NOW + MINUTE)
    assert not again.new
