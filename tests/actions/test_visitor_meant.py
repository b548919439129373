"""What the visitor meant wins over what a form expected (the walkthrough of 2026-12-01):
leaving one flow for the other with an order number in the message, a yes with a story to the
person just offered, a second order under another email, a rating in words."""

from __future__ import annotations

import time
from typing import Any

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.attempts import LIMITS
from actions.knowledge import ActionAnswerFromKnowledge
from actions.order_status import ActionOrderStatus, ValidateOrderStatusForm
from actions.returns import ActionSubmitReturn, ValidateReturnForm
from actions.runtime import Runtime
from actions.verification import (
    STOP_NOT_ELIGIBLE,
    STOP_PERSON_WANTED,
    VERIFIED_AT,
    ActionAskEmail,
)
from devtools.demo_shop import DEMO_TENANT_ID
from tenants.texts import domain_texts
from tests.actions.conftest import DOMAIN
from tests.actions.rendered import rendered
from tests.actions.test_handoff import conversation, events_of, followed_by, ran, slot

pytestmark = pytest.mark.asyncio


def asking(form: str, requested: str) -> list[dict[str, Any]]:
    """The bot's events of a turn that left `form` asking for `requested`."""
    return [ran(form), {"event": "active_loop", "name": form}, slot("requested_slot", requested)]


def rejected(events: list[dict[str, Any]], form: str) -> bool:
    return any(e.get("event") == "action_execution_rejected" and e.get("name") == form
               for e in events)


def proved(number: str, email: str) -> list[dict[str, Any]]:
    """The bot's events of a turn that verified `number` with `email` and answered."""
    return [slot("order_number", number), slot("email", email), slot("verified_order", number),
            slot(VERIFIED_AT, time.time()), ran("action_order_status"),
            slot("order_number", None)]


# -- leaving the return form for the order status --------------------------------------------

async def test_where_is_my_order_with_its_number_leaves_the_return_form() -> None:
    # NLU read the switch and from_entity filled the number: the form must not take it.
    t = conversation(("request_return", "I want to return something",
                      asking("return_form", "order_number")),
                     ("check_order_status",
                      "actually forget the return, where is my order #1001?",
                      [slot("order_number", "1001")]),
                     active_loop="return_form")
    dispatcher = CollectingDispatcher()
    events = await ValidateReturnForm().run(dispatcher, t, DOMAIN)
    assert rejected(events, "return_form") and dispatcher.messages == []
    assert "order_number" not in events_of(events)


async def test_the_same_while_the_return_form_asks_for_the_email() -> None:
    t = conversation(("request_return", "I want to return something",
                      asking("return_form", "order_number")),
                     ("inform", "1001", [slot("order_number", "1001"),
                                         *asking("return_form", "email")]),
                     ("check_order_status",
                      "hmm actually can you just tell me where order 1001 is", []),
                     active_loop="return_form")
    events = await ValidateReturnForm().run(CollectingDispatcher(), t, DOMAIN)
    assert rejected(events, "return_form")


async def test_an_order_number_that_nlu_took_for_a_status_request_still_answers() -> None:
    # "order 1001" read as check_order_status is the answer: it has no words of its own.
    t = conversation(("request_return", "I want to return something",
                      asking("return_form", "order_number")),
                     ("check_order_status", "order 1001", [slot("order_number", "1001")]),
                     active_loop="return_form")
    events = await ValidateReturnForm().run(CollectingDispatcher(), t, DOMAIN)
    assert not rejected(events, "return_form")
    assert events_of(events)["order_number"] == "1001"


async def test_a_return_with_its_number_leaves_the_order_status_form() -> None:
    t = conversation(("check_order_status", "where is my order",
                      asking("order_status_form", "order_number")),
                     ("request_return", "actually I want to return order 1002",
                      [slot("order_number", "1002")]),
                     active_loop="order_status_form")
    events = await ValidateOrderStatusForm().run(CollectingDispatcher(), t, DOMAIN)
    assert rejected(events, "order_status_form")


# -- a second order under another email ------------------------------------------------------

