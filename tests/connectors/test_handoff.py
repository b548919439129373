"""The gateway's side of the handoff, per channel, through two real gateways on one database:
while a person owns a conversation no bot message goes out on any channel (whichever gateway
takes the visitor's message), the visitor's messages reach Rasa and the agents' live stream;
an agent's reply reaches the visitor through their own channel in its wire format; a rating
after the satisfaction question is thanked without the bot. (tests/connectors/handoff_stack.py
says what is real.) About 1 s per test.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, update

from connectors.channels.email.sender import references_chain
from connectors.channels.rest.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from connectors.inbox import THANKS
from connectors.splitting import split_for_sms
from core import deliveries, handoffs
from core.conversations import HandoffRow, MessageRow, record_message
from core.db import utcnow
from core.handoffs import Agent
from devtools.demo_shop import DEMO_TENANT_ID
from tests.connectors.handoff_stack import (
    AGENT,
    APP_SECRET,
    CALLBACK_SECRET,
    PHONE_NUMBER_ID,
    SLUG,
    TEMPLATE_SID,
    Stack,
    frames_until_done,
    open_stack,
    socket_session,
)
from tests.databases import database_params
from tests.fakes.graph_server import status_webhook

pytestmark = pytest.mark.asyncio

SMS_VISITOR = "+14155550123"
LONG = " ".join(f"Step {i}: we checked the parcel with the carrier and it is on its way."
                for i in range(1, 30))


@pytest_asyncio.fixture(params=database_params())
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    async for opened in open_stack(request.param, tmp_path):
        yield opened


async def agent_message(stack: Stack, channel: str, user_key: str, text: str) -> int:
    """What the admin service records before it calls the gateway."""
    return await record_message(
        stack.sessions, tenant_id=DEMO_TENANT_ID, sender_id=stack.sender(channel, user_key),
        channel=channel, direction="out", text=text, payload={"agent": AGENT})


async def test_sms_a_person_owns_no_bot_message_on_any_gateway_and_the_reply_is_split(
        stack: Stack) -> None:
    await stack.sms("hello")
    await stack.settle()
    assert [m.body for m in stack.twilio.sent] == ["echo: hello"]  # the bot answers
    await stack.hand_to_person("sms", SMS_VISITOR)

    await stack.sms("where is my parcel?", gateway=0)
    await stack.sms("anyone there?", gateway=1)
    await stack.settle()
    assert stack.rasa.texts()[-2:] == ["where is my parcel?", "anyone there?"]  # recorded
    assert [m.body for m in stack.twilio.sent] == ["echo: hello"]  # and nothing said
    await stack.until(lambda: len(stack.live("message.visitor")) == 2)
    seen = stack.live("message.visitor")
    assert [e.data["text"] for e in seen] == ["where is my parcel?", "anyone there?"]
    assert {e.data["channel"] for e in seen} == {"sms"}
    assert {e.sender_id for e in seen} == {stack.sender("sms", SMS_VISITOR)}
    async with stack.sessions() as session:  # marked handled: not answered again by a sweep
        handled = (await session.scalars(select(MessageRow.handled_at).where(
            MessageRow.direction == "in"))).all()
    assert all(handled)

    pk = await agent_message(stack, "sms", SMS_VISITOR, LONG)
    answer = await stack.reply("sms", SMS_VISITOR, LONG, message_pk=pk)
    assert (answer.status_code, answer.json()) == (202, {"accepted": True})
    await stack.settle()
    sent = stack.twilio.sent[1:]
    assert [m.body for m in sent] == split_for_sms(LONG) and len(sent) > 1
    assert {(m.to, m.from_) for m in sent} == {(SMS_VISITOR, "+15550001111")}
    rows = await deliveries.deliveries_for(stack.sessions, DEMO_TENANT_ID,
                                           stack.sender("sms", SMS_VISITOR))
    assert [(r.message_pk, r.status) for r in rows[-len(sent):]] == [(pk, "accepted")] * len(sent)

    # The provider reports on the agent's message: the agents' pages hear of it.
    assert await asyncio.to_thread(stack.twilio.post_status, sent[0].sid, "delivered") == 200
    await stack.until(lambda: bool(stack.live("message.delivery")))
    [delivery] = stack.live("message.delivery")
    assert delivery.data == {"message_pk": pk, "status": "delivered"}


async def test_the_turn_that_escalates_still_says_the_bot_announcement(stack: Stack) -> None:
    await stack.sms("slow")  # Rasa takes a moment over this one
    await stack.until(lambda: stack.rasa.in_flight == 1)
    await stack.hand_to_person("sms", SMS_VISITOR)  # as action_handoff does, within the turn
    await stack.settle()
    assert [m.body for m in stack.twilio.sent] == ["echo: slow"]
    await stack.sms("and now?")
    await stack.settle()
    assert [m.body for m in stack.twilio.sent] == ["echo: slow"]


async def test_twilio_whatsapp_reply_is_text_in_the_window_and_the_template_outside(
        stack: Stack) -> None:
    visitor = "+4915112345678"
    await stack.hand_to_person("whatsapp", visitor)
    await stack.twilio_whatsapp("hello? I need my refund", gateway=1)
    await stack.settle()
    assert stack.twilio.sent == [] and stack.rasa.texts() == ["hello? I need my refund"]

    assert (await stack.reply("whatsapp", visitor, "Hi, Sam here.")).status_code == 202
    await stack.settle()
    [inside] = stack.twilio.sent
    assert (inside.to, inside.body, inside.content_sid) == (
        f"whatsapp:{visitor}", "Hi, Sam here.", None)

    async with stack.sessions() as session:  # a day later the window has closed
        await session.execute(update(MessageRow).values(
            created_at=utcnow() - timedelta(hours=25)))
        await session.commit()
    assert (await stack.reply("whatsapp", visitor, "Are you still there?")).status_code == 202
    await stack.settle()
    outside = stack.twilio.sent[1]
    assert (outside.body, outside.content_sid) == (None, TEMPLATE_SID)


async def test_meta_whatsapp_a_person_owns_no_bot_message_and_the_reply_arrives(
        stack: Stack) -> None:
    wa_id = "16505551234"
    await stack.meta_whatsapp("hi")
    await stack.settle()
    assert stack.graph.texts == ["echo: hi"]
    await stack.hand_to_person("whatsapp", f"+{wa_id}")
    await stack.meta_whatsapp("I want a person", gateway=1)
    await stack.settle()
    assert stack.graph.texts == ["echo: hi"]
    pk = await agent_message(stack, "whatsapp", f"+{wa_id}", "Sam here, how can I help?")
    assert (await stack.reply("whatsapp", f"+{wa_id}", "Sam here, how can I help?",
                              message_pk=pk, gateway=1)).status_code == 202
    await stack.settle()
    assert stack.graph.texts == ["echo: hi", "Sam here, how can I help?"]
    assert stack.graph.sent[-1].body["to"] == wa_id

    # Meta reports the agent's message read (the bot's "echo: hi" delivered: no live event).
    for sent, status in ((stack.graph.sent[0], "delivered"), (stack.graph.sent[-1], "read")):
        await stack.post(0, f"/channels/{SLUG}/whatsapp/webhook", *status_webhook(
            APP_SECRET, PHONE_NUMBER_ID, sent.wamid, status, recipient_id=wa_id))
    await stack.until(lambda: bool(stack.live("message.delivery")))
    assert [e.data for e in stack.live("message.delivery")] == [
        {"message_pk": pk, "status": "read"}]


async def test_email_a_person_owns_no_bot_mail_and_the_reply_is_threaded(stack: Stack) -> None:
    visitor = "alex.miller@gmail.com"
    await stack.email("Where is order 1001?", "<first@mail.gmail.com>", "<older@mail.gmail.com>")
    await stack.settle()
    assert len(stack.smtp.messages()) == 1  # the bot answers
    await stack.hand_to_person("email", visitor)
    thread = "<older@mail.gmail.com> <first@mail.gmail.com>"
    await stack.email("Please write back soon.", "<second@mail.gmail.com>", thread, gateway=1)
    await stack.settle()
    assert len(stack.smtp.messages()) == 1 and stack.rasa.texts()[-1] == "Please write back soon."

    assert (await stack.reply("email", visitor, "Sam here: it ships today.")).status_code == 202
    await stack.settle()
    mail = stack.smtp.messages()[-1]
    plain = mail.get_body(("plain",))
    assert plain is not None and "Sam here: it ships today." in plain.get_content()
    assert mail["To"] == visitor
    assert mail["In-Reply-To"] == "<second@mail.gmail.com>"
    # (split: a long References header is folded over lines on the wire)
    assert mail["References"].split() == references_chain(thread,
                                                          "<second@mail.gmail.com>").split()


def verified(request: Any) -> dict[str, Any]:
    """The callback's body when its signature checks out as a shop would check it."""
    timestamp = request.headers[TIMESTAMP_HEADER.lower()]
    expected = "sha256=" + hmac.new(CALLBACK_SECRET.encode(), timestamp.encode() + b"." +
                                    request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers[SIGNATURE_HEADER.lower()], expected)
    body: dict[str, Any] = json.loads(request.body)
    return body


