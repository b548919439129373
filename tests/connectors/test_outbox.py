"""The outbox: renders through the provider's sender, retries transient failures without
resending parts, records every delivery and its status, keeps WhatsApp's window."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from connectors.messages import StatusUpdate
from connectors.outbound import PermanentSendError, Reply, TransientSendError
from core.conversations import MessageRow
from core.db import utcnow
from core.deliveries import DeliveryRow
from tests.connectors.conftest import MemorySender, World, make_outbox

pytestmark = pytest.mark.asyncio

TWO_PARTS = [Reply(None, ({"text": "part 1"}, {"text": "part 2"}))]


async def test_each_part_is_recorded_with_the_status_callback_url(world: World) -> None:
    recipient = world.message("hi", "SM-parts").recipient()
    await world.outbox.send(recipient, TWO_PARTS, message_pk=None)
    assert world.sender.sent == [("+15550001", "part 1"), ("+15550001", "part 2")]
    deliveries = await world.rows(DeliveryRow)
    assert [(d.provider, d.provider_message_id, d.status) for d in deliveries] == [
        ("memory", "mem-0", "accepted"), ("memory", "mem-1", "accepted")]
    assert world.sender.contexts[0].status_callback_url == (
        "https://bot.example.com/channels/demo/memory/status")


async def test_transient_failures_are_retried_without_resending_parts(world: World) -> None:
    # Part 1 goes out, part 2 fails once: the retry sends part 2 only.
    world.sender.part_failures = {"part 2": [TransientSendError("502")]}
    await world.outbox.send(world.message("long", "SM-retry").recipient(), TWO_PARTS)
    assert [part for _, part in world.sender.sent] == ["part 1", "part 2"]
    deliveries = await world.rows(DeliveryRow)
    assert [(d.status, d.attempts) for d in deliveries] == [("accepted", 2)] * 2


async def test_gives_up_after_the_configured_attempts(world: World) -> None:
    sender = MemorySender()
    sender.failures = [TransientSendError("timeout", code="503")] * 5
    outbox = make_outbox(world.sessions, sender, send_attempts=3)
    await outbox.send(world.message("hi", "SM-giveup").recipient(), TWO_PARTS)
    [delivery] = await world.rows(DeliveryRow)
    assert (delivery.status, delivery.attempts, delivery.error_code) == ("failed", 3, "503")
    assert len(sender.failures) == 2  # three tries, then the outbox gave up


async def test_permanent_failure_is_recorded_with_its_code(world: World) -> None:
    world.sender.failures = [PermanentSendError("not a mobile number", code="21614")]
    await world.outbox.send(world.message("hi", "SM-perm").recipient(),
                            [Reply(None, ({"text": "hi"},))])
    [delivery] = await world.rows(DeliveryRow)
    assert (delivery.status, delivery.error_code, delivery.attempts) == ("failed", "21614", 1)


async def test_a_part_sent_before_a_permanent_failure_is_recorded_too(world: World) -> None:
    world.sender.part_failures = {"part 2": [PermanentSendError("blocked", code="21610")]}
    await world.outbox.send(world.message("long", "SM-half").recipient(), TWO_PARTS)
    deliveries = await world.rows(DeliveryRow)
    assert [(d.provider_message_id, d.status, d.error_code) for d in deliveries] == [
        ("mem-0", "accepted", None), (None, "failed", "21610")]


async def test_nothing_to_say_sends_and_records_nothing(world: World) -> None:
    await world.outbox.send(world.message("hi", "SM-empty").recipient(), [])
    assert world.sender.sent == [] and await world.rows(DeliveryRow) == []


async def test_a_channel_switched_off_meanwhile_is_recorded_as_not_sent(world: World) -> None:
    tenant = type(world.tenant)(**{**world.tenant.__dict__, "credentials_encrypted": None})
    recipient = world.message("hi", "SM-off").recipient()
    recipient = type(recipient)(**{**recipient.__dict__, "tenant": tenant})
    await world.outbox.send(recipient, TWO_PARTS)
    [delivery] = await world.rows(DeliveryRow)
    assert delivery.status == "not_sent" and "not set up" in delivery.error_detail
    assert world.sender.sent == []


async def test_whatsapp_window_closes_24_hours_after_the_last_visitor_message(
        world: World) -> None:
    wa = world.message("hi", "wamid", user="+15550002", channel="whatsapp")
    await world.inbox.accept(wa)
    await world.settle()
    assert world.sender.contexts[-1].window_open is True
    async with world.sessions() as session:
        await session.execute(update(MessageRow).values(created_at=utcnow() - timedelta(hours=25)))
        await session.commit()
    assert await world.outbox.window_open(wa.sender_id, "whatsapp") is False
    assert await world.outbox.window_open(wa.sender_id, "sms") is True


async def test_outside_the_window_a_refused_send_is_recorded_as_not_sent(world: World) -> None:
    wa = world.message("hi", "wamid-closed", user="+15550003", channel="whatsapp")
    world.sender.failures = [PermanentSendError("no template", code="131047")]
    await world.outbox.send(wa.recipient(), [Reply(None, ({"text": "hi"},))])  # never wrote
    [delivery] = await world.rows(DeliveryRow)
    assert (delivery.status, delivery.error_code) == ("not_sent", "131047")
    assert world.sender.contexts[-1].window_open is False


async def test_status_updates_move_forward_only_and_stay_in_their_tenant(world: World) -> None:
    await world.outbox.send(world.message("hi", "SM-status").recipient(),
                            [Reply(None, ({"text": "hi"},))])
    for status in ("delivered", "sent"):  # out of order, as providers deliver them
        await world.inbox.record_status(world.tenant, "memory", "sms",
                                        StatusUpdate("mem-0", status))
    other = type(world.tenant)(**{**world.tenant.__dict__, "id": "another-tenant"})
    await world.inbox.record_status(other, "memory", "sms",
                                    StatusUpdate("mem-0", "failed", "30003"))
    [delivery] = await world.rows(DeliveryRow)
    assert (delivery.status, delivery.error_code) == ("delivered", None)


async def test_a_status_before_the_send_is_recorded_joins_it(world: World) -> None:
    await world.inbox.record_status(world.tenant, "memory", "sms", StatusUpdate("mem-0", "sent"))
    await world.inbox.accept(world.message("hi", "SM-early"))
    await world.settle()
    [delivery] = await world.rows(DeliveryRow)
    assert (delivery.status, delivery.sender_id) == ("sent", f"{world.tenant.id}:sms:+15550001")
