"""Rendering and checking a shop's texts as Rasa 3.6's templated generator renders them.

tests/bot/test_nlg.py runs Rasa's own generator on the same inputs and compares; these tests
say what a visitor and a designer notice.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from tenants.texts import (
    ARGUMENTS,
    TemplateError,
    UnknownResponse,
    domain_texts,
    eligible,
    placeholders,
    render,
    validate,
)

ROOT = Path(__file__).resolve().parents[2]
# rasa-sdk's own parameters of utter_message: parts of the message, not template arguments.
SDK_PARAMETERS = {"text", "image", "json_message", "template", "response", "attachment",
                  "buttons", "elements"}


def say(variants: list[dict[str, Any]], channel: str, slots: dict[str, Any],
        arguments: dict[str, Any]) -> dict[str, Any]:
    message = render(variants, channel, slots, arguments)
    assert message is not None
    return message


def test_the_domain_lists_every_utter_response_with_its_defaults() -> None:
    domain = domain_texts()
    assert "utter_greet" in domain.responses and "utter_order_not_found" in domain.responses
    assert domain.defaults("utter_goodbye")[0]["text"].startswith("Bye for now")
    assert {"order_number", "email", "tenant_id"} <= domain.slots
    with pytest.raises(UnknownResponse):
        domain.defaults("utter_nope")


def test_the_visitors_channel_has_its_own_variant_and_others_get_the_general_one() -> None:
    variants = [{"text": "general"}, {"text": "short for SMS", "channel": "sms"}]
    assert say(variants, "sms", {}, {})["text"] == "short for SMS"
    assert say(variants, "web", {}, {})["text"] == "general"
    seen = {say([{"text": "a"}, {"text": "b"}], "web", {}, {})["text"] for _ in range(60)}
    assert seen == {"a", "b"}  # one of the variants at random, as Rasa does


def test_conditional_variants_come_first_when_their_slots_match() -> None:
    condition = [{"type": "slot", "name": "email", "value": "A@x.com"}]
    variants: list[dict[str, Any]] = [{"text": "plain"},
                                      {"text": "verified", "condition": condition}]
    assert say(variants, "web", {"email": "a@X.COM"}, {})["text"] == "verified"
    assert say(variants, "web", {"email": "b@x.com"}, {})["text"] == "plain"
    assert "condition" not in say(variants, "web", {"email": "a@x.com"}, {})
    assert eligible([{"text": "sms only", "channel": "sms"}], "web", {}) == []


def test_placeholders_are_filled_from_slots_and_arguments_in_text_and_buttons() -> None:
    variant = {"text": "Order #{order_number}: attempt {attempt} of {max_attempts}.",
               "buttons": [{"title": "Not #{order_number}", "payload": "/deny"}]}
    message = say([variant], "web", {"order_number": "1001", "attempt": 9},
                     {"attempt": 2, "max_attempts": 3})
    assert message == {"text": "Order #1001: attempt 2 of 3.",
                       "buttons": [{"title": "Not #1001", "payload": "/deny"}]}


def test_a_missing_value_leaves_the_template_as_written_and_double_braces_escape() -> None:
    assert say([{"text": "Hi {email}"}], "web", {"tenant_id": "t"}, {})["text"] == "Hi {email}"
    assert say([{"text": "Literal {{email}}"}], "web", {"email": "a@b.c"}, {})["text"] \
        == "Literal {email}"


def test_an_empty_slot_fills_its_placeholder_with_nothing_not_none() -> None:
    """Rasa writes "None"; a visitor should not read it."""
    assert say([{"text": "Your order {order_number}."}], "web", {"order_number": None},
               {})["text"] == "Your order ."


def test_the_bots_own_bookkeeping_slots_are_no_placeholders() -> None:
    domain = domain_texts()
    assert "tenant_id" in domain.slots
    for internal in ("tenant_id", "verified_at", "verification_failures", "handoff_offered"):
        assert internal not in domain.allowed_placeholders("utter_iamabot")
        with pytest.raises(TemplateError, match=internal):
            validate("utter_iamabot", [{"text": f"x {{{internal}}}"}], domain)
    assert {"order_number", "email"} <= domain.allowed_placeholders("utter_iamabot")


def test_an_unknown_placeholder_is_refused_with_the_names_it_may_use() -> None:
    domain = domain_texts()
    with pytest.raises(TemplateError, match=r"\{ordr_number\}.*\{order_number\}"):
        validate("utter_ask_email", [{"text": "Order {ordr_number}?"}], domain)
    # An argument the action passes for this response is fine, not for another one.
    validate("utter_order_not_found", [{"text": "Try {attempt}/{max_attempts}"}], domain)
    with pytest.raises(TemplateError, match="attempt"):
        validate("utter_ask_email", [{"text": "Try {attempt}"}], domain)
    validate("utter_ask_email", [{"text": "Is {email} right? {{braces}} are text"}], domain)


@pytest.mark.parametrize("variants, complaint", [
    ([], "at least one variant"),
    ([{"text": "  "}], "no text"),
    ([{"text": "only SMS", "channel": "sms"}], "every channel"),
    ([{"text": "x"}, {"text": "x", "channel": "fax"}], "unknown channel"),
    ([{"text": "a lone { brace"}], "does not format"),
])
def test_broken_templates_are_refused(variants: list[dict[str, Any]], complaint: str) -> None:
    with pytest.raises(TemplateError, match=complaint):
        validate("utter_greet", variants, domain_texts())


def test_placeholders_lists_names_once_in_order() -> None:
    assert placeholders([{"text": "{a} {b} {{c}}", "buttons": [{"title": "{a}{d}",
                                                                  "payload": "x"}]}]) \
        == ["a", "b", "d"]


def _arguments_actions_pass() -> dict[str, set[str]]:
    """Every `utter_message(response="utter_x", name=...)` in actions/*.py, read from source."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "actions").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "utter_message"):
                continue
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            response = keywords.get("response")
            keywords = {k: v for k, v in keywords.items() if k not in SDK_PARAMETERS}
            names = [n.value for n in ast.walk(response) if isinstance(n, ast.Constant)
                     and isinstance(n.value, str)] if response is not None else []
            for name in names:
                found.setdefault(name, set()).update(keywords)
    return found


def test_every_argument_an_action_passes_with_a_response_may_be_used_in_its_template() -> None:
    passed = _arguments_actions_pass()
    assert passed["utter_order_not_found"] == {"attempt", "max_attempts"}
    domain = domain_texts()
    for name, arguments in passed.items():
        assert name in domain.responses, f"actions say {name}, which the domain lacks"
        assert arguments <= domain.allowed_placeholders(name), name
        assert set(ARGUMENTS.get(name, ())) == arguments, name


def test_every_default_of_the_domain_passes_the_checks_a_designers_text_gets() -> None:
    domain = domain_texts()
    for name in domain.responses:
        validate(name, domain.defaults(name), domain)
