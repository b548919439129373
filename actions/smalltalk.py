"""Greeting (in the shop's own words), cancelling a flow (or a "stop" while none runs), and the
one fallback action."""

from __future__ import annotations

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import escalation
from actions.knowledge import ActionAnswerFromKnowledge
from core import logs
from core.asking import asks_something

log = logging.getLogger(__name__)

# Slots a flow collects for one request; cleared when the visitor abandons it. The order
# number goes too, as after an answered flow: the next "where is my order?" asks for it,
# while "return it" still means the order verified last. The email stays only if it was
# verified with an order (the visitor proved it); one typed into the abandoned flow goes.
FLOW_SLOTS = ("return_items", "return_reason", "flow_stop_reason", "requested_slot",
              "order_number")


class ActionGreet(Action):
    """The shop's greeting: `utter_greet` as the shop set it (its greeting setting or a
    designer's override, laid over the domain's text by the NLG endpoint)."""

    def name(self) -> str:
        return "action_greet"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(response="utter_greet")
        return []


class ActionCancelFlow(Action):
    def name(self) -> str:
        return "action_cancel_flow"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        # A goodbye in the middle of a flow ends it as a goodbye ends any conversation
        # (data/rules): the visitor is leaving, not asking what else the bot can do.
        leaving = (tracker.latest_message.get("intent") or {}).get("name") == "goodbye"
        dispatcher.utter_message(response="utter_goodbye" if leaving else "utter_cancelled")
        unproven = [] if tracker.get_slot("verified_order") else [SlotSet("email", None)]
        return [SlotSet(slot, None) for slot in FLOW_SLOTS] + unproven


class ActionStopWithNothingRunning(Action):
    """A "stop" while no flow runs. "stop" or "forget it" needs nothing but an okay; a message
    that asks something ("just ordered the wrong thing, can i cancel quick") is a question
    about cancelling, which the classifier can still take for a stop: it is answered from
    the shop's documents like any question (or, when they do not cover it, a person offered),
    never dropped with an okay."""

    def name(self) -> str:
        return "action_stop_with_nothing_running"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if asks_something(tracker.latest_message.get("text") or ""):
            return await ActionAnswerFromKnowledge().run(dispatcher, tracker, domain)
        dispatcher.utter_message(response="utter_nothing_to_cancel")
        return []


class ActionFallback(Action):
    """Where every turn the bot cannot classify with confidence ends up.

    It says so honestly and offers a person; the second misunderstood turn in a row hands
    over to one at once (actions/escalation.py).
    """

    def name(self) -> str:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        log.info("fallback", extra={"intent": intent, "sender": logs.visitor(tracker.sender_id)})
        counted = escalation.misunderstood(tracker, dispatcher, "utter_cannot_answer_yet")
        # As Rasa's own fallback does: forget the turn, so the next prediction is to listen.
        # Without it the policies see the same state again and predict this action until
        # Rasa's circuit breaker stops the conversation, which then never answers again.
        # (Slots set after the revert stay set.)
        return [UserUtteranceReverted(), *counted, SlotSet("handoff_offered", True)]
