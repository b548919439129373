"""A person takes over: action_handoff queues the conversation with what the bot knows, tells
the agents' pages at once, tells the visitor the wait (or, outside opening hours, when the team
is back) in the shop's words, and pauses the bot; the bot hands over by itself after
misunderstanding the visitor twice in a row. On SQLite (live events on the admin service's
in-process bus) and on PostgreSQL with Redis (live events over Redis pub/sub)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from redis.asyncio import Redis
from sqlalchemy import select, update

from actions.handoff import ActionHandoff, ActionHandoffDeclined
from actions.knowledge import ActionAnswerFromKnowledge
from actions.order_status import ValidateOrderStatusForm
from actions.runtime import Runtime
from actions.smalltalk import ActionFallback
from actions.waiting import announcement, median_wait_minutes
from core.conversations import HandoffRow
from core.db import utcnow
from core.handoffs import QUEUED, REQUESTED, Agent, claim, open_handoff, transfer
from core.live import CHANNEL_PREFIX, LiveEvent, LocalBus, pubsub_channel
from core.sender_ids import sender_id
from devtools.demo_shop import DEMO_TENANT_ID
from tenants.models import TenantRow
from tenants.texts import ARGUMENTS, domain_texts, render, validate
from tests.actions.conftest import DOMAIN
from tests.actions.rendered import rendered
from tests.conftest import services

# One turn: the visitor's intent and text, then the events Rasa recorded for the bot's answer.
Turn = tuple[str, str, Sequence[dict[str, Any]]]


def slot(name: str, value: Any) -> dict[str, Any]:
    return {"event": "slot", "name": name, "value": value}


def ran(name: str) -> dict[str, Any]:
    return {"event": "action", "name": name}


def conversation(*turns: Turn, slots: dict[str, Any] | None = None, user: str | None = None,
                 channel: str = "web", sender: str | None = None,
                 active_loop: str | None = None) -> Tracker:
    """A tracker as Rasa sends it to an action in the last turn: the session's slots, then each
    turn's user event, what action_extract_slots set (the domain's mapping resets
    misunderstood_turns on every understood message) and the bot's events."""
    events: list[dict[str, Any]] = [{"event": "session_started"}, ran("action_session_start"),
                                    slot("tenant_id", DEMO_TENANT_ID),
                                    *(slot(n, v) for n, v in (slots or {}).items()),
                                    ran("action_listen")]
    latest: dict[str, Any] = {}
    for intent, text, after in turns:
        latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []}
        events += [{"event": "user", "text": text, "parse_data": latest},
                   ran("action_extract_slots")]
        if intent != "nlu_fallback":
            events.append(slot("misunderstood_turns", 0.0))
        events += [*after, ran("action_listen")]
    events.pop()  # the last turn is the one being answered
    probe = Tracker("x", {}, latest, events, False, None, {}, "action_listen")
    current: dict[str, Any] = {}
    for event in probe.applied_events():
        if event.get("event") == "slot":
            current[event["name"]] = event["value"]
    who = sender or sender_id(DEMO_TENANT_ID, channel, user or uuid.uuid4().hex[:12])
    loop = {"name": active_loop} if active_loop else {}
    return Tracker(who, current, latest, events, False, None, loop, "action_extract_slots")


def knowledge_turn(intent: str, text: str, count: float, answered: bool = False) -> Turn:
    return (intent, text, [ran("action_answer_from_knowledge"),
                           slot("misunderstood_turns", 0.0 if answered else count),
                           slot("handoff_offered", not answered),
                           slot("unanswered_question", None if answered else text)])


def paused(result: list[dict[str, Any]]) -> bool:
    """ConversationPaused is among the events: Rasa predicts nothing until it is resumed."""
    return any(e.get("event") == "pause" for e in result)


def followed_by(result: list[dict[str, Any]]) -> str | None:
    """The action Rasa runs next whatever its policies predict (FollowupAction), if any."""
    return next((e["name"] for e in result if e.get("event") == "followup"), None)


def events_of(result: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in result if e.get("event") == "slot"}