async def locked(rt: Runtime, number: str, email: str) -> bool:
    """Whether failed tries (in Redis or the table) lock checks of this pair."""
    check = rt.attempts.check(DEMO_TENANT_ID, email=email, order_number=number, client=None)
    return await rt.attempts.locked(check) is not None


def second_order(user: str, text: str, number: str,
                 given: dict[str, Any] | None = None) -> Any:
    """#1001 verified with alex@example.com, then `text` asks about `number`; the order status
    form starts with what NLU took from it (as Rasa validates the prefilled slots)."""
    return conversation(
        ("check_order_status", "where is order 1001, alex@example.com",
         [ran("order_status_form"), *proved("1001", "alex@example.com")]),
        ("check_order_status", text, [slot("order_number", number),
                                      *(slot(n, v) for n, v in (given or {}).items()),
                                      slot("email", "alex@example.com")]),
        user=user, channel="rest")


async def test_another_order_under_another_email_asks_for_it_and_counts_nothing(
        action_runtime: Runtime) -> None:
    for n in range(LIMITS["email"] + 1):  # never locked, however often it is asked
        t = second_order(f"household-{n}", "and where is order 1004?", "1004")
        dispatcher = CollectingDispatcher()
        events = await ValidateOrderStatusForm().get_validation_events(dispatcher, t, DOMAIN)
        slots = events_of(events)
        assert slots["email"] is None and slots["verified_order"] is None
        assert "order_number" not in slots or slots["order_number"] == "1004"
        assert "verification_failures" not in slots and "flow_stop_reason" not in slots
        assert dispatcher.messages == []  # nothing about either order, no "attempt 2 of 3"
    assert not await locked(action_runtime, "1004", "alex@example.com")
    # The form asks which email goes with #1004 ...
    t = second_order("household-0", "and where is order 1004?", "1004")
    t.slots.update(email=None, verified_order=None)
    dispatcher = CollectingDispatcher()
    await ActionAskEmail().run(dispatcher, t, DOMAIN)
    assert rendered(dispatcher, t.slots) == "Which email address did you use for order #1004?"
    # ... and kim's email proves it.
    t = conversation(("check_order_status", "and where is order 1004?",
                      [slot("order_number", "1004"), slot("email", None),
                       *asking("order_status_form", "email")]),
                     ("inform", "kim@example.com", [slot("email", "kim@example.com")]),
                     slots={"order_number": "1004"}, active_loop="order_status_form")
    events = await ValidateOrderStatusForm().get_validation_events(CollectingDispatcher(), t,
                                                                  DOMAIN)
    assert events_of(events)["verified_order"] == "1004"


async def test_another_order_under_the_same_email_needs_nothing_more(
        action_runtime: Runtime) -> None:
    t = conversation(
        ("check_order_status", "where's order 1002? email sam@example.com",
         [ran("order_status_form"), *proved("1002", "sam@example.com")]),
        ("check_order_status", "and order 1003?", [slot("order_number", "1003"),
                                                    slot("email", "sam@example.com")]))
    events = await ValidateOrderStatusForm().get_validation_events(CollectingDispatcher(), t,
                                                                  DOMAIN)
    assert events_of(events)["verified_order"] == "1003"


async def test_an_email_typed_for_the_new_order_is_a_try(action_runtime: Runtime) -> None:
    for n in range(LIMITS["email"]):
        t = second_order(f"typed-{n}", "and order 1004, alex@example.com", "1004")
        dispatcher = CollectingDispatcher()
        events = await ValidateOrderStatusForm().get_validation_events(dispatcher, t, DOMAIN)
        assert events_of(events)["verification_failures"] == 1.0
    assert [m.get("response") for m in dispatcher.messages] == ["utter_verification_locked"]
    assert await locked(action_runtime, "1004", "alex@example.com")