async def poll(stack: Stack, sender: str, after: int = 0, key: str | None = None) -> Any:
    async with httpx.AsyncClient() as client:
        return await client.get(f"{stack.b}/channels/{SLUG}/rest/messages",
                                params={"sender": sender, "after": after},
                                headers={"Authorization": f"Bearer {key or stack.rest_key}"})


async def test_rest_a_person_owns_no_bot_message_the_callback_is_signed_and_retried_and_polled(
        stack: Stack) -> None:
    assert await stack.rest("hi") == [{"recipient_id": "visitor-1", "text": "echo: hi"}]
    await stack.hand_to_person("rest", "visitor-1")
    assert await stack.rest("is anyone there?", gateway=1) == []
    assert await stack.rest("hello??") == []
    assert stack.rasa.texts()[-2:] == ["is anyone there?", "hello??"]

    stack.callback.fail_next(500)  # the shop's server hiccups once
    pk = await agent_message(stack, "rest", "visitor-1", "Sam here, checking.")
    assert (await stack.reply("rest", "visitor-1", "Sam here, checking.",
                              message_pk=pk)).status_code == 202
    await stack.settle()
    calls = stack.callback.requests_to("/replies")
    assert len(calls) == 2  # the 500, then the retry
    assert verified(calls[-1]) == {"recipient_id": "visitor-1", "text": "Sam here, checking.",
                                   "buttons": [], "agent": AGENT}
    [*_, row] = await deliveries.deliveries_for(stack.sessions, DEMO_TENANT_ID,
                                                stack.sender("rest", "visitor-1"))
    assert (row.message_pk, row.status, row.attempts) == (pk, "delivered", 2)

    answer = await poll(stack, "visitor-1")
    assert answer.status_code == 200
    texts = [(m["text"], m.get("agent")) for m in answer.json()]
    assert texts == [("echo: hi", None), ("Sam here, checking.", AGENT)]
    last = answer.json()[-1]["id"]
    assert (await poll(stack, "visitor-1", after=last)).json() == []
    assert (await poll(stack, "visitor-1", key="sb_live_nope")).status_code == 401