async def run(action: Any, tracker: Tracker) -> tuple[list[dict[str, Any]], str, list[str]]:
    dispatcher = CollectingDispatcher()
    result = await action.run(dispatcher, tracker, DOMAIN)
    return (result, rendered(dispatcher, tracker.slots),
            [str(m.get("response")) for m in dispatcher.messages])


async def handoffs_of(rt: Runtime, sender: str) -> list[HandoffRow]:
    async with rt.sessions() as session:
        return list((await session.scalars(
            select(HandoffRow).where(HandoffRow.sender_id == sender))).all())


async def set_hours(rt: Runtime, hours: dict[str, Any] | None) -> None:
    async with rt.sessions() as session:
        await session.execute(update(TenantRow).where(TenantRow.id == DEMO_TENANT_ID)
                              .values(opening_hours=hours))
        await session.commit()


LiveEvents = Callable[[str], Awaitable[LiveEvent]]


@pytest_asyncio.fixture
async def live_events(action_runtime: Runtime, storage: str) -> AsyncIterator[LiveEvents]:
    """The next live event about a sender, as the admin service receives it: from Redis when
    the runtime publishes there, else from the admin service's in-process bus (what its
    loopback route hands each event to), standing in for the relay."""
    redis_url = services()["redis_url"] if storage == "postgresql" else None
    if redis_url is None:
        bus = LocalBus()
        action_runtime.__dict__["live"] = bus
        async with bus.subscribe(DEMO_TENANT_ID) as queue:
            async def from_bus(sender: str) -> LiveEvent:
                while True:
                    event = await asyncio.wait_for(queue.get(), 10)
                    if event.sender_id == sender:
                        return event
            yield from_bus
        return
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(pubsub_channel(redis, CHANNEL_PREFIX) + DEMO_TENANT_ID)

    async def from_redis(sender: str) -> LiveEvent:
        async with asyncio.timeout(10):
            while True:  # None: a subscribe confirmation, or nothing yet
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is None:
                    continue
                event = LiveEvent.loads(message["data"])
                if event.sender_id == sender:
                    return event
    try:
        yield from_redis
    finally:
        await pubsub.aclose()
        await redis.aclose()


# -- the handoff ------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_after_an_unanswered_question_yes_queues_a_summary_and_pauses_the_bot(
        action_runtime: Runtime, live_events: LiveEvents) -> None:
    t = conversation(
        ("check_order_status", "where is my order", [ran("order_status_form")]),
        knowledge_turn("ask_question", "do you sell replacement straps for the smartwatch?", 1.0),
        ("affirm", "yes please", []),
        slots={"verified_order": "1001"})
    result, said, _ = await run(ActionHandoff(), t)

    assert paused(result)
    assert events_of(result)["handoff_offered"] is False
    [row] = await handoffs_of(action_runtime, t.sender_id)
    assert row.status == QUEUED and row.channel == "web" and row.reason == "knowledge_abstained"
    assert row.summary == {"intent": "ask_question", "order_number": "1001",
                           "question": "do you sell replacement straps for the smartwatch?"}
    # The demo shop set no opening hours (always staffed) and has no handoff history yet.
    assert said == ("I've asked a person from our team to take over. They'll reply right here "
                    "in this conversation; the wait is usually a few minutes.")

    event = await live_events(t.sender_id)
    assert event.kind == REQUESTED and event.tenant_id == DEMO_TENANT_ID
    assert event.data["handoff_id"] == row.id and event.data["status"] == QUEUED
    assert event.data["summary"]["question"].startswith("do you sell")
    json.loads(event.dumps())  # travels as JSON


