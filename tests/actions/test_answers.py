"""What counts as an answer to a form's question (actions/answers.py)."""

from __future__ import annotations

import pytest

from actions.answers import (
    Turn,
    choose_items,
    email_in,
    leads_elsewhere,
    opens_with_yes,
    order_number_in,
    question_like,
    reason_in,
    switches_flow,
)
from actions.commerce.base import LineItem

ORDER_1002 = (LineItem("1", "Denim jacket"), LineItem("2", "Scarf"))
JACKET, SCARF, BOTH = ["Denim jacket"], ["Scarf"], ["Denim jacket", "Scarf"]


@pytest.mark.parametrize(
    ("said", "meant"),
    [
        ("Denim jacket", JACKET),  # the button's title, typed
        ("denim jacket", JACKET),
        ("DENIM JACKET.", JACKET),
        ("the Denim Jacket", JACKET),
        ("the jacket", JACKET),
        ("denim jaket", JACKET),
        ("I want to return the denim jacket", JACKET),
        ("the first one", JACKET),
        ("1st one", JACKET),
        ("1", JACKET),
        ("the jacket, not the scarf", JACKET),
        ("everything except the scarf", JACKET),
        ("scarves", SCARF),
        ("the scarff", SCARF),
        ("the second one", SCARF),
        ("the last one", SCARF),
        ("just the scarf thanks", SCARF),
        ("both", BOTH),
        ("Both!", BOTH),
        ("All of them", BOTH),
        ("all of it", BOTH),
        ("the jacket and the scarf", BOTH),
        ("the whole order", BOTH),
    ],
)
def test_items_are_taken_as_the_order_lists_them(said: str, meant: list[str]) -> None:
    chosen, only_the_choice = choose_items(said, ORDER_1002)
    assert [i.name for i in chosen] == meant
    assert only_the_choice


@pytest.mark.parametrize("said", ["the red shoes", "3", "how long does shipping take?", ""])
def test_nothing_in_the_order(said: str) -> None:
    assert choose_items(said, ORDER_1002) == ([], False)


def test_a_question_that_names_an_item_is_not_only_a_choice() -> None:
    chosen, only_the_choice = choose_items("does the denim jacket come in other sizes?",
                                           ORDER_1002)
    assert [i.name for i in chosen] == JACKET and not only_the_choice


def test_it_means_the_only_item() -> None:
    chosen, _ = choose_items("I want to return it", ORDER_1002[:1])
    assert [i.name for i in chosen] == JACKET


@pytest.mark.parametrize(
    ("text", "number"),
    [("1001", "1001"), ("#1001", "1001"), ("sorry, it's 1001", "1001"), ("order#1001", "1001"),
     ("no.1001", "1001"), ("1001.", "1001"), ("my bad, the right one is #1002!", "1002"),
     ("123", None), ("sam1001@example.com", None)],
)
def test_order_numbers_in_text(text: str, number: str | None) -> None:
    assert order_number_in(text) == number


@pytest.mark.parametrize(
    ("text", "email"),
    [("sam@example.com.", "sam@example.com"), ("my email is <Sam@Example.com>.", "Sam@Example.com"),
     ("sam @ example.com", "sam@example.com"), ("sam at example dot com", None)],
)
def test_emails_in_text(text: str, email: str | None) -> None:
    assert email_in(text) == email


@pytest.mark.parametrize(
    ("text", "question"),
    [("how long does shipping take", True), ("right, do you ship to canada?!!", True),
     ("ok so is return shipping free", True), ("are you open on sunday", True),
     ("paypal ok? pls", True),
     ("does not fit", False), ("is too small", False), ("when I tried it on it ripped", False),
     ("It arrived damaged", False), ("Denim jacket", False), ("denim jacket?", True)],
)
def test_question_like(text: str, question: bool) -> None:
    assert question_like(text) is question


