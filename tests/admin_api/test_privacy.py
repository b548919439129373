"""A visitor's data: exported and erased across our tables (agents' notes and the handoff
event log included), Rasa's tracker events (an `events`
table made as Rasa's SQL tracker store makes it, in the tracker database the admin service
opens), verification counters and cached answers, never touching another shop's visitor; the
visitor named by what owners have (the conversation id they see, the REST sender), and
nothing found said as a 404, never a 200 that looks like an erasure; and the retention sweep
that deletes a shop's old conversations."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from actions.attempts import Attempts, VerificationFailureRow, derive_key
from actions.commerce.tables import ReturnRequestRow
from admin_api import privacy, retention
from admin_api.routes.conversations import conversation_id
from admin_api.tables import AuditRow
from core import handoffs, logs
from core.conversations import HandoffRow, MessageRow, record_message
from core.db import create_engine, utcnow
from core.deliveries import DeliveryRow
from core.handoffs import ConversationEventRow, NoteRow
from knowledge.cache import cache_key
from tests.admin_api.conftest import KEY, Admin

pytestmark = pytest.mark.asyncio

PHONE = "+15550001111"
EMAIL = "alice@example.com"


class World:
    """The demo shop's visitors (and the same phone number at the other shop)."""

    def __init__(self, admin: Admin, tracker: AsyncEngine) -> None:
        demo, other = admin.demo.id, admin.other.id
        self.admin, self.tracker = admin, tracker
        self.sms = f"{demo}:sms:{PHONE}"
        self.whatsapp = f"{demo}:whatsapp:{PHONE}"
        self.others_sms = f"{other}:sms:{PHONE}"
        self.mail = f"{demo}:email:{EMAIL}"
        self.web = f"{demo}:web:w-alice"  # gave her email to the order form (a slot event)
        self.rest = f"{demo}:rest:r-alice"  # typed her email in a message
        self.bystander = f"{demo}:web:w-bob"

    async def seed(self) -> None:
        demo, other = self.admin.demo.id, self.admin.other.id
        said = {self.sms: "where is my order 1001", self.whatsapp: "hi from whatsapp",
                self.others_sms: "other shop's customer, same phone",
                self.mail: "my parcel is late", self.web: "I want to return my shoes",
                self.rest: f"my email is {EMAIL.upper()} thanks",
                self.bystander: "do you ship to Norway?"}
        for sender, text in said.items():
            shop, channel, _ = sender.split(":", 2)
            await record_message(self.admin.sessions, tenant_id=shop, sender_id=sender,
                                 channel=channel, direction="in", text=text)
            await record_message(self.admin.sessions, tenant_id=shop, sender_id=sender,
                                 channel=channel, direction="out", text="Happy to help.")
            await self.event(sender, "user", {"event": "user", "text": text})
        await self.event(self.web, "slot", {"event": "slot", "name": "email",
                                            "value": "Alice@Example.com"})
        await self.event(self.bystander, "slot", {"event": "slot", "name": "email",
                                                  "value": "bob@example.com"})
        attempts = Attempts(self.admin.sessions, derive_key(KEY))
        email_key = attempts.check(demo, email=EMAIL, order_number="", client=None
                                   ).subjects[0].key
        async with self.admin.sessions() as session:
            session.add_all([
                DeliveryRow(tenant_id=demo, channel="sms", provider="twilio",
                            sender_id=self.sms, provider_message_id="SM1", status="delivered"),
                DeliveryRow(tenant_id=other, channel="sms", provider="twilio",
                            sender_id=self.others_sms, provider_message_id="SM2",
                            status="delivered"),
                HandoffRow(tenant_id=demo, sender_id=self.sms, channel="sms",
                           reason="visitor_asked", last_message="a person please"),
                ReturnRequestRow(tenant_id=demo, order_number="1001", reference="R-1001-A",
                                 items_key="li1", items=[{"id": "li1"}], reason="too small",
                                 sender_id=self.web),
                VerificationFailureRow(key=email_key, tenant_id=demo, failures=2),
            ])
            await session.commit()

    async def event(self, sender: str, kind: str, data: dict[str, Any],
                    timestamp: float | None = None) -> None:
        async with self.tracker.begin() as conn:
            await conn.execute(insert(privacy.EVENTS).values(
                sender_id=sender, type_name=kind, timestamp=timestamp or utcnow().timestamp(),
                data=json.dumps({**data, "timestamp": timestamp})))

    async def count(self, table: Any, sender: str) -> int:
        async with self.admin.sessions() as session:
            return int((await session.execute(select(func.count()).select_from(table).where(
                table.sender_id == sender))).scalar_one())

    async def events(self, sender: str) -> int:
        async with self.tracker.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(
                privacy.EVENTS).where(privacy.EVENTS.c.sender_id == sender))).scalar_one())


