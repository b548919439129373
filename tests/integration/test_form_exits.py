"""Leaving a form, or getting lost in one, through the real gateway, Rasa and actions: a
goodbye ends the form with a goodbye (never "that doesn't look like an email address"), a
thanks is acknowledged and the question stands, and a turn the bot could not make sense of
gets one reply: the offer of a person, not the offer and the form's question stacked."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Visitor
from tests.integration.stack import Stack
from tests.integration.test_card_numbers import tracker

pytestmark = [pytest.mark.integration, pytest.mark.one_shape]

INVALID = "doesn't look like"


def asking(stack: Stack, visitor: Visitor) -> tuple[Any, Any]:
    state = tracker(stack, visitor)
    return state["active_loop"].get("name"), state["slots"]["requested_slot"]


@pytest.mark.parametrize("bye", ["thanks, bye", "bye"])
def test_a_goodbye_ends_the_form_with_a_goodbye(stack: Stack, visitor: Visitor,
                                                bye: str) -> None:
    visitor.say("I want to return my denim jacket")
    assert "email address" in visitor.say("1002")
    reply = visitor.say(bye)
    assert INVALID not in reply and "email address" not in reply
    assert "bye" in reply.lower() or "take care" in reply.lower()
    assert asking(stack, visitor) == (None, None)
    assert tracker(stack, visitor)["slots"]["order_number"] is None
    # Coming back later starts afresh.
    assert "order number" in visitor.say("where is my order?")


@pytest.mark.parametrize(("flow", "later"), [
    (["where is my order?", "1001"], "ok thanks I'll check later"),
    (["where is my order?", "1001"], "thanks, will look later"),
    (["I want to return my denim jacket", "1002", "sam@example.com"],
     "let me find it and come back"),
])
def test_a_thanks_that_puts_it_off_ends_the_form_with_a_goodbye(
        stack: Stack, visitor: Visitor, flow: list[str], later: str) -> None:
    # Not "You're welcome!" and the question again: the visitor leaves the flow for now.
    for message in flow:
        visitor.say(message)
    assert asking(stack, visitor)[0] is not None
    reply = visitor.say(later)
    assert INVALID not in reply and "?" not in reply, reply
    assert "bye" in reply.lower() or "take care" in reply.lower(), reply
    assert asking(stack, visitor) == (None, None)
    assert tracker(stack, visitor)["slots"]["order_number"] is None


def test_a_thanks_is_acknowledged_and_the_question_stands(stack: Stack,
                                                          visitor: Visitor) -> None:
    visitor.say("where is my order?")
    visitor.say("1001")
    reply = visitor.say("thanks")
    assert "welcome" in reply.lower() and "anything else" not in reply.lower()
    assert "email address" in reply and INVALID not in reply
    assert asking(stack, visitor) == ("order_status_form", "email")
    assert "UPS" in visitor.say("alex@example.com")


def test_gibberish_in_a_form_gets_the_offer_alone_and_no_thanks_brings_the_question_back(
        stack: Stack, visitor: Visitor) -> None:
    visitor.say("where is my order?")
    assert "email address" in visitor.say("1001")
    offer = visitor.say("asdfghjkl")
    assert "don't know" in offer and "email address" not in offer
    assert {b["payload"] for b in visitor.buttons()} >= {"/affirm", "/deny"}
    assert asking(stack, visitor) == ("order_status_form", "email")  # the form still waits
    again = visitor.say("no thanks")
    assert INVALID not in again and "email address" in again
    assert "UPS" in visitor.say("alex@example.com")


def test_after_an_unanswered_question_the_answer_typed_next_is_taken(
        stack: Stack, visitor: Visitor) -> None:
    visitor.say("I want to return my denim jacket")
    visitor.say("1002")
    offer = visitor.say("do you sell replacement straps for the smartwatch?")
    assert "don't know" in offer and "email address" not in offer
    assert "reason" in visitor.say("sam@example.com")


def test_a_hello_inside_a_form_is_greeted_briefly_and_the_question_stands(
        stack: Stack, visitor: Visitor) -> None:
    visitor.say("where is my order?")
    assert "email address" in visitor.say("1001")
    reply = visitor.say("hi")
    # Not the shop's greeting ("... How can I help?") asked as if nothing ran: one question.
    assert reply.count("?") == 1, reply
    assert reply.lower().startswith("hi") and "email address" in reply
    assert asking(stack, visitor) == ("order_status_form", "email")
