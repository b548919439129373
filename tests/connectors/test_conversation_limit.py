"""Past the shop's monthly conversation limit (billing on: STRIPE_API_KEY and a pricing file
with a tiny limit), a new conversation gets the short polite message with the shop's contact on
EVERY channel (REST, widget, SMS and WhatsApp via Twilio, WhatsApp via Meta, email), in that
channel's wire format; the visitor's message and the refusal are recorded; Rasa is not asked.
Conversations that started under the limit go on, and one a person owns is never refused.
Two real gateways on one database with the providers' fakes (tests/connectors/handoff_stack.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from sqlalchemy import select, update

from billing.tables import BilledConversationRow
from connectors.inbox import LIMIT_NO_CONTACT
from core.conversations import MessageRow
from devtools.demo_shop import DEMO_NAME, DEMO_TENANT_ID
from tenants.models import TenantRow
from tenants.texts import ResponseOverrideRow
from tests.connectors.handoff_stack import Stack, frames_until_done, open_stack, socket_session
from tests.databases import database_params

pytestmark = pytest.mark.asyncio

CONTACT = "help@shop.example"
REFUSAL = (f"Sorry, we can't start a new chat right now. Please reach {DEMO_NAME} at "
           f"{CONTACT}.")
PLANS = {"default": "free", "plans": {"free": {"price_id": None,
                                               "limits": {"conversations_per_month": 1}}}}


@pytest_asyncio.fixture(params=database_params())
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    plans = tmp_path / "plans.yml"
    plans.write_text(yaml.safe_dump(PLANS))
    billing = {"STRIPE_API_KEY": "sk_test_conversation_limit", "BILLING_PLANS": str(plans)}
    async for opened in open_stack(request.param, tmp_path, billing):
        async with opened.sessions() as session:
            await session.execute(update(TenantRow).where(TenantRow.id == DEMO_TENANT_ID)
                                  .values(support_email=CONTACT))
            await session.commit()
        for gateway in opened.gateways:  # the shop's row as it is now, not as it was cached
            gateway.app.ctx.tenants._cache.clear()
        yield opened


async def messages(stack: Stack, channel: str) -> list[tuple[str, str]]:
    async with stack.sessions() as session:
        rows = (await session.execute(
            select(MessageRow.direction, MessageRow.text)
            .where(MessageRow.channel == channel).order_by(MessageRow.id))).all()
    return [(direction, text) for direction, text in rows]


async def widget(stack: Stack, text: str, gateway: int = 0) -> list[dict[str, object]]:
    ws, _ = await socket_session(stack.widget_url(gateway))
    try:
        await ws.send(json.dumps({"type": "message", "text": text, "id": "m1"}))
        return [f for f in await frames_until_done(ws) if f["type"] == "bot"]
    finally:
        await ws.close()


async def test_past_the_limit_every_channel_gets_the_polite_message_and_not_the_bot(
        stack: Stack) -> None:
    assert await stack.rest("hi", sender="first") == [
        {"recipient_id": "first", "text": "echo: hi"}]  # the month's one conversation

    # REST and the widget: the refusal is the answer to the request.
    assert await stack.rest("where is my order?", sender="second", gateway=1) == [
        {"recipient_id": "second", "text": REFUSAL}]
    assert [f["text"] for f in await widget(stack, "hello there")] == [REFUSAL]
    # SMS and WhatsApp through Twilio, WhatsApp through Meta, email: sent by the outbox.
    await stack.sms("hello from sms")
    await stack.twilio_whatsapp("hello from twilio whatsapp", gateway=1)
    await stack.meta_whatsapp("hello from meta")
    await stack.email("hello from email", "<limit@mail.gmail.com>")
    await stack.settle()
    assert [m.body for m in stack.twilio.sent] == [REFUSAL, REFUSAL]
    assert sorted(m.to for m in stack.twilio.sent) == ["+14155550123",
                                                       "whatsapp:+4915112345678"]
    assert stack.graph.texts == [REFUSAL]
    [mail] = stack.smtp.messages()
    plain = mail.get_body(("plain",))
    assert plain is not None and REFUSAL in plain.get_content()
    assert mail["In-Reply-To"] == "<limit@mail.gmail.com>"

    # Rasa heard only the conversation under the limit.
    assert stack.rasa.texts() == ["hi"]
    # Each refused conversation is recorded, and its message and the refusal are stored.
    async with stack.sessions() as session:
        counted = sorted((r.channel, r.over_limit) for r in (await session.execute(
            select(BilledConversationRow))).scalars())
    assert counted == [("email", True), ("rest", False), ("rest", True), ("sms", True),
                       ("web", True), ("whatsapp", True), ("whatsapp", True)]
    await stack.settle()
    assert await messages(stack, "sms") == [("in", "hello from sms"), ("out", REFUSAL)]
    assert await messages(stack, "web") == [("in", "hello there"), ("out", REFUSAL)]
    assert await messages(stack, "email") == [("in", "hello from email"), ("out", REFUSAL)]
    assert ("in", "where is my order?") in await messages(stack, "rest")

    # A refused conversation is refused for each of its messages, never silently dropped; the
    # one that started under the limit goes on with the bot.
    await stack.sms("anyone there?", gateway=1)
    await stack.settle()
    assert [m.body for m in stack.twilio.sent][-1] == REFUSAL and len(stack.twilio.sent) == 3
    assert await stack.rest("and my refund?", sender="first", gateway=1) == [
        {"recipient_id": "first", "text": "echo: and my refund?"}]
    assert stack.rasa.texts() == ["hi", "and my refund?"]


async def test_a_conversation_a_person_owns_is_never_refused(stack: Stack) -> None:
    await stack.rest("hi", sender="first")
    await stack.hand_to_person("sms", "+14155550123")
    await stack.sms("I am waiting for Sam")
    await stack.settle()
    # The agent has it: no refusal (and, as always while a person owns it, no bot message);
    # Rasa records the message.
    assert stack.twilio.sent == []
    assert stack.rasa.texts() == ["hi", "I am waiting for Sam"]
    async with stack.sessions() as session:
        counted = (await session.execute(select(BilledConversationRow).where(
            BilledConversationRow.channel == "sms"))).scalar_one()
    assert not counted.over_limit


async def test_the_refusal_is_in_the_shops_words_and_without_a_contact_says_no_address(
        stack: Stack) -> None:
    await stack.rest("hi", sender="first")
    async with stack.sessions() as session:
        session.add(ResponseOverrideRow(
            tenant_id=DEMO_TENANT_ID, name="utter_conversation_limit_reached",
            variants=[{"text": "{shop} is full this month: mail {contact}, please."}]))
        await session.commit()
    assert await stack.rest("hello", sender="second") == [
        {"recipient_id": "second", "text": f"{DEMO_NAME} is full this month: mail "
                                           f"{CONTACT}, please."}]
    async with stack.sessions() as session:
        await session.execute(update(TenantRow).where(TenantRow.id == DEMO_TENANT_ID)
                              .values(support_email=None))
        await session.commit()
    for gateway in stack.gateways:
        gateway.app.ctx.tenants._cache.clear()
    assert await stack.rest("hello", sender="third") == [
        {"recipient_id": "third", "text": LIMIT_NO_CONTACT}]
    assert stack.rasa.texts() == ["hi"]
