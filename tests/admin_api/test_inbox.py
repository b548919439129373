"""The agent inbox through the admin API, in-process, on SQLite and PostgreSQL: claiming (two
agents at once: exactly one wins), replying (recorded, handed to a fake gateway over HTTP
with the internal token, appended to a fake Rasa's tracker), notes (never sent), transfers,
resolving (Rasa resumes, the satisfaction question goes out), the queue's fields, and shop
isolation of every route. The live stream and the mail notice: test_inbox_live.py.
About 6 s for both databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import jwt
import pytest
import pytest_asyncio
from sqlalchemy import update

from admin_api.tables import MembershipRow, UserRow
from core import handoffs
from core.conversations import record_message
from core.sender_ids import sender_id
from tenants.api_keys import issue_key
from tests.admin_api.accounts import Browser, person
from tests.admin_api.conftest import Admin, Shop
from tests.admin_api.fake_gateway import GatewayFake
from tests.fakes.rasa_server import RasaFake

pytestmark = pytest.mark.asyncio
PHONE = "+15550009876"


@dataclass
class Inbox:
    admin: Admin
    gateway: GatewayFake
    rasa: RasaFake
    agent2: str  # a second agent key of the demo shop

    async def call(self, method: str, path: str, role: str = "agent", shop: Shop | None = None,
                   key: str | None = None, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else None
        if headers:
            kwargs["headers"] = headers
        return await self.admin.call(method, path, role, shop, **kwargs)

    async def escalate(self, shop: Shop | None = None, user: str = PHONE, channel: str = "sms",
                       text: str = "I want a person") -> tuple[str, int]:
        """A visitor who wrote and asked for a person: (conversation id, handoff id)."""
        shop = shop or self.admin.demo
        sender = sender_id(shop.id, channel, user)
        await record_message(self.admin.sessions, tenant_id=shop.id, sender_id=sender,
                             channel=channel, direction="in", text=text)
        row, _ = await handoffs.open_handoff(
            self.admin.sessions, tenant_id=shop.id, sender_id=sender, channel=channel,
            reason="visitor_asked", last_message=text,
            summary={"intent": "human_handoff", "order_number": "1001"})
        status, body = await self.call("GET", "/conversations", "owner", shop,
                                       params={"state": "queued"})
        assert status == 200, body
        found = [item["id"] for item in body["items"]
                 if item["handoff"] and item["handoff"]["id"] == row.id]
        assert found, body
        return found[0], row.id


async def member(admin: Admin, role: str) -> str:
    """A person with this role in the demo shop (no password: none of these log in)."""
    user_id = str(uuid.uuid4())
    async with admin.sessions() as session:
        session.add(UserRow(id=user_id, email=f"{user_id}@example.com"))
        await session.flush()
        session.add(MembershipRow(user_id=user_id, tenant_id=admin.demo.id, role=role))
        await session.commit()
    return user_id


@pytest_asyncio.fixture
async def inbox(admin: Admin) -> AsyncIterator[Inbox]:
    with GatewayFake() as gateway, RasaFake() as rasa:
        # The app opens its clients at each start (the test client starts it per request).
        admin.app.ctx.settings = replace(admin.settings, gateway_url=gateway.base_url,
                                         rasa_url=rasa.base_url)
        agent2 = (await issue_key(admin.sessions, admin.demo.id, "Second agent",
                                  scope="agent")).secret
        yield Inbox(admin, gateway, rasa, agent2)


async def test_two_agents_claim_at_once_and_exactly_one_wins(inbox: Inbox) -> None:
    conversation, handoff_id = await inbox.escalate()
    first, second = await asyncio.gather(
        inbox.call("POST", f"/conversations/{conversation}/claim"),
        inbox.call("POST", f"/conversations/{conversation}/claim", key=inbox.agent2))
    statuses = sorted([first[0], second[0]])
    assert statuses == [200, 409], (first, second)
    won, lost = (first, second) if first[0] == 200 else (second, first)
    assert won[1]["status"] == "assigned" and won[1]["id"] == handoff_id
    assert lost[1]["assignee"] == won[1]["assignee"]
    assert lost[1]["assignee"]["name"] in lost[1]["detail"]

    # The queue shows who has it; claiming again is no change for the winner.
    status, body = await inbox.call("GET", "/conversations", params={"state": "assigned"})
    assert status == 200
    (item,) = [i for i in body["items"] if i["id"] == conversation]
    assert item["handoff"]["assignee"] == won[1]["assignee"]
    assert item["visitor"].endswith("9876") and PHONE not in str(body)
    winner_key = None if first[0] == 200 else inbox.agent2
    assert (await inbox.call("POST", f"/conversations/{conversation}/claim",
                             key=winner_key))[0] == 200


async def test_the_queue_is_oldest_first_with_what_the_bot_knows(inbox: Inbox) -> None:
    older, _ = await inbox.escalate(user="+15550000001")
    newer, _ = await inbox.escalate(user="+15550000002", channel="whatsapp")
    status, body = await inbox.call("GET", "/conversations",
                                    params={"state": "queued", "sort": "waiting"})
    assert status == 200, body
    assert [item["id"] for item in body["items"]] == [older, newer]
    handoff = body["items"][0]["handoff"]
    assert handoff["status"] == "queued" and handoff["assignee"] is None
    assert handoff["reason"] == "visitor_asked"
    assert handoff["summary"] == {"intent": "human_handoff", "order_number": "1001"}
    assert handoff["visitor_said"] == "I want a person"  # in their words, for the agent
    assert handoff["waiting_seconds"] >= 0 and handoff["requested_at"]
    status, agents = await inbox.call("GET", "/agents")
    assert status == 200
    names = {a["name"] for a in agents["items"]}
    assert {"Second agent", "test agent"} <= names  # agent keys (owner keys are not agents)
    assert "test designer" not in names and "test owner" not in names


async def test_the_queue_says_what_the_visitor_wrote_last_after_an_agents_reply(
        inbox: Inbox) -> None:
    """A card shows the visitor's latest words: when an agent (or the bot) wrote last, the
    conversation's last message is theirs, and the handoff's message is older than what the
    visitor wrote since."""
    conversation, _ = await inbox.escalate(text="I want a person")
    sender = sender_id(inbox.admin.demo.id, "sms", PHONE)

    async def queue_item() -> dict[str, Any]:
        status, body = await inbox.call("GET", "/conversations",
                                        params={"state": "assigned", "sort": "waiting"})
        assert status == 200, body
        (item,) = [i for i in body["items"] if i["id"] == conversation]
        return dict(item)

    status, _ = await inbox.call("POST", f"/conversations/{conversation}/messages",
                                 json={"text": "Hello, how can I help?"})
    assert status == 202
    await record_message(inbox.admin.sessions, tenant_id=inbox.admin.demo.id, sender_id=sender,
                         channel="sms", direction="in", text="My parcel never arrived.")
    status, _ = await inbox.call("POST", f"/conversations/{conversation}/messages",
                                 json={"text": "Let me check with the courier."})
    assert status == 202
    item = await queue_item()
    assert item["last_message"] == {"direction": "out", "text": "Let me check with the courier."}
    assert item["handoff"]["visitor_said"] == "I want a person"
    assert item["last_visitor_message"]["text"] == "My parcel never arrived."
    assert item["last_visitor_message"]["at"] < item["last_message_at"]


async def test_a_reply_is_recorded_and_handed_to_the_gateway_and_to_rasa(inbox: Inbox) -> None:
    conversation, handoff_id = await inbox.escalate()
    # Replying to a queued conversation takes it.
    status, body = await inbox.call("POST", f"/conversations/{conversation}/messages",
                                    json={"text": "  Hi, I'm Sam from the shop.  "})
    assert status == 202, body
    message = body["message"]
    assert message["text"] == "Hi, I'm Sam from the shop."
    # A key's label ("test agent") is the owner's note; the visitor reads the shop's name.
    assert message["agent"]["name"] == "Demo Outfitters"

    ((sent, authorization),) = inbox.gateway.received
    assert authorization == f"Bearer {inbox.admin.settings.internal_token.reveal()}"
    assert sent == {"tenant_id": inbox.admin.demo.id,
                    "sender_id": sender_id(inbox.admin.demo.id, "sms", PHONE),
                    "message_pk": message["id"],
                    "messages": [{"text": "Hi, I'm Sam from the shop.", "buttons": []}],
                    "author": message["agent"]}
    ((tracked_sender, events, rasa_auth),) = inbox.rasa.tracker_events
    assert tracked_sender == sent["sender_id"]
    assert [(e["event"], e["text"], e["metadata"]) for e in events] == [
        ("bot", "Hi, I'm Sam from the shop.", {"agent": "Demo Outfitters"})]
    claims = jwt.decode(str(rasa_auth).removeprefix("Bearer "),
                        inbox.admin.settings.rasa_jwt_key.reveal(), algorithms=["HS256"])
    assert claims["user"]["role"] == "admin"

    status, transcript = await inbox.call("GET", f"/conversations/{conversation}")
    assert status == 200 and transcript["state"] == "assigned"
    said = [m for turn in transcript["turns"] for m in turn["bot"]]
    assert said == [{"text": "Hi, I'm Sam from the shop.", "buttons": [], "image": None,
                     "agent": message["agent"], "deliveries": []}]
    (handoff,) = transcript["handoffs"]
    key_agent = {"id": message["agent"]["id"], "name": "test agent"}  # the inbox's name for it
    assert handoff["id"] == handoff_id and handoff["assignee"] == key_agent

    # Someone else may not reply in it; an owner may.
    status, body = await inbox.call("POST", f"/conversations/{conversation}/messages",
                                    key=inbox.agent2, json={"text": "me too"})
    assert status == 409 and body["assignee"] == key_agent
    status, _ = await inbox.call("POST", f"/conversations/{conversation}/messages", "owner",
                                 json={"text": "The owner here."})
    assert status == 202
    # A helpdesk bridge's key names the person whose words it relays.
    status, body = await inbox.call("POST", f"/conversations/{conversation}/messages",
                                    json={"text": "Maria here.", "name": "Maria"})
    assert status == 202 and body["message"]["agent"]["name"] == "Maria"
    assert inbox.gateway.received[-1][0]["author"]["name"] == "Maria"
    assert len(inbox.gateway.received) == 3
    for text in ("", "   ", "x" * 4097):
        status, _ = await inbox.call("POST", f"/conversations/{conversation}/messages",
                                     json={"text": text})
        assert status == 422


async def test_a_reply_the_gateway_cannot_take_is_503_and_not_in_the_transcript(
        inbox: Inbox) -> None:
    conversation, _ = await inbox.escalate()
    inbox.gateway.status = 503
    status, body = await inbox.call("POST", f"/conversations/{conversation}/messages",
                                    json={"text": "Are you there?"})
    assert status == 503 and "not sent" in body["detail"]
    _, transcript = await inbox.call("GET", f"/conversations/{conversation}")
    assert "Are you there?" not in str(transcript)
    assert inbox.rasa.tracker_events == []


async def test_notes_are_shown_to_agents_and_never_sent(inbox: Inbox) -> None:
    conversation, handoff_id = await inbox.escalate()
    status, note = await inbox.call("POST", f"/conversations/{conversation}/notes",
                                    json={"text": "Customer was charged twice, see Stripe."})
    assert status == 201, note
    assert note["author"]["name"] == "test agent"
    _, transcript = await inbox.call("GET", f"/conversations/{conversation}")
    assert [n["text"] for n in transcript["notes"]] == ["Customer was charged twice, see "
                                                        "Stripe."]
    assert inbox.gateway.received == [] and inbox.rasa.tracker_events == []
    assert transcript["state"] == "queued"  # a note does not take the conversation


async def test_a_transfer_goes_to_someone_who_takes_conversations(inbox: Inbox) -> None:
    conversation, _ = await inbox.escalate()
    assert (await inbox.call("POST", f"/conversations/{conversation}/claim"))[0] == 200
    designer = await member(inbox.admin, "designer")
    agent = await member(inbox.admin, "agent")
    for stranger in (designer, str(uuid.uuid4()), "key:nothing"):
        status, body = await inbox.call("POST", f"/conversations/{conversation}/transfer",
                                        json={"user_id": stranger})
        assert status == 422, (stranger, body)
    status, agents = await inbox.call("GET", "/agents")
    key2 = next(a["id"] for a in agents["items"] if a["name"] == "Second agent")
    status, moved = await inbox.call("POST", f"/conversations/{conversation}/transfer",
                                     json={"user_id": key2})
    assert status == 200 and moved["assignee"] == {"id": key2, "name": "Second agent"}
    # The first agent no longer has it; the second passes it on to a person.
    status, body = await inbox.call("POST", f"/conversations/{conversation}/messages",
                                    json={"text": "still me"})
    assert status == 409 and body["assignee"]["id"] == key2
    status, moved = await inbox.call("POST", f"/conversations/{conversation}/transfer",
                                     key=inbox.agent2, json={"user_id": agent})
    assert status == 200 and moved["assignee"] == {"id": agent, "name": f"{agent}@example.com"}


async def test_resolving_resumes_the_bot_and_asks_for_a_rating(inbox: Inbox) -> None:
    conversation, handoff_id = await inbox.escalate()
    assert (await inbox.call("POST", f"/conversations/{conversation}/claim"))[0] == 200
    status, done = await inbox.call("POST", f"/conversations/{conversation}/resolve")
    assert status == 200 and done["status"] == "resolved" and done["resolved_at"]

    ((question, _),) = inbox.gateway.received
    assert question["author"] is None
    (message,) = question["messages"]
    assert "1" in message["text"] and "5" in message["text"]
    assert [b["payload"] for b in message["buttons"]] == ["1", "2", "3", "4", "5"]
    ((_, events, _),) = inbox.rasa.tracker_events
    # Rasa resumes, records the question as the bot's, and listens for the next message.
    assert [e["event"] for e in events] == ["resume", "bot", "action"]
    assert events[-1]["name"] == "action_listen"

    sender = sender_id(inbox.admin.demo.id, "sms", PHONE)
    assert await handoffs.take_rating(inbox.admin.sessions, inbox.admin.demo.id, sender,
                                      "4") == 4
    _, transcript = await inbox.call("GET", f"/conversations/{conversation}")
    assert transcript["state"] == "resolved" and transcript["handoffs"][0]["rating"] == 4
    # Handed back: nothing more to claim, reply in or resolve (a conflict with the bot's
    # ownership, not an unknown conversation).
    for action in ("claim", "resolve"):
        status, answer = await inbox.call("POST", f"/conversations/{conversation}/{action}")
        assert status == 409 and "the bot has it" in answer["detail"]
    status, _ = await inbox.call("POST", f"/conversations/{conversation}/messages",
                                 json={"text": "hello?"})
    assert status == 409


async def test_another_shops_conversation_is_not_found_by_any_inbox_route(
        inbox: Inbox) -> None:
    theirs, _ = await inbox.escalate(inbox.admin.other, user="+15550004444")
    ours, _ = await inbox.escalate()
    calls: list[tuple[str, dict[str, str] | None]] = [
        ("claim", None), ("messages", {"text": "hi"}), ("notes", {"text": "n"}),
        ("transfer", {"user_id": "x"}), ("resolve", None)]
    for action, body in calls:
        status, answer = await inbox.call("POST", f"/conversations/{theirs}/{action}",
                                          json=body)
        assert status == 404, (action, answer)
        # ... and ours is not theirs either
        status, answer = await inbox.call("POST", f"/conversations/{ours}/{action}",
                                          shop=inbox.admin.other, json=body)
        assert status == 404, (action, answer)
    assert inbox.gateway.received == [] and inbox.rasa.tracker_events == []
    status, agents = await inbox.call("GET", "/agents", shop=inbox.admin.other)
    assert "Second agent" not in str(agents)
    # Designers read conversations but take none.
    status, _ = await inbox.call("POST", f"/conversations/{ours}/claim", "designer")
    assert status == 403


async def test_a_visitor_with_a_long_address_is_handled_like_any_other(inbox: Inbox) -> None:
    """A REST sender or an email address of a hundred characters and more makes a conversation
    id longer than 200 characters; the audit entry of each agent action names it whole."""
    long_email = "a.very.long.name." * 8 + "@customers.example.com"
    conversation, _ = await inbox.escalate(user=long_email, channel="email")
    assert len(conversation) > 200
    for path, body in ((f"/conversations/{conversation}/claim", None),
                       (f"/conversations/{conversation}/notes", {"text": "long address"})):
        status, answer = await inbox.call("POST", path, json=body)
        assert status in (200, 201), answer
    _, page = await inbox.call("GET", "/audit", "owner", params={"page_size": 100})
    assert conversation in [entry["target"] for entry in page["items"]]


async def test_a_person_is_shown_to_the_visitor_by_their_name_never_their_email(
        inbox: Inbox) -> None:
    """A person who never gave a name (the owner `make run` seeds, an account made through a
    link passed on by hand) replies: the visitor reads the shop's name beside it, not the
    person's email address (the widget showed 'owner@demo.example: Hello'); a person with a
    name is shown by it."""
    await person(inbox.admin, "olga@demo.example", "owner")
    olga = Browser(inbox.admin)
    await olga.log_in("olga@demo.example")
    conversation, _ = await inbox.escalate()
    status, body, _ = await olga.call("POST", f"/conversations/{conversation}/messages",
                                      json={"text": "Hello, the owner here."})
    assert status == 202, body
    assert body["message"]["agent"]["name"] == "Demo Outfitters"
    ((sent, _),) = inbox.gateway.received
    assert sent["author"]["name"] == "Demo Outfitters"
    ((_, events, _),) = inbox.rasa.tracker_events
    assert [e["metadata"] for e in events] == [{"agent": "Demo Outfitters"}]
    assert "olga@demo.example" not in repr((sent, events))

    async with inbox.admin.sessions() as session:
        await session.execute(update(UserRow).where(UserRow.email == "olga@demo.example")
                              .values(name="Olga"))
        await session.commit()
    await olga.log_in("olga@demo.example")  # a session reads the name at login
    status, body, _ = await olga.call("POST", f"/conversations/{conversation}/messages",
                                      json={"text": "Olga again."})
    assert status == 202, body
    assert body["message"]["agent"]["name"] == "Olga"
    assert inbox.gateway.received[-1][0]["author"]["name"] == "Olga"