@pytest.mark.asyncio
async def test_asking_outright_keeps_what_the_visitor_came_for_and_asking_again_is_no_second(
        action_runtime: Runtime, live_events: LiveEvents) -> None:
    user = uuid.uuid4().hex[:12]
    t = conversation(("request_return", "I want to return my jacket", [ran("return_form")]),
                     ("inform", "1002", [ran("return_form")]),
                     ("human_handoff", "actually let me talk to a person", []), user=user)
    result, _, _ = await run(ActionHandoff(), t)
    [row] = await handoffs_of(action_runtime, t.sender_id)
    assert row.reason == "visitor_asked" and row.summary == {"intent": "request_return"}
    assert row.last_message == "actually let me talk to a person"
    assert (await live_events(t.sender_id)).data["handoff_id"] == row.id

    again = conversation(("human_handoff", "hello?? a person please", []), user=user)
    result, said, responses = await run(ActionHandoff(), again)
    assert len(await handoffs_of(action_runtime, t.sender_id)) == 1
    assert responses == ["utter_handoff_already_requested"] and "already in the queue" in said
    assert paused(result)


@pytest.mark.asyncio
async def test_outside_opening_hours_the_visitor_is_told_when_the_team_is_back(
        action_runtime: Runtime, live_events: LiveEvents) -> None:
    # Open only on the day after tomorrow (UTC), so closed now whatever the time.
    later = (utcnow() + timedelta(days=2)).strftime("%a").lower()
    await set_hours(action_runtime, {"timezone": "UTC", "days": {later: [["09:00", "17:00"]]}})
    _, said, responses = await run(ActionHandoff(),
                                   conversation(("human_handoff", "a human please", [])))
    assert responses == ["utter_handoff_requested_closed"]
    day = (utcnow() + timedelta(days=2)).strftime("%A")
    assert said == ("I've passed your conversation to our team. They're away right now and "
                    f"back on {day} at 09:00 UTC; a person will reply right here then.")


@pytest.mark.asyncio
async def test_without_a_tenant_nothing_is_queued_and_the_bot_stays(
        action_runtime: Runtime) -> None:
    result, _, responses = await run(ActionHandoff(), conversation(
        ("human_handoff", "human", []), sender="no-tenant-here"))
    assert responses == ["utter_handoff_failed"]
    assert not paused(result)


# -- what the visitor is told -----------------------------------------------------------------

BERLIN = {"timezone": "Europe/Berlin", "days": {"mon": [["09:00", "17:00"]],
                                                "tue": [["09:00", "17:00"]],
                                                "fri": [["09:00", "12:00"]]}}
MONDAY_10_BERLIN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # 10:00 CET


def read(said: Any, overrides: dict[str, list[dict[str, str]]] | None = None) -> str:
    assert set(said.arguments) == ARGUMENTS.get(said.response, frozenset()), said.response
    variants = (overrides or {}).get(said.response) or domain_texts().defaults(said.response)
    message = render(variants, "sms", {}, said.arguments)
    assert message is not None
    return str(message["text"])


def test_inside_opening_hours_the_expected_wait_is_said() -> None:
    assert read(announcement(BERLIN, MONDAY_10_BERLIN, 7)).endswith(
        "the wait is usually about 7 minutes.")
    assert "a few minutes" in read(announcement(BERLIN, MONDAY_10_BERLIN, None))
    assert "about a minute" in read(announcement(None, MONDAY_10_BERLIN, 1))
    assert "about 3 hours" in read(announcement({}, MONDAY_10_BERLIN, 180))


def test_outside_opening_hours_when_the_team_is_back_in_the_shops_time() -> None:
    evening = MONDAY_10_BERLIN + timedelta(hours=9)  # Monday 19:00 in Berlin
    assert "back tomorrow at 09:00 CET;" in read(announcement(BERLIN, evening, 3))
    friday_night = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    assert "back on Monday at 09:00 CET;" in read(announcement(BERLIN, friday_night, 3))
    early = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # Monday 07:00 in Berlin
    assert "back today at 09:00 CET;" in read(announcement(BERLIN, early, 3))
    never = {"timezone": "UTC", "days": {"mon": [["24:00", "24:00"]]}}  # no opening at all
    assert "as soon as they're back" in read(announcement(never, early, 3))


def test_a_shops_own_words_get_the_same_values() -> None:
    mine = {"utter_handoff_requested": [{"text": "Hang tight, one of us is with you in {wait}."}],
            "utter_handoff_requested_closed": [{"text": "We're closed; back {opens}."}]}
    for name, variants in mine.items():
        validate(name, variants, domain_texts())
    assert read(announcement(BERLIN, MONDAY_10_BERLIN, 12), mine) == \
        "Hang tight, one of us is with you in about 12 minutes."
    assert read(announcement(BERLIN, datetime(2026, 11, 30, 18, 0, tzinfo=UTC), 12), mine) == \
        "We're closed; back tomorrow at 09:00 CET."


