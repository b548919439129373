"""A card number the gateway masked is no answer to a form (actions/cards.py; the gateway asks
the visitor not to send one, tests/connectors/test_inbox.py); a goodbye is no answer either,
and a form whose turn offered a person asks nothing more in that turn (actions/escalation.py
offered_this_turn). Trackers as Rasa sends them (tests/actions/test_handoff.py
`conversation`)."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.answers import order_number_in
from actions.cards import MASKED
from actions.order_status import ValidateOrderStatusForm
from actions.returns import ActionAskReturnReason, ValidateReturnForm
from actions.runtime import Runtime
from actions.smalltalk import ActionCancelFlow
from actions.verification import ActionAskEmail, ActionAskOrderNumber
from core import cards
from tests.actions.conftest import DOMAIN
from tests.actions.test_handoff import conversation, events_of, knowledge_turn, ran, slot
from tests.actions.test_visitor_meant import asking

CARD = "4111 1111 1111 1111"
MASKED_TEXT = cards.mask(f"my card is {CARD}, can you refund to it?")


def test_the_mask_the_actions_know_is_the_gateways() -> None:
    assert "4111" not in MASKED_TEXT
    assert [m.group(1) for m in MASKED.finditer(MASKED_TEXT)] == ["1111"]


def test_a_masked_cards_last_digits_are_no_order_number() -> None:
    assert order_number_in(MASKED_TEXT) is None
    assert order_number_in(cards.mask(f"card {CARD}, order #1002")) == "1002"
    assert order_number_in("order 1111 please") == "1111"


async def validate(form: Any, tracker: Any) -> tuple[dict[str, Any], list[str]]:
    dispatcher = CollectingDispatcher()
    events = await form.run(dispatcher, tracker, DOMAIN)
    return events_of(events), [str(m.get("response")) for m in dispatcher.messages]


@pytest.mark.asyncio
async def test_a_card_in_the_request_starts_the_return_with_no_number(
        action_runtime: Runtime) -> None:
    # A model trained before the order number pattern left masked digits out tags "1111":
    # the form does not take it. The warning is the gateway's (connectors/inbox.py).
    t = conversation(("request_return", MASKED_TEXT, [slot("order_number", "1111")]))
    slots, said = await validate(ValidateReturnForm(), t)
    assert slots.get("order_number") is None
    assert said == []


@pytest.mark.asyncio
async def test_a_card_while_the_number_is_asked_keeps_the_real_number(
        action_runtime: Runtime) -> None:
    text = cards.mask(f"it's order 1002, paid with {CARD}")
    t = conversation(("check_order_status", "where is my order",
                      asking("order_status_form", "order_number")),
                     ("inform", text, [slot("order_number", "1002")]),
                     active_loop="order_status_form")
    slots, said = await validate(ValidateOrderStatusForm(), t)
    assert slots["order_number"] == "1002"
    assert said == []


@pytest.mark.parametrize("text", ["thanks, bye", "bye", "ok goodbye", "see you later"])
@pytest.mark.asyncio
async def test_a_goodbye_is_not_taken_for_the_email(text: str) -> None:
    t = conversation(("request_return", "I want to return my denim jacket",
                      asking("return_form", "email")),
                     ("goodbye", text, []), slots={"order_number": "1002"},
                     active_loop="return_form")
    form = ValidateReturnForm()
    dispatcher = CollectingDispatcher()
    assert await form.extract_email(dispatcher, t, DOMAIN) == {}
    assert await form.extract_return_reason(dispatcher, t, DOMAIN) == {}
    assert dispatcher.messages == []  # no "that doesn't look like an email address"


@pytest.mark.parametrize(("intent", "text"), [
    ("goodbye", "thanks, bye"), ("goodbye", "thank you, goodbye"), ("goodbye", "bye for now"),
    # A thanks that puts it off for later leaves the flow for now, as a goodbye does (its
    # rule ends the form); taken as the reason before.
    ("goodbye", "ok thanks I'll check later"), ("goodbye", "let me find it and come back"),
    ("thank", "thanks, will look later")])
@pytest.mark.asyncio
async def test_a_goodbye_is_not_a_return_reason(intent: str, text: str) -> None:
    t = conversation(("request_return", "I want to return my denim jacket",
                      asking("return_form", "return_reason")),
                     (intent, text, []), active_loop="return_form")
    assert await ValidateReturnForm().extract_return_reason(
        CollectingDispatcher(), t, DOMAIN) == {}


ASKS = [(ActionAskOrderNumber(), "utter_ask_order_number"),
        (ActionAskEmail(), "utter_ask_email"),
        (ActionAskReturnReason(), "utter_ask_return_reason")]


@pytest.mark.parametrize(("ask", "response"), ASKS)
@pytest.mark.asyncio
async def test_after_an_offer_of_a_person_the_form_asks_nothing_more(
        ask: Any, response: str) -> None:
    # "asdfghjkl" while the form waits: the knowledge route said it does not know and offered
    # a person. One question in the reply: the offer.
    offered = conversation(("check_order_status", "where is my order",
                            asking("order_status_form", "email")),
                           knowledge_turn("out_of_scope", "asdfghjkl", 1.0),
                           active_loop="order_status_form")
    dispatcher = CollectingDispatcher()
    assert await ask.run(dispatcher, offered, DOMAIN) == []
    assert dispatcher.messages == []
    # "No, thanks" to the offer (action_handoff_declined): the form's question comes back.
    declined = conversation(("check_order_status", "where is my order",
                             asking("order_status_form", "email")),
                            knowledge_turn("out_of_scope", "asdfghjkl", 1.0),
                            ("deny", "no thanks", [ran("action_handoff_declined"),
                                                   slot("handoff_offered", False)]),
                            active_loop="order_status_form")
    await ask.run(dispatcher, declined, DOMAIN)
    assert [m["response"] for m in dispatcher.messages] == [response]
    # An offer made turns ago that the visitor let pass does not silence the question.
    earlier = conversation(knowledge_turn("out_of_scope", "asdfghjkl", 1.0),
                           ("check_order_status", "where is my order", []))
    again = CollectingDispatcher()
    await ask.run(again, earlier, DOMAIN)
    assert [m["response"] for m in again.messages] == [response]


@pytest.mark.asyncio
async def test_no_thanks_to_the_offer_is_not_taken_for_the_email() -> None:
    # action_handoff_declined took the "no thanks" (the offer is off) and the form runs again
    # in the same turn: it must not answer "That doesn't look like an email address".
    t = conversation(("check_order_status", "where is my order",
                      asking("order_status_form", "email")),
                     knowledge_turn("out_of_scope", "asdfghjkl", 1.0),
                     ("deny", "no thanks", [ran("action_handoff_declined"),
                                            slot("handoff_offered", False)]),
                     slots={"order_number": "1001"}, active_loop="order_status_form")
    dispatcher = CollectingDispatcher()
    assert await ValidateOrderStatusForm().extract_email(dispatcher, t, DOMAIN) == {}
    assert dispatcher.messages == []


@pytest.mark.parametrize(("intent", "text", "response"),
                         [("goodbye", "thanks, bye", "utter_goodbye"),
                          ("stop", "stop", "utter_cancelled")])
@pytest.mark.asyncio
async def test_a_goodbye_ends_the_flow_with_a_goodbye(intent: str, text: str,
                                                      response: str) -> None:
    t = conversation(("request_return", "I want to return my denim jacket",
                      asking("return_form", "email")),
                     (intent, text, [ran("action_deactivate_loop")]),
                     slots={"order_number": "1002"})
    dispatcher = CollectingDispatcher()
    slots = events_of(await ActionCancelFlow().run(dispatcher, t, DOMAIN))
    assert [m["response"] for m in dispatcher.messages] == [response]
    assert slots["order_number"] is None and slots["requested_slot"] is None
