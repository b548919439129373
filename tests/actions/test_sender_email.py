"""An email sender the provider vouched for (DMARC, or SPF and DKIM aligned) is asked for no
email: the address they wrote from is the order's email until they give another. An order not
under it is said plainly, the address is not tried again for that order, and its failure is
counted as a typed email's would be."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.attempts import LIMITS
from actions.order_status import ActionOrderStatus, ValidateOrderStatusForm
from actions.returns import ValidateReturnForm
from actions.runtime import Runtime
from actions.verification import (
    NOT_UNDER_SENDER,
    STOP_LOCKED,
    STOP_UNPROVEN_SENDER,
    ActionAskEmail,
)
from tests.actions.conftest import DOMAIN, tracker
from tests.actions.rendered import rendered

pytestmark = pytest.mark.asyncio

VOUCHED = {"sender_authenticated": True}
ASKED_FOR_EMAIL = "what email address did you use"


def slot_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def mail(text: str, *, sender: str = "sam@example.com", slots: dict[str, Any] | None = None,
         given: dict[str, Any] | None = None, authenticated: bool = True,
         requested_slot: str | None = None, history: list[dict[str, Any]] | None = None
         ) -> Tracker:
    """The email conversation of `sender` as Rasa sends it to the form's validation; `history`:
    events of earlier turns, before the visitor's latest message."""
    t = tracker(slots, user=sender, channel="email", text=text, given=given,
                metadata={"sender_authenticated": authenticated},
                active_loop="order_status_form" if requested_slot else None,
                requested_slot=requested_slot)
    if history:
        latest = max(i for i, e in enumerate(t.events) if e.get("event") == "user")
        t.events[latest:latest] = history
    return t


async def validate(t: Tracker, form: Any = None) -> tuple[dict[str, Any], str]:
    dispatcher = CollectingDispatcher()
    events = await (form or ValidateOrderStatusForm()).get_validation_events(
        dispatcher, t, DOMAIN)
    slots = slot_events(events)
    return slots, rendered(dispatcher, {**t.slots, **slots})


def refused(number: str) -> list[dict[str, Any]]:
    """The events of a turn whose check of the sender's address for `number` failed, as the
    tracker holds them (Rasa puts a response's name in the bot message's metadata)."""
    return [{"event": "bot", "text": "…", "metadata": {"utter_action": NOT_UNDER_SENDER}},
            {"event": "slot", "name": "order_number", "value": number},
            {"event": "slot", "name": "email", "value": None},
            {"event": "slot", "name": "verification_failures", "value": 1.0}]


async def test_a_vouched_sender_is_not_asked_for_the_email(action_runtime: Runtime) -> None:
    t = mail("Hi, where is my order 1002? Thanks, Sam", given={"order_number": "1002"})
    slots, said = await validate(t)
    assert slots["email"] == "sam@example.com" and slots["verified_order"] == "1002"
    assert ASKED_FOR_EMAIL not in said.lower() and "couldn't find" not in said

    # The form is complete: the status action answers in the same turn.
    dispatcher = CollectingDispatcher()
    done = tracker({"order_number": "1002", **slots}, user="sam@example.com", channel="email",
                   metadata=VOUCHED)
    await ActionOrderStatus().run(dispatcher, done, DOMAIN)
    assert "Order #1002" in rendered(dispatcher) and "delivered" in rendered(dispatcher)


async def test_the_return_form_checks_with_the_senders_address_too(
        action_runtime: Runtime) -> None:
    t = mail("I want to return something from order 1002", given={"order_number": "1002"})
    slots, said = await validate(t, ValidateReturnForm())
    assert slots["email"] == "sam@example.com" and slots["verified_order"] == "1002"
    assert ASKED_FOR_EMAIL not in said.lower()