@pytest_asyncio.fixture
async def world(admin: Admin) -> AsyncIterator[World]:
    """Rasa's `events` table where the admin service looks for it: the embedded tracker file
    (SQLite) or the same database (PostgreSQL)."""
    admin.settings.var_dir.mkdir(parents=True, exist_ok=True)
    tracker = create_engine(admin.settings.tracker_store_url)
    async with tracker.begin() as conn:
        await conn.run_sync(privacy.TRACKER.create_all)
        for shop in (admin.demo.id, admin.other.id):
            await conn.execute(delete(privacy.EVENTS).where(
                privacy.EVENTS.c.sender_id.startswith(f"{shop}:")))
    found = World(admin, tracker)
    await found.seed()
    yield found
    await tracker.dispose()


async def test_an_export_by_email_finds_every_conversation_and_store(world: World) -> None:
    status, data = await world.admin.call("GET", "/privacy/export",
                                          params={"email": " Alice@Example.com "})
    assert status == 200, data
    assert data["conversations"] == sorted([world.mail, world.web, world.rest])
    assert {m["sender_id"] for m in data["messages"]} == {world.mail, world.web, world.rest}
    assert len(data["messages"]) == 6 and "lease_owner" not in data["messages"][0]
    assert [r["reference"] for r in data["return_requests"]] == ["R-1001-A"]
    assert data["verification_failures"][0]["failures"] == 2
    slots = [e["data"] for e in data["tracker_events"] if e["type"] == "slot"]
    assert slots == [{"event": "slot", "name": "email", "value": "Alice@Example.com",
                      "timestamp": None}]
    assert len(data["log_pseudonyms"]) == 3
    assert all(":v-" in p for p in data["log_pseudonyms"])
    text = json.dumps(data)
    assert world.bystander not in text and "Norway" not in text

    async with world.admin.sessions() as session:
        entry = (await session.execute(select(AuditRow).where(
            AuditRow.action == "privacy.export"))).scalar_one()
    assert entry.target == data["visitor"] and entry.tenant_id == world.admin.demo.id
    assert "alice" not in json.dumps([entry.target, entry.before, entry.after]).lower()
    assert (entry.after or {})["messages"] == 6


async def raw_event(world: World, sender: str, data: str) -> None:
    """An event row whose data is `data` as it is (Rasa's writer, or anything else with
    access to the tracker store)."""
    async with world.tracker.begin() as conn:
        await conn.execute(insert(privacy.EVENTS).values(
            sender_id=sender, type_name="slot", timestamp=utcnow().timestamp(), data=data))


@pytest.mark.parametrize("depth", [100_000, 900])
async def test_an_event_nested_too_deep_is_unreadable_not_a_500(world: World,
                                                                 depth: int) -> None:
    """Past the JSON parser's depth `_parsed` raised RecursionError (a 500: no export or
    erase for the visitor); 900 levels parse but do not go back out as JSON."""
    nested = "[" * depth + "]" * depth
    deep = f'{{"event": "slot", "name": "email", "value": "{EMAIL}", "x": {nested}}}'
    await raw_event(world, world.web, deep)  # her own conversation, found by its slot
    await raw_event(world, world.bystander, deep)  # mentions her email, not readable as hers
    status, data = await world.admin.call("GET", "/privacy/export", params={"email": EMAIL})
    assert status == 200, data
    assert data["conversations"] == sorted([world.mail, world.web, world.rest])
    slots = [e["data"] for e in data["tracker_events"] if e["type"] == "slot"]
    assert {"event": "slot", "name": "email", "value": "Alice@Example.com",
            "timestamp": None} in slots and {} in slots  # the deep one, unreadable
    status, erased = await world.admin.call("POST", "/privacy/erase", json={"email": EMAIL})
    assert status == 200, erased
    assert erased["deleted"]["tracker_events"] == 5 and await world.events(world.web) == 0
    assert await world.events(world.bystander) == 3


