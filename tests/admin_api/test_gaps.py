"""Gap mining over the admin API (issue 15), on SQLite and PostgreSQL: conversations recorded
as the gateway and actions record them; the topics the bot could not handle (fallbacks,
abstentions, a handoff after a second misunderstanding) listed as gaps with stable ids, counts,
cleaned examples and a suggested intent; accepting one writes the shop's drafts (new ones, or
appended to the designer's own text, comments kept), lists a new intent in the domain draft,
leaves out what training has, and passes validation; another shop's gap is a 404; agents are
refused; the plan's own models are needed (402)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from sqlalchemy import insert, select

import admin_api.routes.gaps as gap_routes
from admin_api import topics
from admin_api.tables import AuditRow
from admin_api.training.appending import CannotAppend, add_examples, add_intent
from admin_api.training.gaps import clean, new_intent_name
from core.conversations import HandoffRow
from tests.admin_api.conftest import Admin
from tests.admin_api.test_analytics import D1, RANGE, Seeder, at
from tests.admin_api.test_training_drafts import billed, get_text, put  # noqa: F401

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("rasa_finds_nothing")]

WRAPPING = ["Do you offer gift wrapping?", "Do you offer gift wrapping?",
            "can you wrap my order #51234 as a present",
            "is gift wrap available for my purchase? alex@example.com"]
MISUNDERSTOOD = "could you gift wrap it for me"
RETURNS = ["I'd like to give back the jacket, it is too tight",
           "give back the jacket please it does not fit",
           "how do I give back this jacket"]


async def seed(admin: Admin) -> None:
    demo = Seeder(admin.sessions, admin.demo.id)
    for n, said in enumerate(WRAPPING):
        demo.turn("web", f"w{n}", at(D1, 10, n), said, "nlu_fallback" if n % 2 else
                  "ask_question", "fallback" if n % 2 else "abstained")
    # The second misunderstanding in a row: a handoff turn, with its request's reason.
    demo.turn("web", "w9", at(D1, 10, 9), MISUNDERSTOOD, "nlu_fallback", "handoff")
    # NLU read two of three as request_return, but the flow fell back.
    for n, said in enumerate(RETURNS):
        demo.turn("sms", f"r{n}", at(D1, 11, n), said,
                  "request_return" if n < 2 else "nlu_fallback", "fallback")
    demo.turn("web", "ok", at(D1, 12), "where is my order?", "check_order_status", "flow")
    other = Seeder(admin.sessions, admin.other.id)
    other.turn("web", "o1", at(D1, 10), "do you sell bike helmets? olga@example.com",
               "nlu_fallback", "fallback")
    await demo.save()
    await other.save()
    async with admin.sessions() as session:
        await session.execute(insert(HandoffRow), [{
            "tenant_id": admin.demo.id, "sender_id": f"{admin.demo.id}:web:w9",
            "channel": "web", "reason": "misunderstood", "last_message": MISUNDERSTOOD,
            "status": "queued", "created_at": at(D1, 10, 9)}])
        await session.commit()


async def listed(admin: Admin, query: str = "", role: str = "designer",
                 **kwargs: Any) -> dict[str, Any]:
    """The gaps once grouped: a client asks again while the answer is `ready` false (the first
    grouping loads the question embedder, which takes longer than GAPS_WAIT on a busy machine)."""
    deadline = time.monotonic() + 60
    while True:
        status, body = await admin.call("GET", f"/gaps?{RANGE}{query}", role=role, **kwargs)
        assert status == 200, body
        if body["ready"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert body["ready"], body
    return dict(body)


async def accept(admin: Admin, gap: str, role: str = "designer", **body: Any
                 ) -> tuple[int, Any]:
    return await admin.call("POST", f"/gaps/{gap}/accept", role=role, json=body)


async def test_topics_the_bot_could_not_handle_are_listed_as_gaps(
        admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    await seed(admin)
    body = await listed(admin)
    assert body["total"] == 2 and (body["page"], body["page_size"]) == (1, 20)
    wrapping, returns = body["items"]
    assert re.fullmatch(r"[0-9a-f]{16}", wrapping["id"]) and wrapping["id"] != returns["id"]
    # Four fallbacks and abstentions, and the handoff after the second misunderstanding.
    assert (wrapping["question"], wrapping["count"]) == ("Do you offer gift wrapping?", 5)
    assert sorted(wrapping["examples"]) == sorted([
        "Do you offer gift wrapping?", "can you wrap my order as a present",
        "is gift wrap available for my purchase?", MISUNDERSTOOD])
    assert not any(re.search(r"\d{4}|@", e) for e in wrapping["examples"])
    # NLU gave catch-alls only: a new intent named after the question.
    assert (wrapping["suggested_intent"], wrapping["intent_exists"]) == (
        "offer_gift_wrapping", False)
    # NLU mostly agreed on an intent of the base.
    assert returns["count"] == 3 and sorted(returns["examples"]) == sorted(RETURNS)
    assert (returns["suggested_intent"], returns["intent_exists"]) == ("request_return", True)

    # The same topic keeps its id when grouped again.
    monkeypatch.setattr(topics, "CACHE_SECONDS", 0.0)
    again = await listed(admin, role="owner")
    assert [g["id"] for g in again["items"]] == [wrapping["id"], returns["id"]]
    second = await listed(admin, "&page=2&page_size=1")
    assert [g["id"] for g in second["items"]] == [returns["id"]] and second["total"] == 2
    # The analytics count the handoff after misunderstanding as unanswered too.
    _, summary = await admin.call("GET", f"/analytics/summary?{RANGE}")
    _, unanswered = await admin.call("GET", f"/analytics/unanswered?{RANGE}")
    assert summary["unanswered"]["total"] == unanswered["total"] == 8
    assert unanswered["grouped"] == 8
    assert (summary["totals"]["fallbacks"], summary["totals"]["abstentions"]) == (5, 2)
    # The other shop sees its own gap only; its designers see no visitor's address in it.
    theirs = await listed(admin, shop=admin.other)
    assert [g["question"] for g in theirs["items"]] == ["do you sell bike helmets? [email]"]


async def test_accepting_a_gap_writes_new_drafts_that_validate(
        admin: Admin) -> None:
    await seed(admin)
    wrapping = (await listed(admin))["items"][0]
    examples = [*wrapping["examples"], "do you gift wrap orders",
                "do you ship to Canada?"]  # the base has that one (ask_question)
    status, body = await accept(admin, wrapping["id"], intent="ask_gift_wrapping",
                                examples=examples)
    assert status == 200, body
    assert body["gap"] == wrapping["id"] and body["intent"] == "ask_gift_wrapping"
    assert body["new_intent"] is True and body["problems"] == []
    assert body["added"] == examples[:-1] and body["already_present"] == ["do you ship to Canada?"]
    assert sorted((d["kind"], d["name"], d["created"]) for d in body["drafts"]) == [
        ("domain", "gaps", True), ("nlu", "gaps", True)]

    status, nlu, _ = await get_text(admin, "/training/nlu/gaps")
    assert status == 200
    assert "- intent: ask_gift_wrapping" in nlu and "- do you gift wrap orders" in nlu
    assert "Canada" not in nlu
    status, domain, _ = await get_text(admin, "/training/domain/gaps")
    assert status == 200 and "- ask_gift_wrapping" in domain
    status, checked = await admin.call("POST", "/training/validate", role="designer")
    assert status == 200 and checked == {"ok": True, "errors": [], "warnings": [],
                                         "rasa_checked": True}

    # The same examples again: nothing to add, nothing written.
    status, body = await accept(admin, wrapping["id"], intent="ask_gift_wrapping",
                                examples=examples[:2])
    assert status == 200 and body["added"] == [] and body["drafts"] == []
    assert body["already_present"] == examples[:2]
    # Its phrasings are all trained now: the topic is no gap any more.
    assert wrapping["id"] not in [g["id"] for g in (await listed(admin))["items"]]

    async with admin.sessions() as session:
        audit = (await session.scalars(select(AuditRow).where(
            AuditRow.tenant_id == admin.demo.id, AuditRow.action == "training.gap.accept")
            .order_by(AuditRow.id))).all()
    assert [a.target for a in audit] == [f"gap:{wrapping['id']}"] * 2
    assert audit[0].after["added"] == 5 and audit[0].after["new_intent"] is True
    # Sizes and hashes, not the visitors' words.
    assert not any(e in repr([(a.before, a.after) for a in audit]) for e in examples)


async def test_accepting_appends_to_the_designers_drafts_and_keeps_their_comments(
        admin: Admin) -> None:
    mine = ('version: "3.1"\n# Wrapping, asked in the shop\nnlu:\n  - intent: ask_gift_wrapping\n'
            '    examples: |\n      - can I have it wrapped\n# more to come\n')
    assert (await put(admin, "nlu", "wrapping", mine))[0] == 201
    domain = 'version: "3.1"\nintents:\n  - ask_gift_wrapping  # ours\n'
    assert (await put(admin, "domain", "wrapping", domain))[0] == 201
    await seed(admin)
    wrapping, returns = (await listed(admin))["items"]
    status, body = await accept(admin, wrapping["id"], intent="ask_gift_wrapping",
                                draft="wrapping", examples=["Do you offer gift wrapping?",
                                                            "CAN I have it wrapped"])
    assert status == 200, body
    assert body["new_intent"] is False and body["already_present"] == ["CAN I have it wrapped"]
    assert [(d["kind"], d["created"]) for d in body["drafts"]] == [("nlu", False)]
    _, nlu, _ = await get_text(admin, "/training/nlu/wrapping")
    assert nlu == mine.replace("wrapped\n", "wrapped\n      - Do you offer gift wrapping?\n")
    first = nlu
    assert (await get_text(admin, "/training/domain/wrapping"))[1] == domain

    # An intent of the base: its examples go to the draft, the domain has the intent.
    status, body = await accept(admin, returns["id"], intent="request_return",
                                draft="wrapping", examples=RETURNS[:1])
    assert status == 200 and body["new_intent"] is False and body["added"] == RETURNS[:1]
    _, nlu, _ = await get_text(admin, "/training/nlu/wrapping")
    assert nlu.startswith(first) and nlu.endswith(
        f"  - intent: request_return\n    examples: |\n      - {RETURNS[0]}\n")
    status, checked = await admin.call("POST", "/training/validate", role="designer")
    assert checked["ok"], checked

    # A draft this cannot append to: 409, and neither draft changes.
    assert (await put(admin, "nlu", "flow", 'version: "3.1"\nnlu: []\n'))[0] == 201
    status, body = await accept(admin, wrapping["id"], intent="ask_wrapping_paper",
                                draft="flow", examples=["wrapping paper please"])
    assert status == 409 and "nlu/flow.yml" in body["detail"]
    assert (await admin.call("GET", "/training/domain/flow", role="designer"))[0] == 404


async def test_a_gap_listed_by_another_admin_process_is_accepted(admin: Admin) -> None:
    """Behind a load balancer (or after a restart) the process asked to accept holds no
    grouping: the id is found among the shop's unanswered messages, and only the shop's."""
    await seed(admin)
    wrapping = (await listed(admin))["items"][0]
    theirs = (await listed(admin, shop=admin.other))["items"][0]["id"]
    getattr(admin.app.ctx, topics._CACHE).clear()  # another process: nothing grouped
    status, body = await accept(admin, wrapping["id"], intent="ask_gift_wrapping",
                                examples=["do you gift wrap orders"])
    assert status == 200 and body["added"] == ["do you gift wrap orders"], body
    good: dict[str, Any] = {"intent": "ask_gift_wrapping", "examples": ["gift wrap please"]}
    assert (await accept(admin, theirs, **good))[0] == 404
    assert (await accept(admin, "0123456789abcdef", **good))[0] == 404


async def test_wrong_shop_unknown_id_bad_intent_and_roles_are_refused(
        admin: Admin) -> None:
    await seed(admin)
    gap = (await listed(admin))["items"][0]["id"]
    theirs = (await listed(admin, shop=admin.other))["items"][0]["id"]
    good: dict[str, Any] = {"intent": "ask_gift_wrapping", "examples": ["gift wrap please"]}
    status, body = await admin.call("POST", f"/gaps/{gap}/accept", shop=admin.other, json=good)
    assert status == 404 and body["detail"]
    assert (await accept(admin, theirs, **good))[0] == 404
    assert (await accept(admin, "0123456789abcdef", **good))[0] == 404
    for intent in ("ask gift wrapping", "/ask_gift", "nlu_fallback", "x" * 65, "wrap-it"):
        status, body = await accept(admin, gap, intent=intent, examples=["gift wrap please"])
        assert status == 422 and body["detail"], intent
    for examples in ([], ["  "], ["x" * 301]):
        assert (await accept(admin, gap, intent="ask_gift", examples=examples))[0] == 422
    assert (await accept(admin, gap, draft="../x", **good))[0] == 422
    for status, body in (await admin.call("GET", f"/gaps?{RANGE}", role="agent"),
                         await accept(admin, gap, role="agent", **good)):
        assert status == 403 and body["detail"]
    assert (await admin.call("GET", "/training/nlu/gaps", role="designer"))[0] == 404


async def test_accepting_needs_a_plan_with_own_models(
        admin: Admin, billed: Admin) -> None:  # noqa: F811  (billed: a fixture imported)
    await seed(admin)
    listing = await listed(billed)  # reading stays open
    status, body = await accept(billed, listing["items"][0]["id"], intent="ask_gift",
                                examples=["gift wrap please"])
    assert status == 402 and body["limit"] == "own_models"
    assert (await admin.call("GET", "/training/nlu/gaps", role="designer"))[0] == 404


async def test_gaps_answer_not_ready_while_the_messages_are_grouped(
        admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gap_routes, "GAPS_WAIT", 0.0)  # grouping always takes longer
    await seed(admin)
    status, body = await admin.call("GET", f"/gaps?{RANGE}", role="designer")
    assert status == 200 and body == {"ready": False, "items": [], "total": 0, "page": 1,
                                      "page_size": 20}
    # The grouping went on; the analytics route waits for it, then the gaps are there.
    status, _ = await admin.call("GET", f"/analytics/unanswered?{RANGE}")
    assert status == 200
    assert (await listed(admin))["total"] == 2


# --- the pieces (no app) --------------------------------------------------------------------

def test_examples_lose_order_numbers_addresses_and_phone_numbers() -> None:
    assert clean("hello! do you deliver internationally (order #51234)") == (
        "hello! do you deliver internationally (order)")
    assert clean("call me on +49 151 2345 6789 about sizes 10 - 12") == (
        "call me on about sizes 10 - 12")
    assert clean("mail a.b@example.com or see https://example.com/x about [blue](color)") == (
        "mail or see about blue (color)")
    assert clean("order 12345") is None and clean("#1002") is None
    assert clean("my card **** **** **** 1111 exp 12/29 cvv 123 was declined") == (
        "my card was declined")
    assert new_intent_name("Do you offer gift wrapping?", "gap") == "offer_gift_wrapping"
    assert new_intent_name("is it?", "gap_1") == "gap_1"


def test_appending_keeps_layout_or_refuses() -> None:
    flow = 'version: "3.1"\nnlu:\n- intent: other\n  examples: |\n    - hi there\n# end\n'
    assert add_examples(flow, "ask_size", ["what size"]) == flow + (
        "- intent: ask_size\n  examples: |\n    - what size\n")
    assert add_intent(None, "ask_size") == 'version: "3.1"\nintents:\n- ask_size\n'
    assert add_intent('version: "3.1"\nintents:\n  - a\nresponses: {}\n', "b") == (
        'version: "3.1"\nintents:\n  - a\n  - b\nresponses: {}\n')
    for text in ('nlu: [{"intent": "a", "examples": "- x"}]\n', "--- \nnlu:\n", "a: [\n"):
        with pytest.raises(CannotAppend):
            add_examples(text, "ask_size", ["what size"])
    with pytest.raises(CannotAppend):
        add_intent("intents: [a, b]\n", "c")