@pytest.mark.asyncio
async def test_the_wait_is_the_median_of_the_shops_last_taken_handoffs(
        action_runtime: Runtime, live_events: LiveEvents) -> None:
    sessions = action_runtime.sessions
    assert await median_wait_minutes(sessions, DEMO_TENANT_ID) is None
    alice, bob = Agent("u-alice", "Alice"), Agent("u-bob", "Bob")
    for n, minutes in enumerate((2, 4, 30, 11)):
        row, _ = await open_handoff(sessions, tenant_id=DEMO_TENANT_ID,
                                    sender_id=sender_id(DEMO_TENANT_ID, "sms", f"+1555000{n}"),
                                    channel="sms", reason="visitor_asked", last_message=None)
        async with sessions() as session:
            await session.execute(update(HandoffRow).where(HandoffRow.id == row.id).values(
                created_at=utcnow() - timedelta(minutes=minutes)))
            await session.commit()
        if n == 3:  # straight from the queue to Bob, then on to Alice much later
            await transfer(sessions, DEMO_TENANT_ID, row.id, by=alice, to=bob)
            await transfer(sessions, DEMO_TENANT_ID, row.id, by=bob, to=alice)
        else:
            await claim(sessions, DEMO_TENANT_ID, row.id, alice)
    # A request still waiting says nothing about how long taking one takes.
    await open_handoff(sessions, tenant_id=DEMO_TENANT_ID, sender_id="x:web:waiting",
                       channel="web", reason="visitor_asked", last_message=None)
    assert await median_wait_minutes(sessions, DEMO_TENANT_ID) == 8  # median of 2, 4, 11, 30
    _, said, _ = await run(ActionHandoff(), conversation(("human_handoff", "a person", [])))
    assert said.endswith("the wait is usually about 8 minutes.")


# -- misunderstood twice in a row -------------------------------------------------------------

@pytest.mark.asyncio
async def test_the_second_fallback_in_a_row_hands_over_to_a_person(
        action_runtime: Runtime, live_events: LiveEvents) -> None:
    user = uuid.uuid4().hex[:12]
    first = conversation(("greet", "hi", [ran("action_greet")]),
                         ("affirm", "okey dokey then", []), user=user)
    result, _, responses = await run(ActionFallback(), first)
    assert responses == ["utter_cannot_answer_yet"]
    assert result[0]["event"] == "rewind" and events_of(result)["misunderstood_turns"] == 1.0
    assert not followed_by(result)

    fallback = [ran("action_fallback"), {"event": "bot", "text": "Sorry"}, *result]
    second_turn = conversation(("greet", "hi", [ran("action_greet")]),
                               ("affirm", "okey dokey then", fallback),
                               ("deny", "nah the other", []), user=user)
    result, said, responses = await run(ActionFallback(), second_turn)
    assert responses == ["utter_handing_over_misunderstood"]
    assert said.startswith("Sorry, I'm not getting this right")
    assert events_of(result)["misunderstood_turns"] == 2.0
    assert followed_by(result) == "action_handoff"  # at once, whatever the rules would say

    # Rasa runs the handoff next, on the tracker with those events applied.
    fallback2 = [ran("action_fallback"), {"event": "bot", "text": "Sorry"}, *result]
    handing_over = conversation(("greet", "hi", [ran("action_greet")]),
                                ("affirm", "okey dokey then", fallback),
                                ("deny", "nah the other", fallback2), user=user)
    result, said, _ = await run(ActionHandoff(), handing_over)
    [row] = await handoffs_of(action_runtime, handing_over.sender_id)
    assert row.reason == "misunderstood" and row.status == "queued" and paused(result)
    assert "person from our team" in said
    assert events_of(result)["misunderstood_turns"] == 0.0  # counting starts over afterwards


