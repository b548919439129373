"""A "stop" while no flow runs (actions/smalltalk.py): a bare stop gets an okay, a message that
asks something is a question about cancelling and goes to the knowledge route, never dropped."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.runtime import Runtime
from actions.smalltalk import ActionStopWithNothingRunning
from tests.actions.conftest import DOMAIN, tracker

pytestmark = pytest.mark.asyncio


async def stop(text: str) -> tuple[list[str], dict[str, Any]]:
    dispatcher = CollectingDispatcher()
    events = await ActionStopWithNothingRunning().run(dispatcher, tracker(text=text), DOMAIN)
    return ([str(m.get("response")) for m in dispatcher.messages],
            {e["name"]: e["value"] for e in events if e.get("event") == "slot"})


@pytest.mark.parametrize("text", ["stop", "forget it", "cancel", "no stop that please"])
async def test_a_bare_stop_gets_an_okay(action_runtime: Runtime, text: str) -> None:
    assert await stop(text) == (["utter_nothing_to_cancel"], {})


@pytest.mark.parametrize("text", ["just ordered the wrong thing, can i cancel quick",
                                  "how do I cancel an order I placed an hour ago?"])
async def test_a_stop_that_asks_something_is_answered_as_a_question(
        action_runtime: Runtime, text: str) -> None:
    responses, slots = await stop(text)
    # The demo shop has no knowledge index in this test: the knowledge route says it does not
    # know, offers a person and keeps the question for them.
    assert responses == ["utter_knowledge_not_found"]
    assert slots["handoff_offered"] is True
    assert slots["unanswered_question"] == text