async def test_an_erase_by_phone_spares_the_same_number_at_another_shop(world: World) -> None:
    status, erased = await world.admin.call("POST", "/privacy/erase", json={
        "phone": "+1 (555) 000-1111"})
    assert status == 200, erased
    assert erased["deleted"]["messages"] == 4  # sms and whatsapp, in and out
    assert erased["deleted"]["deliveries"] == 1 and erased["deleted"]["handoff_requests"] == 1
    assert erased["deleted"]["tracker_events"] == 2
    for sender in (world.sms, world.whatsapp):
        assert await world.count(MessageRow, sender) == 0 and await world.events(sender) == 0
    assert await world.count(MessageRow, world.others_sms) == 2
    assert await world.count(DeliveryRow, world.others_sms) == 1
    assert await world.events(world.others_sms) == 1
    assert await world.count(MessageRow, world.bystander) == 2

    # Nothing is left: erasing again, or exporting, says so rather than answering zeros.
    status, again = await world.admin.call("POST", "/privacy/erase", json={"phone": PHONE})
    assert status == 404 and "nothing is stored" in again["detail"], again
    status, data = await world.admin.call("GET", "/privacy/export", params={"phone": PHONE})
    assert status == 404 and "nothing is stored" in data["detail"], data


async def test_an_erase_by_email_reaches_rasas_events_returns_and_counters(
        world: World) -> None:
    status, erased = await world.admin.call("POST", "/privacy/erase", json={"email": EMAIL})
    assert status == 200, erased
    deleted = erased["deleted"]
    assert deleted["messages"] == 6 and deleted["tracker_events"] == 4  # 3 user + 1 slot
    assert deleted["return_requests"] == 1 and deleted["verification_failures"] == 1
    for sender in (world.mail, world.web, world.rest):
        assert await world.events(sender) == 0
    assert await world.count(ReturnRequestRow, world.web) == 0
    assert await world.events(world.bystander) == 2  # bob's slot and message stay
    async with world.admin.sessions() as session:
        entry = (await session.execute(select(AuditRow).where(
            AuditRow.action == "privacy.erase"))).scalar_one()
    assert (entry.after or {})["deleted"] == deleted
    assert EMAIL not in json.dumps([entry.target, entry.after])


async def handed_over(world: World, sender: str, note: str) -> int:
    """A person's help as the walkthrough's agent gave it: the visitor asks for a person, an
    agent claims the conversation and writes an internal note (through the API), resolves it,
    and the visitor rates it 5. Returns the handoff's id."""
    admin = world.admin
    shop_id, channel, _ = sender.split(":", 2)
    shop = admin.demo if shop_id == admin.demo.id else admin.other
    row, created = await handoffs.open_handoff(
        admin.sessions, tenant_id=shop_id, sender_id=sender, channel=channel,
        reason="visitor_asked", last_message="can I talk to a real person please")
    assert created
    ident = conversation_id(admin.settings.conversation_id_key, shop_id, sender)
    status, body = await admin.call("POST", f"/conversations/{ident}/claim", role="agent",
                                    shop=shop)
    assert status == 200, body
    status, body = await admin.call("POST", f"/conversations/{ident}/notes", role="agent",
                                    shop=shop, json={"text": note})
    assert status == 201, body
    ann = handoffs.Agent("u-ann", "Ann Agent")
    await handoffs.resolve(admin.sessions, shop_id, row.id, ann)
    await handoffs.rating_asked(admin.sessions, row.id)
    assert await handoffs.take_rating(admin.sessions, shop_id, sender, "5 stars") == 5
    return row.id