@pytest.mark.parametrize(
    ("text", "intent", "reason"),
    [("too small", "nlu_fallback", "too small"),
     ("It doesn't fit", "ask_question", "It doesn't fit"),
     ("I don't want it anymore", "stop", "I don't want it anymore"),
     ("I changed my mind", "stop", "I changed my mind"),
     ("no reason really", "deny", "no reason really"),
     ("cancel", "stop", None),
     ("never mind, forget it", "stop", None),
     ("how long does the refund take?", "ask_question", None),
     ("how long does the refund take", "request_return", None),
     ("paypal ok?", "ask_question", None),
     ("paypal ok? thanks", "thank", None),
     ("too small?", "inform", "too small?"),
     ("Damaged or faulty", "request_return", "Damaged or faulty"),
     ("thanks", "thank", None),
     ("thank you so much!", "thank", None),
     ("doesnt fit thx", "thank", "doesnt fit thx"),
     ("I want to talk to a person", "human_handoff", None),
     ("the zip is borken", "check_order_status", "the zip is borken"),
     ("wait, where is my other order?", "check_order_status", None),
     ("the seam ripped", "human_handoff", "the seam ripped"),
     ("/human_handoff", "human_handoff", None)],
)
def test_reasons_are_typed_freely(text: str, intent: str, reason: str | None) -> None:
    assert reason_in(Turn(text, intent, 0.9)) == reason


@pytest.mark.parametrize(
    ("text", "intent", "form", "elsewhere"),
    [("how long does shipping take?", "ask_question", "return_form", True),
     ("paypal ok", "ask_question", "order_status_form", True),
     ("I don't have it with me", "nlu_fallback", "order_status_form", True),
     ("I don't have my order number", "inform", "order_status_form", False),
     ("cancel", "stop", "order_status_form", True),
     ("I want to return something", "request_return", "return_form", False),
     ("how do I return something?", "request_return", "return_form", True),
     ("I want to return something", "request_return", "order_status_form", True),
     ("the blue one", "inform", "return_form", False),
     ("and to canada?", "inform", "order_status_form", True),
     ("/affirm", "affirm", "return_form", True)],
)
def test_what_leads_elsewhere(text: str, intent: str, form: str, elsewhere: bool) -> None:
    assert leads_elsewhere(Turn(text, intent, 0.9), form) is elsewhere


@pytest.mark.parametrize(
    ("text", "intent", "form", "switches"),
    [("actually forget the return, where is my order #1001?", "check_order_status",
      "return_form", True),
     ("hmm actually can you just tell me where order 1001 is", "check_order_status",
      "return_form", True),
     ("has my order 1001 shipped yet", "check_order_status", "return_form", True),
     ("can you track 1001 for me", "check_order_status", "return_form", True),
     ("order 1001", "check_order_status", "return_form", False),  # an answer NLU misread
     ("#1001", "check_order_status", "return_form", False),
     ("where is my order?", "ask_question", "return_form", False),  # NLU's word decides
     ("It arrived damaged", "check_order_status", "return_form", False),  # a reason
     ("did order 1001 arrive yet", "check_order_status", "return_form", True),
     ("actually I want to return order 1002", "request_return", "order_status_form", True),
     ("can I send the jacket from 1002 back", "request_return", "order_status_form", True),
     ("1002", "request_return", "order_status_form", False),
     ("where is order 1002?", "check_order_status", "order_status_form", False),
     ("/check_order_status", "check_order_status", "return_form", False)],
)
def test_what_switches_flows(text: str, intent: str, form: str, switches: bool) -> None:
    assert switches_flow(Turn(text, intent, 0.9), form) is switches


@pytest.mark.parametrize(
    ("text", "yes"),
    [("yes pls, the coat's zipper broke", True), ("Yes please!", True), ("yeah", True),
     ("sure, it's the zip", True), ("ok yes please", True), ("yep", True), ("y", True),
     ("please do", True),
     ("ok", False), ("ok, I want to return the scarf then", False), ("please", False),
     ("yes but I want to return 1002", False), ("yesterday it broke", False),
     ("no thanks", False), ("you there?", False)],
)
def test_a_yes_that_opens_a_message(text: str, yes: bool) -> None:
    assert opens_with_yes(text) is yes
