"""The action server's metrics (issue 12, point 10): each action run counted and timed by the
route its action belongs to and the channel the visitor wrote on, with its outcome; labels
hold neither the sender id nor slots."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.interfaces import ActionExecutionRejection
from rasa_sdk.types import DomainDict

from actions.metrics import ROUTES, InstrumentedExecutor, route_of

SENDER = "t-1:sms:+15550001234"


class Answering(Action):
    def name(self) -> str:
        return "action_answer_from_knowledge"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(text="Refunds take 5 days.")
        return []


class Refusing(Action):
    def name(self) -> str:
        return "validate_order_status_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        raise ActionExecutionRejection(self.name(), "not filled")


def call(action: str, channel: str | None) -> dict[str, Any]:
    metadata = {"tenant_id": "t-1", "channel": channel} if channel else {}
    return {"next_action": action, "sender_id": SENDER, "domain": {},
            "tracker": {"sender_id": SENDER, "slots": {"email": "alex@example.com"},
                        "latest_message": {"text": "my email is alex@example.com",
                                           "metadata": metadata},
                        "events": [], "paused": False, "followup_action": None,
                        "active_loop": {}, "latest_action_name": "action_listen"}}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.asyncio
async def test_runs_are_counted_by_route_channel_and_outcome() -> None:
    executor = InstrumentedExecutor()
    executor.register_action(Answering)
    executor.register_action(Refusing)
    ok = value("switchboard_actions_runs_total", route="knowledge", channel="sms", outcome="ok")
    rejected = value("switchboard_actions_runs_total", route="order_status", channel="other",
                     outcome="rejected")
    timed = value("switchboard_actions_seconds_count", route="knowledge", channel="sms")

    result = await executor.run(call("action_answer_from_knowledge", "sms"))
    assert result is not None
    with pytest.raises(ActionExecutionRejection):
        await executor.run(call("validate_order_status_form", None))

    assert value("switchboard_actions_runs_total", route="knowledge", channel="sms",
                 outcome="ok") == ok + 1
    assert value("switchboard_actions_runs_total", route="order_status", channel="other",
                 outcome="rejected") == rejected + 1
    assert value("switchboard_actions_seconds_count", route="knowledge", channel="sms") == timed + 1
    text = generate_latest(REGISTRY).decode()
    assert "alex@example.com" not in text and "15550001234" not in text


def test_every_route_is_one_of_the_documented_few() -> None:
    assert set(ROUTES.values()) == {"order_status", "returns", "handoff", "knowledge"}
    assert route_of("action_session_start") == "other" and route_of(None) == "other"


def test_every_action_of_ours_has_a_route_or_is_other_on_purpose() -> None:
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("actions")
    unrouted = {name for name in executor.actions if name not in ROUTES}
    # action_ask_order_number, action_ask_email: both forms ask with them, so they are
    # neither flow's.
    assert unrouted == {"action_session_start", "action_greet", "action_cancel_flow",
                        "action_stop_with_nothing_running", "action_fallback",
                        "action_ask_order_number", "action_ask_email"}, \
        f"give {sorted(unrouted)} a route in ROUTES"
