"""What the bot made of each turn, end to end: a visitor on REST (gateway → Rasa on our channel
→ actions) asks for an order, asks a knowledge question and asks for a person; the owner then
finds the conversation over the admin API and reads its transcript with intents, outcomes,
actions and sources, on both storage shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.sender_ids import sender_id
from devtools.demo_shop import DEMO_TENANT_ID
from tests.fakes.anthropic_server import AnthropicFake, grounded_responder
from tests.integration.conftest import Visitor
from tests.integration.stack import Stack
from tests.integration.test_channels import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def owner(stack: Stack) -> Iterator[httpx.Client]:
    """The admin API with the demo shop's owner key (DEMO_OWNER_KEY)."""
    with stack.admin_client("owner") as client:
        yield client


def test_the_owner_reads_what_the_bot_made_of_each_turn(
        stack: Stack, owner: httpx.Client, anthropic_api: AnthropicFake) -> None:
    anthropic_api.responder = grounded_responder
    visitor = Visitor(stack)
    visitor.say("where is my order?")
    visitor.say("1001")
    assert "1001" in visitor.say("alex@example.com")
    assert visitor.say("do you ship to canada?").strip()
    handoff = visitor.say("I want to talk to a human")

    # Newest first: ours is the latest REST conversation that asked about Canada. The gateway
    # stores its copy of the bot's reply just after the answer went back (connectors/inbox.py
    # `_keep_copy`), so the list may show the visitor's message last for a moment.
    def listed() -> dict[str, Any] | None:
        page = owner.get("/conversations", params={"channel": "rest", "q": "canada"}).json()
        latest = page["items"][0] if page["items"] else None
        return page if latest and latest["last_message"]["text"] == handoff else None

    page = eventually(listed, timeout=10, what="the bot's handoff reply as the last message")
    conversation = page["items"][0]
    assert (conversation["state"], conversation["outcome"]) == ("queued", "handoff")
    assert conversation["last_message"]["text"] == handoff
    assert visitor.sender not in str(page)  # the id and the visitor are masked
    assert conversation["id"] in {c["id"] for c in owner.get(
        "/conversations", params={"state": "queued", "outcome": "handoff"}).json()["items"]}

    transcript = owner.get(f"/conversations/{conversation['id']}").json()
    turns = transcript["turns"]
    said = [(t["visitor"]["text"], t["intent"], t["outcome"]) for t in turns]
    assert said == [
        ("where is my order?", "check_order_status", "flow"),
        ("1001", said[1][1], "flow"),
        ("alex@example.com", said[2][1], "flow"),
        ("do you ship to canada?", "ask_question", "knowledge"),
        ("I want to talk to a human", "human_handoff", "handoff"),
    ]
    assert all(0 < t["confidence"] <= 1 for t in turns)
    assert "order_status_form" in turns[0]["actions"]
    assert "action_order_status" in turns[2]["actions"]
    assert any("1001" in (m["text"] or "") for m in turns[2]["bot"])
    knowledge = turns[3]
    assert knowledge["actions"] == ["action_answer_from_knowledge"]
    assert knowledge["knowledge_mode"] in ("llm", "extractive")
    assert [s["document"] for s in knowledge["sources"]] == ["shipping.md"]
    assert turns[4]["actions"] == ["action_handoff"]
    assert [m["text"] for m in turns[4]["bot"]] == [handoff]
    assert transcript["state"] == "queued"


def test_a_card_number_a_visitor_types_is_kept_by_nobody(stack: Stack,
                                                         owner: httpx.Client) -> None:
    """The transcript, the search and Rasa's tracker hold only its last four digits
    (core/cards.py); the visitor still gets an answer."""
    visitor = Visitor(stack)
    assert visitor.say("my card 4111 1111 1111 1111 was charged twice, why?").strip()
    page = eventually(lambda: owner.get("/conversations", params={
        "channel": "rest", "q": "charged twice"}).json()["items"] or None, timeout=10,
        what="the conversation")
    transcript = owner.get(f"/conversations/{page[0]['id']}").json()
    said = transcript["turns"][0]["visitor"]["text"]
    assert said == "my card **** **** **** 1111 was charged twice, why?"
    assert owner.get("/conversations", params={"q": "4111"}).json()["items"] == []
    events = httpx.get(
        f"{stack.rasa}/conversations/{sender_id(DEMO_TENANT_ID, 'rest', visitor.sender)}"
        "/tracker", headers=stack.rasa_headers(), timeout=30).json()["events"]
    texts = [e.get("text") or "" for e in events if e["event"] == "user"]
    assert texts == ["my card **** **** **** 1111 was charged twice, why?"]