async def test_an_erase_takes_agents_notes_and_the_handoff_event_log(world: World) -> None:
    """The walkthrough: the erase said done, a later export 'nothing is stored', and the
    agent's note about the visitor (and the handoff events with their rating) stayed."""
    admin = world.admin
    note = "Replacement size M sent to 12 Harbour Street, ticket 55"
    await handed_over(world, world.whatsapp, note)
    await handed_over(world, world.others_sms, "the other shop's note, same phone")
    await handed_over(world, world.bystander, "Bob wants a call back")
    mine = conversation_id(admin.settings.conversation_id_key, admin.demo.id, world.whatsapp)

    status, data = await admin.call("GET", "/privacy/export", params={"phone": PHONE})
    assert status == 200, data
    assert [(n["text"], n["sender_id"]) for n in data["conversation_notes"]] == [
        (note, world.whatsapp)]
    events = data["conversation_events"]
    assert [e["kind"] for e in events] == [handoffs.REQUESTED, handoffs.CLAIMED,
                                           handoffs.HANDOFF_RESOLVED, handoffs.SATISFACTION]
    assert events[-1]["data"]["rating"] == 5
    assert {e["sender_id"] for e in events} == {world.whatsapp}
    assert world.whatsapp in data["conversations"]
    assert "Bob" not in json.dumps(data) and "other shop" not in json.dumps(data)

    status, erased = await admin.call("POST", "/privacy/erase", json={"phone": PHONE})
    assert status == 200, erased
    assert erased["deleted"]["conversation_notes"] == 1
    assert erased["deleted"]["conversation_events"] == 4
    assert erased["deleted"]["handoff_requests"] == 2  # the seeded sms one and this one
    # Nothing of hers is left; Bob's and the other shop's customer's (same phone) all stay.
    for table, theirs_left in ((NoteRow, 1), (ConversationEventRow, 4), (HandoffRow, 1)):
        assert await world.count(table, world.whatsapp) == 0, table
        assert await world.count(table, world.others_sms) == theirs_left, table
        assert await world.count(table, world.bystander) == theirs_left, table
    # The agents' claim and note stay in the audit log, naming the conversation by its log
    # pseudonym: its c_… id decrypts to the phone number.
    async with admin.sessions() as session:
        audited = (await session.execute(select(AuditRow.action, AuditRow.target).where(
            AuditRow.action.in_(("conversation.claim", "conversation.note")),
            AuditRow.tenant_id == admin.demo.id).order_by(AuditRow.id))).all()
        theirs = (await session.execute(select(AuditRow.target).where(
            AuditRow.action == "conversation.note", AuditRow.tenant_id == admin.other.id)
        )).scalar_one()
    bob = conversation_id(admin.settings.conversation_id_key, admin.demo.id, world.bystander)
    assert audited == [("conversation.claim", logs.visitor(world.whatsapp)),
                       ("conversation.note", logs.visitor(world.whatsapp)),
                       ("conversation.claim", bob), ("conversation.note", bob)]
    assert theirs == conversation_id(admin.settings.conversation_id_key, admin.other.id,
                                     world.others_sms)
    status, again = await admin.call("GET", "/privacy/export",
                                     params={"conversation": mine})
    assert status == 404 and "nothing is stored" in again["detail"], again


async def test_an_erased_handoffs_id_is_never_given_again(world: World) -> None:
    """On SQLite an INTEGER PRIMARY KEY reused the largest id left: the erased visitor's
    handoff was 4, the next visitor's handoff 4 too, and webhook events named both by it.
    Event ids are webhooks' cursor (id > last sent): a reused one would never be sent."""
    admin = world.admin
    erased_handoff = await handed_over(world, world.whatsapp, "size M sent")
    async with admin.sessions() as session:
        erased_event = (await session.execute(select(func.max(ConversationEventRow.id)))
                        ).scalar_one()
        erased_note = (await session.execute(select(func.max(NoteRow.id)))).scalar_one()
    status, erased = await admin.call("POST", "/privacy/erase", json={"phone": PHONE})
    assert status == 200 and erased["deleted"]["conversation_events"] == 4, erased

    next_handoff = await handed_over(world, world.bystander, "Bob wants a call back")
    assert next_handoff > erased_handoff
    async with admin.sessions() as session:
        first_event = (await session.execute(select(func.min(ConversationEventRow.id)))
                       ).scalar_one()
        note = (await session.execute(select(NoteRow))).scalar_one()
    assert first_event > erased_event and note.id > erased_note
    assert note.handoff_id == next_handoff and note.sender_id == world.bystander