async def test_widget_a_person_owns_no_bot_message_the_reply_arrives_live_and_stays(
        stack: Stack) -> None:
    ws, session = await socket_session(stack.widget_url(0))
    try:
        await ws.send(json.dumps({"type": "message", "text": "hi", "id": "m1"}))
        assert [f["type"] for f in await frames_until_done(ws)] == ["typing", "bot", "done"]
        conversation = session["token"].split(".")[1]
        await stack.hand_to_person("web", conversation)
        await ws.send(json.dumps({"type": "message", "text": "hello?", "id": "m2"}))
        assert [f["type"] for f in await frames_until_done(ws)] == ["typing", "done"]

        # With Redis the reply may come through the other gateway: pub/sub brings it here.
        via = 1 if stack.redis is not None else 0
        pk = await agent_message(stack, "web", conversation, "Sam here!")
        assert (await stack.reply("web", conversation, "Sam here!", message_pk=pk,
                                  gateway=via)).status_code == 202
        pushed = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert pushed == {"type": "bot", "text": "Sam here!", "agent": {"name": "Sam"}}
    finally:
        await ws.close()
    ws, again = await socket_session(stack.widget_url(1), session["token"])  # a reload
    await ws.close()
    assert [(m["from"], m["text"], m.get("agent")) for m in again["history"]] == [
        ("visitor", "hi", None), ("bot", "echo: hi", None), ("visitor", "hello?", None),
        ("bot", "Sam here!", {"name": "Sam"})]