async def test_an_order_not_under_the_senders_address_is_said_plainly(
        action_runtime: Runtime) -> None:
    # Order 1004 is kim@example.com's; Sam writes from his own address.
    t = mail("where is order 1004?", given={"order_number": "1004"})
    slots, said = await validate(t)
    assert "order #1004" in said and "address you're writing from" in said
    assert "email address the order was placed with" in said
    assert "Backpack" not in said  # nothing about the order itself
    assert slots["email"] is None and slots["verified_order"] is None
    assert slots.get("order_number", "1004") == "1004"  # the visitor only gives the email now
    assert slots["verification_failures"] == 1.0  # a try, as a typed email's would be

    # The form's question does not repeat what was just asked.
    dispatcher = CollectingDispatcher()
    await ActionAskEmail().run(dispatcher, after_refusal("1004"), DOMAIN)
    assert dispatcher.messages == []
    # A turn later (the visitor's answer was no email) the question is asked again.
    later = mail("hmm", slots={"order_number": "1004"}, requested_slot="email",
                 history=refused("1004"))
    await ActionAskEmail().run(dispatcher, later, DOMAIN)
    assert ASKED_FOR_EMAIL in rendered(dispatcher).lower() or "1004" in rendered(dispatcher)


def after_refusal(number: str) -> Tracker:
    """The tracker the form's question sees in the turn the sender's address was refused."""
    t = mail("where is order 1004?", slots={"order_number": number},
             requested_slot="email")
    t.events.extend(refused(number))
    return t


async def test_the_refused_address_is_not_tried_again_for_that_order(
        action_runtime: Runtime) -> None:
    history = refused("1004")
    # The next turn says something that is no email: no check runs with Sam's address again.
    t = mail("hmm not sure", slots={"order_number": "1004", "verification_failures": 1.0},
             given={"email": "hmm not sure"}, requested_slot="email", history=history)
    slots, said = await validate(t)
    assert "verification_failures" not in slots and "couldn't find" not in said
    assert slots["email"] is None and "doesn't look like an email address" in said

    # The email the order was placed with proves it.
    t = mail("kim@example.com", slots={"order_number": "1004", "verification_failures": 1.0},
             given={"email": "kim@example.com"}, requested_slot="email", history=history)
    slots, _ = await validate(t)
    assert slots["verified_order"] == "1004"

    # Another order is tried with the sender's address afresh.
    t = mail("what about 1003?", slots={"order_number": "1004", "verification_failures": 1.0},
             given={"order_number": "1003"}, requested_slot="email", history=history)
    slots, _ = await validate(t)
    assert slots["email"] == "sam@example.com" and slots["verified_order"] == "1003"


async def test_the_senders_failures_count_towards_the_lockout(action_runtime: Runtime) -> None:
    # Five conversations from one vouched address, each about an order not under it: the
    # address is locked as a typed email would be, and then not even its own order is checked.
    orders = ["1001", "1004", "1005", "1001", "1004"]
    assert len(orders) == LIMITS["email"]
    for n, number in enumerate(orders[:-1]):
        slots, said = await validate(mail(f"where is {number}?", sender="sam@example.com",
                                          given={"order_number": number}))
        assert slots["verification_failures"] == 1.0 and "couldn't find" in said, n
    slots, said = await validate(mail("and 1004?", given={"order_number": "1004"}))
    assert slots["flow_stop_reason"] == STOP_LOCKED and "too many unsuccessful" in said
    slots, said = await validate(mail("where is 1002?", given={"order_number": "1002"}))
    assert slots["flow_stop_reason"] == STOP_LOCKED and slots.get("verified_order") is None


async def test_an_unproven_sender_is_still_sent_elsewhere(action_runtime: Runtime) -> None:
    t = mail("where is my order 1002?", given={"order_number": "1002"}, authenticated=False)
    slots, said = await validate(t)
    assert slots["flow_stop_reason"] == STOP_UNPROVEN_SENDER
    assert slots["email"] is None and "chat on our website" in said and "1002" not in said