async def test_a_conversation_of_another_shop_is_never_touched(world: World) -> None:
    admin = world.admin
    key = admin.settings.conversation_id_key
    theirs = conversation_id(key, admin.other.id, world.others_sms)
    for params in ({"conversation": theirs}, {"conversation": world.others_sms}):
        status, answer = await admin.call("POST", "/privacy/erase", json=params)
        assert status == 404 and answer["detail"], (params, answer)
        status, answer = await admin.call("GET", "/privacy/export", params=params)
        assert status == 404 and answer["detail"], (params, answer)
    assert await world.count(MessageRow, world.others_sms) == 2
    assert await world.events(world.others_sms) == 1
    # Their owner erases it with the id their own list shows.
    status, erased = await admin.call("POST", "/privacy/erase", shop=admin.other,
                                      json={"conversation": theirs})
    assert status == 200 and erased["deleted"]["messages"] == 2, erased
    assert await world.count(MessageRow, world.sms) == 2  # the demo shop's sms stays
    # A sender id given as such (scripts from before the opaque ids): without the shop part,
    # it means this shop's.
    status, data = await admin.call("GET", "/privacy/export",
                                    params={"conversation": "web:w-bob"})
    assert status == 200 and data["conversations"] == [world.bystander]


async def test_a_pseudonym_or_an_email_given_as_the_conversation_is_said_to_be_no_id(
        world: World) -> None:
    """The walkthrough: the conversations list names visitors v-…, and pasting that (or an
    email) as the conversation answered 404 'nothing is stored', which an owner answering a
    data request could pass on as the truth."""
    for value in ("v-1f2e3d4c5b6a7980", EMAIL):
        status, body = await world.admin.call("GET", "/privacy/export",
                                              params={"conversation": value})
        assert status == 422 and "pseudonym" in str(body) and "own field" in str(body), body
        status, body = await world.admin.call("POST", "/privacy/erase",
                                              json={"conversation": value})
        assert status == 422 and "pseudonym" in str(body), body


async def test_the_conversation_id_owners_see_exports_and_erases_it(world: World) -> None:
    """The id of GET /conversations (and of the inbox and webhook events) names the visitor;
    the walkthrough's owner erased with it and got 200 `deleted: 0` while the data stayed."""
    admin = world.admin
    status, page = await admin.call("GET", "/conversations", params={"channel": "web"})
    assert status == 200, page
    listed = {item["visitor"]: item["id"] for item in page["items"]}
    ident = conversation_id(admin.settings.conversation_id_key, admin.demo.id, world.web)
    assert ident in listed.values()

    status, data = await admin.call("GET", "/privacy/export", params={"conversation": ident})
    assert status == 200, data
    assert data["conversations"] == [world.web] and data["conversation_ids"] == [ident]
    assert [m["text"] for m in data["messages"]] == ["I want to return my shoes",
                                                     "Happy to help."]
    assert [r["reference"] for r in data["return_requests"]] == ["R-1001-A"]

    status, erased = await admin.call("POST", "/privacy/erase", json={"conversation": ident})
    assert status == 200, erased
    assert erased["deleted"]["messages"] == 2 and erased["deleted"]["tracker_events"] == 2
    assert erased["deleted"]["return_requests"] == 1
    assert await world.count(MessageRow, world.web) == 0 and await world.events(world.web) == 0
    status, _ = await admin.call("GET", f"/conversations/{ident}")
    assert status == 404
    assert await world.count(MessageRow, world.bystander) == 2  # the other web visitor stays

    status, again = await admin.call("POST", "/privacy/erase", json={"conversation": ident})
    assert status == 404 and "nothing is stored" in again["detail"]