@pytest.mark.asyncio
async def test_not_answered_twice_in_a_row_hands_over_an_answer_starts_over(
        action_runtime: Runtime) -> None:
    # No shop behind this conversation: the knowledge route cannot answer anything.
    once = conversation(("nlu_fallback", "the thing with the bit", []), sender="nobody")
    result, _, responses = await run(ActionAnswerFromKnowledge(), once)
    assert responses == ["utter_knowledge_not_found"]
    assert events_of(result) == {"misunderstood_turns": 1.0, "handoff_offered": True,
                                 "unanswered_question": "the thing with the bit"}
    assert not followed_by(result)

    twice = conversation(knowledge_turn("nlu_fallback", "the thing with the bit", 1.0),
                         ("out_of_scope", "blorp", []), sender="nobody")
    result, _, responses = await run(ActionAnswerFromKnowledge(), twice)
    assert responses == ["utter_handing_over_misunderstood"]
    assert events_of(result)["misunderstood_turns"] == 2.0
    assert followed_by(result) == "action_handoff"

    # An understood turn in between (the greeting's mapping reset the count) starts over.
    apart = conversation(knowledge_turn("nlu_fallback", "the thing with the bit", 1.0),
                         ("greet", "hello", [ran("action_greet")]),
                         ("out_of_scope", "blorp", []), sender="nobody")
    result, _, responses = await run(ActionAnswerFromKnowledge(), apart)
    assert responses == ["utter_knowledge_not_found"]
    assert events_of(result)["misunderstood_turns"] == 1.0 and not followed_by(result)


@pytest.mark.asyncio
async def test_a_handoff_while_a_form_asks_stops_the_form(action_runtime: Runtime) -> None:
    # Misunderstood twice while the bot asked for the order number: no rule deactivated the
    # form on the way to the handoff, so the handoff does, or the visitor's first words after
    # the agent hands back would be taken as the order number.
    asking = [ran("order_status_form"), slot("requested_slot", "order_number")]
    t = conversation(("check_order_status", "where is my order", asking),
                     knowledge_turn("nlu_fallback", "hmm the thing", 1.0),
                     knowledge_turn("out_of_scope", "blorp", 2.0),
                     active_loop="order_status_form")
    result, _, _ = await run(ActionHandoff(), t)
    assert [e["name"] for e in result if e["event"] == "active_loop"] == [None]
    assert events_of(result)["requested_slot"] is None and paused(result)
    # Without a form there is nothing to stop.
    result, _, _ = await run(ActionHandoff(), conversation(("human_handoff", "a person", [])))
    assert not [e for e in result if e["event"] == "active_loop"]


@pytest.mark.asyncio
async def test_yes_or_no_to_an_offered_person_mid_form_answers_the_offer_not_the_form(
        action_runtime: Runtime) -> None:
    asking = [ran("order_status_form"), slot("requested_slot", "order_number")]
    for intent, text in (("affirm", "yes please"), ("deny", "no thanks")):
        t = conversation(("check_order_status", "where is my order", asking),
                         knowledge_turn("ask_question", "can I pick it up myself?", 1.0),
                         (intent, text, []), active_loop="order_status_form")
        dispatcher = CollectingDispatcher()
        events = await ValidateOrderStatusForm().run(dispatcher, t, DOMAIN)
        # Nothing taken as an order number and no "that doesn't look like one": the form
        # rejects the message and the rules answer the offer (data/rules/order_status.yml).
        assert "order_number" not in events_of(events) and dispatcher.messages == []
    result, said, _ = await run(ActionHandoffDeclined(), t)
    assert said == "" and events_of(result) == {"handoff_offered": False}  # the form re-asks
    # Without an offer on the table, "yes" is a (failed) answer to the form's question.
    t = conversation(("check_order_status", "where is my order", asking),
                     ("affirm", "yes", []), active_loop="order_status_form")
    dispatcher = CollectingDispatcher()
    await ValidateOrderStatusForm().run(dispatcher, t, DOMAIN)
    assert [m.get("response") for m in dispatcher.messages] == ["utter_invalid_order_number"]
