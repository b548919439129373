"""A card number typed into the chat, through the real gateway, Rasa and actions: the gateway
masks it (core/cards.py), its last four digits fill no slot (data/nlu/patterns.yml, the CRF in
bot/entities.py, the forms in actions/), and the visitor is asked once, beside the answer to
what they asked, not to send card numbers (connectors/inbox.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from core.sender_ids import sender_id
from devtools.demo_shop import DEMO_TENANT_ID
from tests.integration.conftest import Visitor
from tests.integration.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.one_shape]

CARD = "4111 1111 1111 1111"
WARNING = "hidden the card number"


def tracker(stack: Stack, visitor: Visitor) -> dict[str, Any]:
    response = httpx.get(
        f"{stack.rasa}/conversations/{sender_id(DEMO_TENANT_ID, 'rest', visitor.sender)}/tracker",
        headers=stack.rasa_headers(), timeout=30)
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def filled(stack: Stack, visitor: Visitor) -> list[Any]:
    """Every value any slot was ever set to in the conversation."""
    return [e.get("value") for e in tracker(stack, visitor)["events"] if e["event"] == "slot"]


def test_a_return_with_the_card_paid_with_asks_for_the_order_number(
        stack: Stack, visitor: Visitor) -> None:
    reply = visitor.say(f"I'd like to return my denim jacket, I paid with card {CARD}")
    assert reply.count(WARNING) == 1
    # What they asked goes on: the return form asks for the order number, not the email.
    assert "order number" in reply and "email address" not in reply
    assert reply.index(WARNING) < reply.index("order number")
    assert "1111" not in filled(stack, visitor)
    state = tracker(stack, visitor)
    assert state["slots"]["order_number"] is None
    assert state["slots"]["requested_slot"] == "order_number"
    # The real order number typed next is the answer.
    assert "email address" in visitor.say("it's 1002")
    assert tracker(stack, visitor)["slots"]["order_number"] == "1002"


def test_a_refund_to_a_card_is_no_order_number(stack: Stack, visitor: Visitor) -> None:
    reply = visitor.say(f"my card is {CARD}, can you refund to it?")
    assert reply.count(WARNING) == 1 and "email address" not in reply
    assert "1111" not in filled(stack, visitor)


def test_a_card_beside_an_order_number_keeps_the_order_number(
        stack: Stack, visitor: Visitor) -> None:
    reply = visitor.say(f"paid with {CARD}, where is my order 1001?")
    assert reply.count(WARNING) == 1 and "email address" in reply
    assert tracker(stack, visitor)["slots"]["order_number"] == "1001"
    assert "1111" not in filled(stack, visitor)
    answer = visitor.say("alex@example.com")
    assert "UPS" in answer and WARNING not in answer  # once: only where a card was sent


def test_a_card_alone_starts_no_order_lookup(stack: Stack, visitor: Visitor) -> None:
    reply = visitor.say(f"my card number is {CARD}")
    assert reply.count(WARNING) == 1
    state = tracker(stack, visitor)
    assert state["active_loop"].get("name") is None
    assert "1111" not in filled(stack, visitor)


# Turns a rule's template answers, a form that answers nothing of them, or an action without
# a warning of its own: a card in any of them is warned about once, before the turn's own
# reply (the gateway's, connectors/inbox.py, whatever in Rasa answers). None: whatever NLU
# makes of the masked digits ("thanks, my card ..." may read as an answer), some reply
# besides the warning.
ANY_TURN = [
    ([], f"thanks so much! {CARD}", None),
    ([], f"ok bye, paid with {CARD}", None),
    ([], f"are you a bot? my card is {CARD}", "virtual assistant"),
    (["where is my order?", "1001"], f"hello again {CARD}", None),
    (["I want to return my denim jacket", "1002"], f"thanks, bye. card was {CARD}", None),
    ([], f"I want to talk to a person, my card is {CARD}", "from our team"),
]


@pytest.mark.parametrize(("before", "message", "answer"), ANY_TURN)
def test_every_turn_with_a_card_is_warned_once_whatever_answers_it(
        stack: Stack, visitor: Visitor, before: list[str], message: str,
        answer: str | None) -> None:
    for earlier in before:
        assert WARNING not in visitor.say(earlier)
    reply = visitor.say(message)
    assert reply.count(WARNING) == 1, reply
    others = [r.get("text", "") for r in visitor.replies if WARNING not in r.get("text", "")]
    assert others, reply  # the turn's own answer too
    if answer is not None:
        assert reply.index(WARNING) < reply.index(answer), reply
    assert "1111" not in filled(stack, visitor)
