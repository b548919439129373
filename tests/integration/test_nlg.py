"""A shop's texts through the real stack: a designer changes what the bot says over the admin API
and the next turn says it, on REST and in the widget, without retraining; deleting the
override brings the default back. Rasa asks the admin service's NLG endpoint (bot/nlg.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import BrowserContext

from core.settings import BotSettings
from devtools.demo_shop import DEMO_TENANT_ID
from tests.integration.conftest import Visitor
from tests.integration.stack import TOKEN, Stack
from tests.integration.test_widget_browser import (  # noqa: F401  (fixtures)
    browser,
    context,
    open_widget,
    shop_site,
)

pytestmark = pytest.mark.integration

DEFAULT = "I'm a virtual assistant, not a person."
EVERYWHERE = "Beep boop: I'm Demo Outfitters' robot helper."
ON_REST = "REST clients get the short one: a bot."
ON_WEB = "Hello from the widget's own text: I'm a bot."
WITHIN = 5.0  # seconds a change may take to reach Rasa


@pytest.fixture(scope="module")
def designer(stack: Stack) -> Iterator[httpx.Client]:
    """The admin API with the demo shop's designer key (DEMO_DESIGNER_KEY)."""
    with stack.admin_client("designer") as client:
        yield client
        client.delete("/responses/utter_iamabot")


def until(say: Callable[[], str], expected: str) -> tuple[str, float]:
    """Ask again until the answer holds `expected` or WITHIN seconds pass."""
    started = time.monotonic()
    while True:
        answer = say()
        if expected in answer or time.monotonic() - started > WITHIN:
            return answer, time.monotonic() - started
        time.sleep(0.2)


def test_an_override_is_said_in_the_next_rest_turn_and_delete_restores(
        stack: Stack, designer: httpx.Client) -> None:
    visitor = Visitor(stack)
    assert DEFAULT in visitor.say("are you a bot?")
    # "are you a bot? I want a person" is often both: a person is one tap away.
    assert visitor.buttons() == [{"title": "Talk to a person", "payload": "/human_handoff"}]

    changed = designer.put("/responses/utter_iamabot", json={"variants": [
        {"text": EVERYWHERE, "channel": None, "buttons": [
            {"title": "Talk to a person", "payload": "/human_handoff"}]}]})
    assert changed.status_code == 200, changed.text
    answer, took = until(lambda: visitor.say("are you a bot?"), EVERYWHERE)
    assert EVERYWHERE in answer, answer
    assert took < WITHIN
    assert {"title": "Talk to a person", "payload": "/human_handoff"} in visitor.buttons()

    # A variant for the visitor's channel (read from the sender id) wins on that channel.
    designer.put("/responses/utter_iamabot", json={"variants": [
        {"text": EVERYWHERE, "channel": None}, {"text": ON_REST, "channel": "rest"}]})
    assert ON_REST in until(lambda: visitor.say("are you a bot?"), ON_REST)[0]

    assert designer.delete("/responses/utter_iamabot").status_code == 200
    answer, _ = until(lambda: visitor.say("are you a bot?"), DEFAULT)
    assert DEFAULT in answer and ON_REST not in answer


def test_a_broken_template_never_reaches_a_visitor(stack: Stack, designer: httpx.Client) -> None:
    refused = designer.put("/responses/utter_iamabot", json={"variants": [
        {"text": "I'm {bot_name}!", "channel": None}]})
    assert refused.status_code == 422 and "{bot_name}" in refused.json()["detail"]
    assert DEFAULT in Visitor(stack).say("are you a bot?")


def test_the_widget_says_the_shops_web_variant(stack: Stack, designer: httpx.Client,
                                               context: BrowserContext,  # noqa: F811
                                               shop_site: str) -> None:  # noqa: F811
    designer.put("/responses/utter_iamabot", json={"variants": [
        {"text": EVERYWHERE, "channel": None}, {"text": ON_WEB, "channel": "web"}]})
    try:
        widget = open_widget(context, shop_site)
        widget.say("are you a bot?", re.compile(re.escape(ON_WEB)))
        # REST visitors of the same shop get the channel-less variant.
        assert EVERYWHERE in Visitor(stack).say("are you a bot?")
    finally:
        designer.delete("/responses/utter_iamabot")


def test_the_nlg_endpoint_answers_only_its_token_even_on_loopback(stack: Stack) -> None:
    """Rasa's client sends the token (the turns above are said through it); a caller on the
    same host without it, or with another, reads nothing."""
    body = {"response": "utter_iamabot", "sender_id": f"{DEMO_TENANT_ID}:web:v", "slots": {}}
    plain = httpx.post(f"{stack.admin}/nlg", json=body, timeout=10)
    assert plain.status_code == 401
    wrong = httpx.post(f"{stack.admin}/nlg", json=body, timeout=10,
                       headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    token = BotSettings.from_env({"RASA_TOKEN": TOKEN}).nlg_token.reveal()
    right = httpx.post(f"{stack.admin}/nlg", json=body, timeout=10,
                       headers={"Authorization": f"Bearer {token}"})
    assert right.status_code == 200 and right.json()["text"].startswith(DEFAULT)


def test_an_actions_text_is_the_shops_too(stack: Stack, designer: httpx.Client) -> None:
    """action_submit_return says its outcome through responses: the shop's words, the action's
    values (the return's reference and items)."""
    names = ("utter_return_registered", "utter_return_in_progress",
             "utter_return_item_already_returned")
    for name in names:
        changed = designer.put(f"/responses/{name}", json={"variants": [
            {"text": f"[{name}] {{items}} of #{{order_number}}: {{reference}}.", "channel": None}]})
        assert changed.status_code == 200, changed.text
    try:
        visitor = Visitor(stack)
        visitor.say("I'd like to return the denim jacket")
        visitor.say("1002")
        visitor.say("sam@example.com")
        said = visitor.say("It doesn't fit")
        assert re.search(r"\[utter_return_\w+\] Denim jacket of #1002: RMA-1002-[A-Z0-9]{4}\.",
                         said), said
    finally:
        for name in names:
            designer.delete(f"/responses/{name}")