async def test_the_first_question_for_the_email_is_the_usual_one() -> None:
    t = conversation(("check_order_status", "where is my order",
                      asking("order_status_form", "order_number")),
                     ("inform", "1002", [slot("order_number", "1002")]),
                     active_loop="order_status_form")
    dispatcher = CollectingDispatcher()
    await ActionAskEmail().run(dispatcher, t, DOMAIN)
    assert [m.get("response") for m in dispatcher.messages] == ["utter_ask_email"]


# -- a yes with a story to the person the bot just offered ------------------------------------

def refused(*later: Any) -> Any:
    """#1003's return refused (window closed, a person offered), then `later` turns."""
    return conversation(
        ("request_return", "i want to return order 1003",
         [ran("return_form"), slot("order_number", "1003"), *asking("return_form", "email")]),
        ("inform", "sam@example.com",
         [slot("email", "sam@example.com"), slot("verified_order", "1003"),
          slot(VERIFIED_AT, time.time()), slot("flow_stop_reason", STOP_NOT_ELIGIBLE),
          slot("handoff_offered", True), slot("requested_slot", None),
          {"event": "active_loop", "name": None}, ran("action_submit_return"),
          slot("flow_stop_reason", None), slot("order_number", None)]),
        *later)


async def test_the_refusal_asks_whether_to_bring_in_a_person() -> None:
    [variant] = domain_texts().defaults("utter_return_window_closed")
    assert variant["text"].endswith("Would you like me to pass you to them?")
    assert [b["payload"] for b in variant["buttons"]] == ["/human_handoff", "/deny"]


async def test_yes_with_what_broke_brings_in_the_person_not_the_refusal_again(
        action_runtime: Runtime) -> None:
    t = refused(("request_return", "yes pls, the coat's zipper broke", []))
    dispatcher = CollectingDispatcher()
    events = await ValidateReturnForm().get_validation_events(dispatcher, t, DOMAIN)
    assert events_of(events) == {"flow_stop_reason": STOP_PERSON_WANTED}
    assert dispatcher.messages == []  # no second refusal
    t.slots["flow_stop_reason"] = STOP_PERSON_WANTED
    dispatcher = CollectingDispatcher()
    result = await ActionSubmitReturn().run(dispatcher, t, DOMAIN)
    assert followed_by(result) == "action_handoff" and dispatcher.messages == []
    assert events_of(result)["flow_stop_reason"] is None
    # The order status flow ends the same way.
    result = await ActionOrderStatus().run(CollectingDispatcher(), t, DOMAIN)
    assert followed_by(result) == "action_handoff"


async def test_the_knowledge_route_hands_over_a_yes_with_a_question() -> None:
    t = refused(("ask_question", "yes please, can they fix a zipper?", []))
    result = await ActionAnswerFromKnowledge().run(CollectingDispatcher(), t, DOMAIN)
    assert followed_by(result) == "action_handoff"


async def test_an_offer_let_pass_is_not_accepted_later(action_runtime: Runtime) -> None:
    # A turn about something else came between: "yes, …" now is about that.
    t = refused(("thank", "ok thanks", [ran("utter_you_are_welcome")]),
                ("request_return", "yes I want to return the scarf from 1002",
                 [slot("order_number", "1002")]))
    events = await ValidateReturnForm().get_validation_events(CollectingDispatcher(), t,
                                                             DOMAIN)
    assert events_of(events).get("flow_stop_reason") != STOP_PERSON_WANTED


async def test_another_return_after_a_refusal_asks_which_order() -> None:
    # "I want to return something else" is not #1003 again (and its refusal word for word).
    t = refused(("request_return", "ok then I want to return something else", []))
    extracted = await ValidateReturnForm().extract_order_number(CollectingDispatcher(), t,
                                                                DOMAIN)
    assert extracted == {}
    # Right after a status answer, "return it" still means that order.
    t = conversation(("check_order_status", "where's order 1002? email sam@example.com",
                      [ran("order_status_form"), *proved("1002", "sam@example.com")]),
                     ("request_return", "I want to return it", []))
    extracted = await ValidateReturnForm().extract_order_number(CollectingDispatcher(), t,
                                                                DOMAIN)
    assert extracted == {"order_number": "1002"}
