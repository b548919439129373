"""Leases on provider messages: claims are atomic, a dead gateway's messages are taken over by
another gateway's sweep, a conversation is answered in arrival order across gateways, and
nothing is answered twice (SQLite; PostgreSQL + Redis when they answer)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from connectors.inbox import Inbox, reply_key
from connectors.leases import LEASE, Conversation, Leases
from connectors.messages import InboundMessage
from connectors.rasa_client import RasaClient
from core import conversations, deliveries
from core.conversations import MessageRow
from core.db import utcnow
from core.settings import Secret
from tenants import TenantResolver
from tests.connectors.conftest import World

pytestmark = pytest.mark.asyncio


async def store(world: World, message: InboundMessage, owner: str | None = None,
                expires_in: timedelta = timedelta(0)) -> int:
    """A message as a gateway stored and acknowledged it; `owner` holds its lease."""
    pk = await conversations.record_message(
        world.sessions, tenant_id=message.tenant.id, sender_id=message.sender_id,
        channel=message.channel, direction="in", text=message.text,
        message_id=message.message_id, payload=message.stored_payload(),
        answer_from=utcnow() + expires_in)
    if owner is not None:
        async with world.sessions() as session:
            await session.execute(update(MessageRow).where(MessageRow.id == pk)
                                  .values(lease_owner=owner, attempts=1))
            await session.commit()
    return pk


def second_gateway(world: World, **kw: Any) -> tuple[Inbox, RasaClient]:
    client = RasaClient(world.rasa.base_url, Secret("t"), 5.0, world.rasa.base_url)
    return Inbox(world.sessions, client, world.outbox, retry_wait=0.01,
                 tenants=TenantResolver(world.sessions).get, **kw), client


async def until_idle(*inboxes: Inbox) -> None:
    async with asyncio.timeout(10):
        while any(inbox.busy for inbox in inboxes):
            await asyncio.sleep(0.01)


async def test_a_claim_is_won_once_among_many(world: World) -> None:
    message = world.message("hi", "SM-race")
    await store(world, message)
    conversation = Conversation(message.tenant.id, message.sender_id)
    gateways = [Leases(world.sessions, owner=f"gateway-{i}") for i in range(8)]
    claims = await asyncio.gather(*(g.claim_next(conversation) for g in gateways))
    assert sum(c is not None for c in claims) == 1


async def test_a_dead_gateways_expired_lease_is_taken_over_by_a_sweep(world: World) -> None:
    # A gateway acknowledged these, claimed them and died: one lease ran out, one is fresh.
    dead = world.message("where is my order?", "SM-dead", user="+15550009",
                         reply_context={"to": "+15005550006"})
    await store(world, dead, owner="dead-gateway", expires_in=-timedelta(seconds=1))
    alive = world.message("hello", "SM-alive", user="+15550010")
    await store(world, alive, owner="live-gateway", expires_in=LEASE)

    assert await world.inbox.sweep() == 1
    await world.settle()
    assert world.sender.sent == [("+15550009", "echo: where is my order?")]
    assert world.sender.contexts[-1].reply_context == {"to": "+15005550006"}
    [taken, held] = [m for m in await world.rows(MessageRow) if m.direction == "in"]
    assert taken.handled_at is not None and taken.attempts == 2
    assert held.handled_at is None and held.lease_owner == "live-gateway"
    assert await world.inbox.sweep() == 0  # answered once, never twice


async def test_two_gateways_sweeping_together_answer_each_message_once(world: World) -> None:
    for i in range(10):
        await store(world, world.message(f"m{i}", f"SM-orphan-{i}", user=f"+1555100{i}"),
                    owner="dead-gateway", expires_in=-timedelta(seconds=1))
    other, client = second_gateway(world)
    await asyncio.gather(world.inbox.sweep(), other.sweep())
    await until_idle(world.inbox, other)
    await client.aclose()
    assert sorted(part for _, part in world.sender.sent) == sorted(
        f"echo: m{i}" for i in range(10))


async def test_a_conversation_is_answered_in_order_across_gateways(world: World) -> None:
    other, client = second_gateway(world)
    gateways = [world.inbox, other]
    for i in range(8):  # one visitor's messages land on either gateway
        assert await gateways[i % 2].accept(world.message(f"m{i}", f"SM-across-{i}"))
    await until_idle(*gateways)
    for gateway in gateways:  # a message given back meanwhile is found by a sweep
        await gateway.sweep()
    await until_idle(*gateways)
    await client.aclose()
    assert [part for _, part in world.sender.sent] == [f"echo: m{i}" for i in range(8)]


async def test_a_later_message_waits_for_the_held_one_before_it(world: World) -> None:
    first = world.message("first", "SM-held-1")
    await store(world, first, owner="slow-gateway", expires_in=LEASE)
    assert await world.inbox.accept(world.message("second", "SM-held-2"))
    await world.settle()
    assert world.sender.sent == []  # the first is still being answered elsewhere
    async with world.sessions() as session:  # ... until its gateway died and the lease ran out
        await session.execute(update(MessageRow).where(MessageRow.lease_owner == "slow-gateway")
                              .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    await world.inbox.sweep()
    await world.settle()
    assert [part for _, part in world.sender.sent] == ["echo: first", "echo: second"]


async def test_leases_held_are_renewed(world: World) -> None:
    message = world.message("hi", "SM-renew")
    await store(world, message)
    claimed = await world.inbox.leases.claim_next(
        Conversation(message.tenant.id, message.sender_id))
    assert claimed is not None
    async with world.sessions() as session:  # time passes...
        await session.execute(update(MessageRow).where(MessageRow.id == claimed.id)
                              .values(lease_expires_at=utcnow() + timedelta(seconds=2)))
        await session.commit()
    assert await world.inbox.leases.renew() == 1
    [row] = await world.rows(MessageRow)
    assert row.lease_expires_at > utcnow() + LEASE - timedelta(seconds=5)
    assert row.lease_owner == world.inbox.leases.owner
    # Nobody else can claim it meanwhile.
    other = Leases(world.sessions, owner="other")
    assert await other.claim_next(Conversation(message.tenant.id, message.sender_id)) is None


async def test_a_dead_gateways_message_whose_answer_went_out_is_not_answered_twice(
        world: World) -> None:
    """It sent the answer and died before marking the message handled."""
    message = world.message("hi", "SM-sent-then-died")
    pk = await store(world, message, owner="dead-gateway", expires_in=-timedelta(seconds=1))
    reply = await conversations.record_message(
        world.sessions, tenant_id=message.tenant.id, sender_id=message.sender_id,
        channel=message.channel, direction="out", text="echo: hi", message_id=reply_key(pk))
    await deliveries.record_send(
        world.sessions, tenant_id=message.tenant.id, channel=message.channel,
        provider="memory", sender_id=message.sender_id, message_pk=reply,
        provider_message_id="mem-before-the-crash", status="accepted")
    await world.inbox.sweep()
    await world.settle()
    assert world.sender.sent == []
    [row] = [m for m in await world.rows(MessageRow) if m.direction == "in"]
    assert row.handled_at is not None
