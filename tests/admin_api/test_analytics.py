"""Analytics over the admin API on SQLite and PostgreSQL: a few known conversations seeded
with their outcomes, intents and dates, and the figures an owner reads back, exactly, per day
and per channel; another shop's messages never counted; roles; bad ranges refused; the
questions the bot could not answer grouped into topics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from admin_api.clusters import CAP
from core.conversations import HandoffRow, MessageRow
from tests.admin_api.conftest import Admin

pytestmark = pytest.mark.asyncio

D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
RANGE = f"from={D1}&to={D2}"


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


class Seeder:
    """Conversations of a shop, written as the gateway and actions write them."""

    def __init__(self, sessions: async_sessionmaker, shop: str) -> None:
        self.sessions, self.shop = sessions, shop
        self.rows: list[dict[str, Any]] = []
        self.handoffs: list[dict[str, Any]] = []

    def turn(self, channel: str, user: str, when: datetime, text: str, intent: str,
             outcome: str) -> None:
        sender = f"{self.shop}:{channel}:{user}"
        common = {"tenant_id": self.shop, "sender_id": sender, "channel": channel}
        self.rows.append({**common, "direction": "in", "text": text, "created_at": when,
                          "intent": intent, "confidence": 0.9, "outcome": outcome,
                          "payload": None})
        self.rows.append({**common, "direction": "out", "text": "ok",
                          "created_at": when + timedelta(seconds=2), "intent": None,
                          "confidence": None, "outcome": None,
                          "payload": {"messages": [{"text": "ok"}]}})

    def handoff(self, channel: str, user: str, when: datetime, reason: str) -> None:
        self.handoffs.append({"tenant_id": self.shop, "sender_id": f"{self.shop}:{channel}:"
                              f"{user}", "channel": channel, "reason": reason,
                              "last_message": None, "status": "queued", "created_at": when})

    async def save(self) -> None:
        async with self.sessions() as session:
            if self.rows:
                await session.execute(insert(MessageRow), self.rows)
            if self.handoffs:
                await session.execute(insert(HandoffRow), self.handoffs)
            await session.commit()
        self.rows, self.handoffs = [], []


async def seed_known_days(admin: Admin) -> None:
    demo = Seeder(admin.sessions, admin.demo.id)
    demo.turn("web", "alex", at(D1, 9), "where is my order?", "order_status", "flow")
    demo.turn("web", "alex", at(D1, 9, 1), "thanks", "thanks", "smalltalk")
    demo.turn("web", "bea", at(D1, 15), "Do you offer gift wrapping?", "out_of_scope",
              "fallback")
    demo.turn("web", "bea", at(D1, 15, 2), "a human please", "human_handoff", "handoff")
    demo.handoff("web", "bea", at(D1, 15, 2), "visitor_asked")
    demo.turn("whatsapp", "+4915100000001", at(D1, 20), "what is your return policy?",
              "ask_question", "knowledge")
    # Alex comes back the next day: another conversation.
    demo.turn("web", "alex", at(D2, 8), "can I get it gift wrapped", "ask_question",
              "abstained")
    # Dan's handoff comes from the verification flow (a handoff request, no handoff intent).
    demo.turn("sms", "+4915100000002", at(D2, 23, 59), "#1002", "order_status", "flow")
    demo.handoff("sms", "+4915100000002", at(D2, 23, 59), "verification_failed")
    # Outside the range, on either side.
    demo.turn("web", "early", at(D1 - timedelta(days=1), 23, 59), "hi", "greet", "smalltalk")
    demo.turn("web", "late", at(D2 + timedelta(days=1), 0, 0), "hi", "greet", "smalltalk")
    await demo.save()
    # Another shop's busy day: none of it may show.
    other = Seeder(admin.sessions, admin.other.id)
    for n in range(5):
        other.turn("web", f"v{n}", at(D1, 10, n), "can I get it gift wrapped", "out_of_scope",
                   "fallback")
        other.handoff("web", f"v{n}", at(D1, 10, n), "visitor_asked")
    await other.save()


def figures(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("conversations", "handed_off", "messages_in", "messages_out",
                                 "fallbacks", "knowledge_answers", "abstentions",
                                 "not_answered", "contained", "containment", "handoff_rate",
                                 "fallback_rate")}


def counts(conversations: int = 0, handed_off: int = 0, messages: int = 0, fallbacks: int = 0,
           knowledge: int = 0, abstentions: int = 0, not_answered: int = 0) -> dict[str, Any]:
    contained = conversations - handed_off - not_answered
    return {"conversations": conversations, "handed_off": handed_off,
            "messages_in": messages, "messages_out": messages, "fallbacks": fallbacks,
            "knowledge_answers": knowledge, "abstentions": abstentions,
            "not_answered": not_answered, "contained": contained,
            "containment": round(contained / conversations, 4) if conversations else None,
            "handoff_rate": round(handed_off / conversations, 4) if conversations else None,
            "fallback_rate": round(fallbacks / messages, 4) if messages else None}


async def test_an_owner_reads_the_figures_of_each_day_and_channel(
        admin: Admin) -> None:
    await seed_known_days(admin)
    status, body = await admin.call("GET", f"/analytics/summary?{RANGE}")
    assert status == 200, body
    assert (body["first_day"], body["last_day"], body["tz"]) == (str(D1), str(D2), "UTC")

    assert figures(body["totals"]) == counts(conversations=5, handed_off=2, messages=7,
                                             fallbacks=1, knowledge=1, abstentions=1,
                                             not_answered=1)
    assert body["totals"]["containment"] == 0.4 and body["totals"]["fallback_rate"] == 0.1429

    first, second = body["days"]
    assert first["date"] == str(D1) and second["date"] == str(D2)
    assert figures(first) == counts(conversations=3, handed_off=1, messages=5, fallbacks=1,
                                    knowledge=1)
    assert figures(second) == counts(conversations=2, handed_off=1, messages=2, abstentions=1,
                                     not_answered=1)
    by_channel = {c["channel"]: figures(c) for c in first["channels"]}
    assert by_channel == {"web": counts(conversations=2, handed_off=1, messages=4, fallbacks=1),
                          "whatsapp": counts(conversations=1, messages=1, knowledge=1)}
    by_channel = {c["channel"]: figures(c) for c in second["channels"]}
    assert by_channel == {"web": counts(conversations=1, messages=1, abstentions=1,
                                        not_answered=1),
                          "sms": counts(conversations=1, handed_off=1, messages=1)}

    assert {c["channel"]: figures(c) for c in body["channels"]} == {
        "sms": counts(conversations=1, handed_off=1, messages=1),
        "web": counts(conversations=3, handed_off=1, messages=5, fallbacks=1, abstentions=1,
                      not_answered=1),
        "whatsapp": counts(conversations=1, messages=1, knowledge=1)}
    assert [(i["name"], i["count"]) for i in body["top_intents"]] == [
        ("ask_question", 2), ("order_status", 2), ("human_handoff", 1), ("out_of_scope", 1),
        ("thanks", 1)]
    assert [(i["name"], i["count"]) for i in body["top_intents_by_channel"]["sms"]] == [
        ("order_status", 1)]

    # The two gift-wrapping questions the bot could not answer are one topic. (The summary
    # waits a little for the grouping; past that the page asks for the topics themselves.)
    unanswered = body["unanswered"]
    if not unanswered["ready"]:
        assert unanswered["clusters"] == []
        status, unanswered = await admin.call("GET", f"/analytics/unanswered?{RANGE}")
        assert status == 200 and unanswered["ready"]
        _, body = await admin.call("GET", f"/analytics/summary?{RANGE}")
        assert body["unanswered"]["clusters"] == unanswered["clusters"]
    assert unanswered["total"] == 2 and unanswered["grouped"] == 2
    assert [c["count"] for c in unanswered["clusters"]] == [2]
    assert {unanswered["clusters"][0]["question"], *unanswered["clusters"][0]["examples"]} == {
        "Do you offer gift wrapping?", "can I get it gift wrapped"}

    # Read again (finished days now come from their rollups): the same answer; the designer
    # reads it too.
    status, again = await admin.call("GET", f"/analytics/summary?{RANGE}", role="designer")
    assert status == 200 and again == body


async def test_analytics_and_the_conversations_list_agree_on_each_conversation(
        admin: Admin) -> None:
    # The walkthrough's case: the list showed a conversation as "fallback" (not answered)
    # while Analytics counted it as contained, with 0 fallbacks.
    day = date(2026, 3, 10)
    demo = Seeder(admin.sessions, admin.demo.id)
    demo.turn("web", "sam", at(day, 9), "what sizes does the jacket come in?", "ask_question",
              "knowledge")
    demo.turn("web", "sam", at(day, 9, 1), "what's the capital of mongolia?", "out_of_scope",
              "abstained")
    demo.turn("web", "kim", at(day, 10), "blorp", "nlu_fallback", "fallback")
    demo.turn("sms", "+4915100000003", at(day, 11), "where is my order?", "check_order_status",
              "flow")
    demo.turn("web", "lea", at(day, 12), "eh?", "nlu_fallback", "fallback")
    demo.turn("web", "lea", at(day, 12, 1), "a person please", "human_handoff", "handoff")
    demo.handoff("web", "lea", at(day, 12, 1), "visitor_asked")
    await demo.save()

    listed: dict[str, int] = {}
    for outcome in ("contained", "fallback", "handoff"):
        status, page = await admin.call("GET", "/conversations", params={
            "from": str(day), "to": str(day), "outcome": outcome})
        assert status == 200, page
        listed[outcome] = page["total"]
    assert listed == {"contained": 1, "fallback": 2, "handoff": 1}

    status, body = await admin.call("GET", f"/analytics/summary?from={day}&to={day}")
    assert status == 200, body
    totals = body["totals"]
    assert (totals["contained"], totals["not_answered"], totals["handed_off"]) == (
        listed["contained"], listed["fallback"], listed["handoff"])
    assert totals["conversations"] == sum(listed.values())
    assert totals["containment"] == 0.25  # 1 of 4, not 3 of 4 ("no person involved")
    assert (totals["fallbacks"], totals["abstentions"]) == (2, 1)  # messages, as before
    # Read again from the day's rollup: the same.
    _, again = await admin.call("GET", f"/analytics/summary?from={day}&to={day}")
    assert again["totals"] == totals


async def test_days_rolled_up_before_not_answered_was_counted_get_it(admin: Admin) -> None:
    from admin_api.tables import AnalyticsDayRow

    await seed_known_days(admin)
    _, first = await admin.call("GET", f"/analytics/summary?{RANGE}")  # rolls D1, D2 up
    async with admin.sessions() as session:  # as migration 0013 leaves older rollups
        await session.execute(update(AnalyticsDayRow).where(
            AnalyticsDayRow.tenant_id == admin.demo.id).values(not_answered=None))
        await session.commit()
    _, body = await admin.call("GET", f"/analytics/summary?{RANGE}")
    assert body["totals"] == first["totals"] and body["totals"]["not_answered"] == 1
    assert [d["not_answered"] for d in body["days"]] == [0, 1]


async def test_top_intents_read_as_words_and_keep_their_names(admin: Admin) -> None:
    demo = Seeder(admin.sessions, admin.demo.id)
    demo.turn("web", "a", at(D1, 9), "blorp", "nlu_fallback", "fallback")
    demo.turn("web", "a", at(D1, 9, 1), "where is it", "check_order_status", "flow")
    demo.turn("web", "b", at(D1, 10), "do you wrap gifts", "gift_wrapping", "flow")
    await demo.save()
    _, body = await admin.call("GET", f"/analytics/summary?{RANGE}")
    assert [(i["name"], i["label"], i["count"]) for i in body["top_intents"]] == [
        ("check_order_status", "Order status", 1), ("gift_wrapping", "Gift wrapping", 1),
        ("nlu_fallback", "Not understood", 1)]
    assert [i["label"] for i in body["top_intents_by_channel"]["web"]] == [
        "Order status", "Gift wrapping", "Not understood"]


async def test_the_other_shop_sees_only_its_own_numbers(admin: Admin) -> None:
    await seed_known_days(admin)
    await admin.call("GET", f"/analytics/summary?{RANGE}")  # rolls the demo shop's days up
    status, body = await admin.call("GET", f"/analytics/summary?{RANGE}", shop=admin.other)
    assert status == 200
    assert figures(body["totals"]) == counts(conversations=5, handed_off=5, messages=5,
                                             fallbacks=5)
    assert [c["channel"] for c in body["channels"]] == ["web"]
    assert body["unanswered"]["total"] == 5
    status, topics = await admin.call("GET", f"/analytics/unanswered?{RANGE}", shop=admin.other)
    assert status == 200 and [c["count"] for c in topics["clusters"]] == [5]


async def test_every_day_of_the_period_is_listed_and_empty_days_read_zero(admin: Admin) -> None:
    status, body = await admin.call("GET", "/analytics/summary?from=2026-01-30&to=2026-03-01")
    assert status == 200
    assert [d["date"] for d in body["days"]][:3] == ["2026-01-30", "2026-01-31", "2026-02-01"]
    assert len(body["days"]) == 31 and body["days"][-1]["date"] == "2026-03-01"
    assert all(figures(d) == counts() and d["channels"] == [] for d in body["days"])
    assert figures(body["totals"]) == counts() and body["top_intents"] == []
    assert body["unanswered"] == {"total": 0, "ready": True, "grouped": 0, "clusters": []}


async def test_days_are_counted_in_the_callers_time_zone(admin: Admin) -> None:
    demo = Seeder(admin.sessions, admin.demo.id)
    # 23:30 UTC on D1 is 08:30 on D2 in Tokyo (UTC+9, no daylight saving).
    demo.turn("web", "night", at(D1, 23, 30), "hi", "greet", "smalltalk")
    await demo.save()
    _, utc = await admin.call("GET", f"/analytics/summary?{RANGE}")
    _, tokyo = await admin.call("GET", f"/analytics/summary?{RANGE}&tz=Asia/Tokyo")
    assert [d["conversations"] for d in utc["days"]] == [1, 0]
    assert [d["conversations"] for d in tokyo["days"]] == [0, 1]
    assert tokyo["tz"] == "Asia/Tokyo"


async def test_todays_messages_count_as_they_arrive(admin: Admin) -> None:
    today = datetime.now(UTC).date()
    span = f"from={today - timedelta(days=2)}&to={today}"
    demo = Seeder(admin.sessions, admin.demo.id)
    now = datetime.now(UTC).replace(microsecond=0)
    demo.turn("web", "first", now - timedelta(minutes=5), "hi", "greet", "smalltalk")
    demo.turn("web", "old", at(today - timedelta(days=2)), "hi", "greet", "smalltalk")
    await demo.save()
    _, before = await admin.call("GET", f"/analytics/summary?{span}")
    assert before["days"][-1]["conversations"] == 1 and before["totals"]["conversations"] == 2

    demo.turn("email", "second", now - timedelta(minutes=1), "hello", "greet", "smalltalk")
    await demo.save()
    # The outcome is written once Rasa answered, after the message was stored.
    async with admin.sessions() as session:
        await session.execute(update(MessageRow).where(
            MessageRow.sender_id == f"{admin.demo.id}:email:second",
            MessageRow.direction == "in").values(outcome="handoff"))
        await session.commit()
    _, after = await admin.call("GET", f"/analytics/summary?{span}")
    assert after["days"][-1]["conversations"] == 2 and after["totals"]["conversations"] == 3
    assert after["days"][-1]["handed_off"] == 1
    assert [c["channel"] for c in after["days"][-1]["channels"]] == ["email", "web"]


async def test_paraphrases_group_into_topics_largest_first(admin: Admin) -> None:
    demo = Seeder(admin.sessions, admin.demo.id)
    asked = ["Do you offer gift wrapping?", "can you wrap my order as a present",
             "is gift wrap available for my purchase",
             "how do loyalty points work", "how do I redeem my loyalty points"]
    for n, text in enumerate(asked):
        demo.turn("web", f"v{n}", at(D1, 10, n), text, "out_of_scope",
                  "fallback" if n % 2 else "abstained")
    # Answered questions are no topic.
    demo.turn("web", "ok", at(D1, 11), "where is my order?", "order_status", "flow")
    await demo.save()
    status, body = await admin.call("GET", f"/analytics/unanswered?{RANGE}", role="designer")
    assert status == 200, body
    assert body["total"] == 5 and body["grouped"] == 5 and body["ready"]
    topics = [(c["count"], {c["question"], *c["examples"]}) for c in body["clusters"]]
    assert topics == [(3, set(asked[:3])), (2, set(asked[3:]))]

    status, one = await admin.call("GET", f"/analytics/unanswered?{RANGE}&limit=1")
    assert status == 200 and [c["count"] for c in one["clusters"]] == [3]
    assert CAP >= 1000  # grouped: the latest CAP of the period


async def test_agents_may_not_read_analytics(admin: Admin) -> None:
    for path in (f"/analytics/summary?{RANGE}", f"/analytics/unanswered?{RANGE}"):
        status, body = await admin.call("GET", path, role="agent")
        assert status == 403 and body["detail"]
        _, response = await admin.client.get(f"/api/v1{path}")
        assert response.status == 401


@pytest.mark.parametrize("query", [
    "from=2026-03-05&to=2026-03-01",  # reversed
    "from=2025-01-01&to=2026-03-01",  # over 366 days
    "from=2026-02-30&to=2026-03-01",  # no such day
    "from=yesterday&to=2026-03-01",
    "from=2999-01-01",  # after today, the default `to`
    "from=2026-03-01&to=2026-03-02&tz=Mars/Olympus",
    "from=2026-03-01&to=2026-03-02&tz=../../etc/passwd",
])
async def test_a_bad_range_is_refused(admin: Admin, query: str) -> None:
    status, body = await admin.call("GET", f"/analytics/summary?{query}")
    assert status == 422 and body["detail"]


async def test_without_a_range_the_last_30_days_are_summarised(admin: Admin) -> None:
    status, body = await admin.call("GET", "/analytics/summary?tz=Pacific/Kiritimati")
    assert status == 200, body
    today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    assert (body["first_day"], body["last_day"]) == (
        (today - timedelta(days=29)).isoformat(), today.isoformat())
    status, body = await admin.call("GET", "/analytics/summary?to=2026-03-31")
    assert (body["first_day"], body["last_day"]) == ("2026-03-02", "2026-03-31")


async def test_the_summary_does_not_wait_long_for_the_topics(
        admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    import admin_api.routes.analytics as routes

    monkeypatch.setattr(routes, "SUMMARY_WAIT", 0.0)  # grouping always takes longer than this
    await seed_known_days(admin)
    status, body = await admin.call("GET", f"/analytics/summary?{RANGE}")
    assert status == 200 and body["totals"]["conversations"] == 5
    assert body["unanswered"] == {"total": 2, "ready": False, "grouped": 0, "clusters": []}
    # The grouping went on; the topics route waits for it, then the summary has them.
    status, topics = await admin.call("GET", f"/analytics/unanswered?{RANGE}")
    assert status == 200 and topics["ready"] and [c["count"] for c in topics["clusters"]] == [2]
    _, body = await admin.call("GET", f"/analytics/summary?{RANGE}")
    assert body["unanswered"] == topics


# --- grouping itself (no database) ----------------------------------------------------------

def test_grouping_folds_repeats_and_names_a_topic_by_its_plain_question() -> None:
    from admin_api.clusters import group_sync

    asked = (["do you ship to canada"] * 3 + ["Do you  ship to Canada"]
             + ["hello! do you deliver internationally (order #51234)",
                "can you send it abroad", "is there a student discount",
                "do students get a discount please", "asdfgh"])
    found = group_sync(asked)
    assert [(c.question, c.count) for c in found] == [
        ("do you ship to canada", 6), ("is there a student discount", 2), ("asdfgh", 1)]
    assert set(found[0].examples) == {"hello! do you deliver internationally (order #51234)",
                                      "can you send it abroad"}
    assert group_sync(list(reversed(asked)))[0].count == 6
    assert group_sync(["", "   "]) == []


async def test_days_rolled_up_ahead_of_time_read_the_same(admin: Admin) -> None:
    from admin_api.analytics import roll_up_recent
    from admin_api.tables import AnalyticsDayRow

    await seed_known_days(admin)
    now = at(D2 + timedelta(days=2), 6)
    await roll_up_recent(admin.sessions, admin.demo.id, days=10, now=now)
    async with admin.sessions() as session:
        stored = (await session.execute(select(AnalyticsDayRow.day, AnalyticsDayRow.channel,
                                               AnalyticsDayRow.conversations).where(
            AnalyticsDayRow.tenant_id == admin.demo.id, AnalyticsDayRow.channel != ""))).all()
    assert sorted(stored) == [(D1 - timedelta(days=1), "web", 1), (D1, "web", 2),
                              (D1, "whatsapp", 1), (D2, "sms", 1), (D2, "web", 1),
                              (D2 + timedelta(days=1), "web", 1)]
    _, body = await admin.call("GET", f"/analytics/summary?{RANGE}")
    assert figures(body["totals"]) == counts(conversations=5, handed_off=2, messages=7,
                                             fallbacks=1, knowledge=1, abstentions=1,
                                             not_answered=1)


async def test_the_hourly_housekeeping_rolls_up_every_shop(admin: Admin) -> None:
    from admin_api.analytics import roll_up_every_shop
    from admin_api.tables import AnalyticsDayRow

    await seed_known_days(admin)
    shops = await roll_up_every_shop(admin.sessions, days=10, now=at(D2 + timedelta(days=2), 6))
    assert shops >= 2  # the demo shop and the other one
    async with admin.sessions() as session:
        rolled = set((await session.execute(select(AnalyticsDayRow.tenant_id).distinct())
                      ).scalars())
    assert admin.demo.id in rolled