async def test_the_rest_sender_the_shop_chose_names_its_visitor(world: World) -> None:
    admin = world.admin
    status, data = await admin.call("GET", "/privacy/export", params={"sender": " r-alice "})
    assert status == 200, data
    assert data["conversations"] == [world.rest]
    assert data["conversation_ids"] == [conversation_id(
        admin.settings.conversation_id_key, admin.demo.id, world.rest)]
    status, erased = await admin.call("POST", "/privacy/erase", json={"sender": "r-alice"})
    assert status == 200 and erased["deleted"]["messages"] == 2, erased
    assert await world.count(MessageRow, world.rest) == 0
    # Another shop's owner naming the same sender finds nothing of this shop's.
    status, answer = await admin.call("POST", "/privacy/erase", shop=admin.other,
                                      json={"sender": "w-bob"})
    assert status == 404, answer


@pytest.mark.parametrize(("params", "status", "field"), [
    ({}, 422, None), ({"email": "  "}, 422, None), ({"phone": "12"}, 422, "phone"),
    ({"email": "not-an-address"}, 422, "email"), ({"email": EMAIL, "phone": "12"}, 422, "phone"),
    ({"conversation": "web:w-bob\x01"}, 422, "conversation"),
    ({"conversation": "web:w-bob\x00"}, 422, "conversation"),
    ({"phone": "+1555\x00"}, 422, "phone"),
    ({"conversation": "c_made-up"}, 404, None), ({"conversation": "web:nobody"}, 404, None),
    ({"sender": "nobody"}, 404, None), ({"email": "nobody@example.com"}, 404, None)])
async def test_what_names_no_one_is_said_so(world: World, params: dict[str, str], status: int,
                                            field: str | None) -> None:
    """Never a 200 of empty lists or zeros: a typo is a 422 naming the field, and a name
    under which nothing is stored a 404 saying so."""
    for answered, answer in (
            await world.admin.call("GET", "/privacy/export", params=params),
            await world.admin.call("POST", "/privacy/erase", json=params)):
        assert answered == status and answer["detail"], (params, answer)
        if field is not None:
            assert [e["loc"] for e in answer["detail"]] == [[field]], answer
    assert await world.count(MessageRow, world.sms) == 2
    assert await world.count(MessageRow, world.bystander) == 2
    answered, answer = await world.admin.call("GET", "/privacy/export", params={"whatever": "x"})
    assert answered == 422 and answer["detail"]


async def test_several_names_of_one_visitor_find_all_their_conversations(
        world: World) -> None:
    status, data = await world.admin.call("GET", "/privacy/export", params={
        "email": EMAIL, "phone": PHONE})
    assert status == 200
    assert data["conversations"] == sorted([world.mail, world.web, world.rest, world.sms,
                                            world.whatsapp])


async def test_only_owners(world: World) -> None:
    for role in ("designer", "agent"):
        status, _ = await world.admin.call("GET", "/privacy/export", role=role,
                                           params={"phone": PHONE})
        assert status == 403
        status, _ = await world.admin.call("POST", "/privacy/erase", role=role,
                                           json={"phone": PHONE})
        assert status == 403
    assert await world.count(MessageRow, world.sms) == 2


async def test_cached_answers_to_the_visitors_questions_leave_redis(world: World) -> None:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("Redis not answering (make test sets TEST_REDIS_URL)")
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(url)
    demo, other = world.admin.demo.id, world.admin.other.id
    question = "I want to return my shoes"
    mine = cache_key(demo, "idx7", question)
    theirs = cache_key(other, "idx7", question)
    unrelated = cache_key(demo, "idx7", "do you ship to Norway?")
    try:
        for key in (mine, theirs, unrelated):
            await redis.set(key, json.dumps({"answer": "Returns are free."}), ex=60)
        stores = privacy.Stores(world.admin.sessions, world.tracker, redis, KEY,
                                world.admin.settings.conversation_id_key)
        selector = privacy.Selector.of(demo, email=EMAIL)
        exported = await privacy.export(stores, demo, selector)
        assert exported["cached_answers"] == [{"answer": "Returns are free."}]
        counts = await privacy.erase(stores, demo, selector)
        assert counts["cached_answers"] == 1
        assert await redis.exists(mine) == 0
        assert await redis.exists(theirs) == 1 and await redis.exists(unrelated) == 1
    finally:
        await redis.delete(mine, theirs, unrelated)
        await redis.aclose()