async def test_internal_route_needs_the_token_a_known_conversation_and_a_reply(
        stack: Stack) -> None:
    await stack.sms("hello")
    await stack.settle()
    assert (await stack.reply("sms", SMS_VISITOR, "x", token="wrong")).status_code == 401
    async with httpx.AsyncClient() as client:
        bare = await client.post(f"{stack.a}/internal/agent-replies", json={})
        bad = await client.post(f"{stack.a}/internal/agent-replies", json={"messages": []},
                                headers={"Authorization": f"Bearer {stack.token}"})
    assert bare.status_code == 401 and set(bare.json()) == {"detail"}
    assert bad.status_code == 422 and set(bad.json()) == {"detail"}
    unknown = await stack.reply("sms", "+19995550000", "anyone?")
    assert unknown.status_code == 404 and set(unknown.json()) == {"detail"}
    await stack.settle()
    assert [m.body for m in stack.twilio.sent] == ["echo: hello"]  # nothing else went out


async def test_a_rating_after_the_question_is_thanked_and_recorded_without_the_bot(
        stack: Stack) -> None:
    await stack.sms("hello")
    await stack.settle()
    row = await stack.hand_to_person("sms", SMS_VISITOR)
    await handoffs.resolve(stack.sessions, DEMO_TENANT_ID, row.id, Agent("user-7", "Sam"))
    assert (await stack.reply("sms", SMS_VISITOR, "How did we do? 1-5",
                              author=None)).status_code == 202
    await handoffs.rating_asked(stack.sessions, row.id)
    await stack.settle()

    await stack.sms("4", gateway=1)
    await stack.settle()
    assert [m.body for m in stack.twilio.sent] == ["echo: hello", "How did we do? 1-5", THANKS]
    assert "4" not in stack.rasa.texts()
    async with stack.sessions() as session:
        rated = await session.get(HandoffRow, row.id)
    assert rated is not None and rated.rating == 4
    await stack.until(lambda: bool(stack.live("satisfaction.given")))
    assert [e.data for e in stack.live("satisfaction.given")] == [{"rating": 4}]

    await stack.sms("4")  # rated already: the bot's again
    await stack.settle()
    assert stack.twilio.sent[-1].body == "echo: 4"
    # A "4" nobody asked for goes to the bot (REST: answered within the request).
    assert await stack.rest("4", sender="other") == [{"recipient_id": "other",
                                                      "text": "echo: 4"}]


async def test_rest_rating_is_thanked_within_the_request(stack: Stack) -> None:
    assert await stack.rest("hi") == [{"recipient_id": "visitor-1", "text": "echo: hi"}]
    row = await stack.hand_to_person("rest", "visitor-1")
    await handoffs.resolve(stack.sessions, DEMO_TENANT_ID, row.id, Agent("user-7", "Sam"))
    await handoffs.rating_asked(stack.sessions, row.id)
    assert await stack.rest(" 5 ", gateway=1) == [{"recipient_id": "visitor-1", "text": THANKS}]
    assert stack.rasa.texts() == ["hi"]
    await stack.settle()
    texts = [m["text"] for m in (await poll(stack, "visitor-1")).json()]
    assert texts == ["echo: hi", THANKS]