async def test_retention_deletes_a_shops_old_conversations_only(world: World) -> None:
    admin = world.admin
    status, _ = await admin.call("PATCH", "/settings", json={"retention_days": 30})
    assert status == 200
    old = utcnow() - timedelta(days=40)
    for shop, sender in ((admin.demo.id, world.bystander), (admin.other.id, world.others_sms)):
        await record_message(admin.sessions, tenant_id=shop, sender_id=sender,
                             channel=sender.split(":")[1], direction="in",
                             text="an old question", at=old)
        await world.event(sender, "user", {"event": "user"}, timestamp=old.timestamp())
    async with admin.sessions() as session:
        await session.execute(delete(ReturnRequestRow))
        session.add(ReturnRequestRow(
            tenant_id=admin.demo.id, order_number="900", reference="R-900", items_key="x",
            items=[], reason="old", sender_id=world.web, created_at=old))
        for at, text, kind in ((old, "old address: Kastanienallee 1", "handoff.requested"),
                               (utcnow(), "asked about sizes this week", "satisfaction.given")):
            session.add(NoteRow(tenant_id=admin.demo.id, sender_id=world.bystander,
                                handoff_id=None, author_id="u1", author_name="Ann",
                                text=text, created_at=at))
            session.add(ConversationEventRow(tenant_id=admin.demo.id, sender_id=world.bystander,
                                             kind=kind, data={}, created_at=at))
        await session.commit()

    swept = await retention.sweep(admin.sessions, world.tracker)
    assert list(swept) == [admin.demo.id]  # the other shop keeps everything (no period)
    assert swept[admin.demo.id] == {"messages": 1, "deliveries": 0, "handoff_requests": 0,
                                    "conversation_notes": 1, "conversation_events": 1,
                                    "tracker_events": 1, "return_requests_unlinked": 1}
    async with admin.sessions() as session:  # an agent's note and the rating of this week stay
        left = [(n.text, n.created_at > old) for n in (await session.execute(
            select(NoteRow).where(NoteRow.sender_id == world.bystander))).scalars()]
        events = (await session.execute(select(ConversationEventRow.kind).where(
            ConversationEventRow.sender_id == world.bystander))).scalars().all()
    assert left == [("asked about sizes this week", True)] and events == ["satisfaction.given"]
    assert await world.count(MessageRow, world.bystander) == 2  # this week's turn stays
    assert await world.events(world.bystander) == 2
    assert await world.count(MessageRow, world.others_sms) == 3
    assert await world.events(world.others_sms) == 2
    async with admin.sessions() as session:
        kept = (await session.execute(select(ReturnRequestRow))).scalar_one()
        entries = (await session.execute(select(AuditRow).where(
            AuditRow.action == "retention.sweep"))).scalars().all()
    assert kept.reference == "R-900" and kept.sender_id is None
    assert len(entries) == 1 and entries[0].actor == "system:retention"
    assert (entries[0].after or {})["deleted"]["messages"] == 1

    assert await retention.sweep(admin.sessions, world.tracker) == {}  # nothing left
    status, page = await admin.call("GET", "/audit", params={"action": "retention.sweep"})
    assert status == 200 and page["total"] == 1


async def test_an_embedded_tracker_that_does_not_exist_yet_holds_nothing(admin: Admin) -> None:
    """Before Rasa ever ran (no tracker file, not even its folder) an export finds no events
    instead of failing (a 404: nothing stored); the matrix found this a 500."""
    if not admin.settings.uses_embedded_storage:
        pytest.skip("the embedded tracker file only exists without DATABASE_URL")
    tracker = Path(admin.settings.tracker_store_url.split("///", 1)[1])
    assert not tracker.exists()
    status, data = await admin.call("GET", "/privacy/export",
                                    params={"conversation": f"{admin.demo.id}:rest:nobody"})
    assert status == 404 and "nothing is stored" in data["detail"], data
    status, erased = await admin.call("POST", "/privacy/erase",
                                      json={"conversation": f"{admin.demo.id}:rest:nobody"})
    assert status == 404 and "nothing is stored" in erased["detail"], erased
