"""Handing a conversation to a person: queue it for the agents' inbox, say what happens next,
and pause the bot.

`action_handoff` records the request (core/handoffs.py `open_handoff`, status queued) with a
summary of what the bot already knows, so the agent does not ask again: the visitor's last
intent before the handoff (what they came for: small talk, yes/no and answers to the forms'
questions say nothing about that), the order they verified, and the question the knowledge
route could not answer when the handoff follows that. It tells the agents' pages at once
(live event `handoff.requested`), tells the visitor the expected wait or, outside opening
hours, that a person answers here later (actions/waiting.py), and returns
`ConversationPaused`: from then on Rasa records the visitor's messages and predicts nothing
until an agent resolves the handoff (the gateway also checks `human_owner` before sending).

Why the handoff happened (`reason`): "misunderstood" (the second misunderstood turn in a row
handed over at once, actions/escalation.py), "knowledge_abstained" (right after a question the
knowledge route could not answer), "verification_failed" (after failed identity checks),
else "visitor_asked".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import escalation
from actions.runtime import runtime
from actions.tenancy import NoTenant, channel_of, tenant_of
from actions.waiting import announcement, median_wait_minutes
from core import logs
from core.conversations import HandoffRow
from core.db import utcnow
from core.handoffs import REQUESTED, open_handoff
from core.live import LiveEvent

log = logging.getLogger(__name__)

KNOWLEDGE_ACTION: Final = "action_answer_from_knowledge"
# Intents that say nothing about what the visitor came for: asking for a person or saying yes
# to one, small talk, and answers to a form's questions (the form's own intent came first).
NOT_A_TOPIC: Final = frozenset({"human_handoff", "affirm", "deny", "greet", "goodbye", "thank",
                                "bot_challenge", "stop", "inform"})


def _turns(tracker: Tracker) -> list[list[dict[str, Any]]]:
    """The conversation's applied events cut at each visitor message (turn 0: before any)."""
    turns: list[list[dict[str, Any]]] = [[]]
    for event in tracker.applied_events():
        if event.get("event") == "user":
            turns.append([])
        turns[-1].append(event)
    return turns


def _intent(event: dict[str, Any]) -> str | None:
    name = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
    return str(name) if name else None


def last_topic(tracker: Tracker) -> str | None:
    """The visitor's last intent that says what they came for (None: nothing but asking)."""
    for turn in reversed(_turns(tracker)[1:]):
        intent = _intent(turn[0])
        if intent and intent not in NOT_A_TOPIC:
            return intent
    return None


def follows_abstention(tracker: Tracker) -> bool:
    """Whether the bot's previous turn was the knowledge route (which left
    `unanswered_question` set when it could not answer)."""
    turns = _turns(tracker)
    previous: Sequence[dict[str, Any]] = turns[-2] if len(turns) > 1 else ()
    return any(e.get("event") == "action" and e.get("name") == KNOWLEDGE_ACTION
               for e in previous)


def summary_of(tracker: Tracker) -> dict[str, Any]:
    """What the bot already knows, for the agent's queue (keys without a value left out)."""
    question = tracker.get_slot(escalation.UNANSWERED) if follows_abstention(tracker) else None
    summary = {"intent": last_topic(tracker), "order_number": tracker.get_slot("verified_order"),
               "question": question}
    return {key: value for key, value in summary.items() if value}


def reason_of(tracker: Tracker, summary: dict[str, Any]) -> str:
    if escalation.misunderstood_twice(tracker):
        return "misunderstood"
    if summary.get("question"):
        return "knowledge_abstained"
    if tracker.get_slot("verification_failures"):
        return "verification_failed"
    return "visitor_asked"


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        rt = runtime()
        summary = summary_of(tracker)
        reason = reason_of(tracker, summary)
        try:
            tenant = await tenant_of(tracker)
            row, created = await open_handoff(
                rt.sessions,
                tenant_id=tenant.id,
                sender_id=tracker.sender_id,
                channel=channel_of(tracker),
                reason=reason,
                last_message=tracker.latest_message.get("text"),
                summary=summary,
            )
        except NoTenant:
            log.warning("handoff without tenant", extra={"sender": logs.visitor(tracker.sender_id)})
            dispatcher.utter_message(response="utter_handoff_failed")
            return [SlotSet("handoff_offered", False)]
        except Exception:
            log.exception("handoff could not be recorded",
                          extra={"sender": logs.visitor(tracker.sender_id)})
            dispatcher.utter_message(response="utter_handoff_failed")
            return [SlotSet("handoff_offered", False)]
        log.info("handoff requested", extra={"tenant_id": tenant.id, "handoff_id": row.id,
                                             "reason": reason, "new_request": created,
                                             "sender": logs.visitor(tracker.sender_id)})
        wait = None
        if created:
            await rt.live.publish(requested_event(row))
            try:
                wait = await median_wait_minutes(rt.sessions, tenant.id)
            except Exception:  # the request is queued: an estimate is not worth failing it
                log.exception("expected wait unknown", extra={"tenant_id": tenant.id})
        announcement(tenant.opening_hours, utcnow(), wait, created).utter(dispatcher)
        # Failed verifications are not forgotten: a person taking over is no reason to give
        # whoever is guessing a fresh set of tries (the counts across senders live in
        # actions/attempts.py and a handoff does not touch them either).
        # A form still asking (the handoff came straight from a misunderstood turn, not through
        # a rule that deactivated it) must not take the visitor's first words after the agent
        # hands back as its answer.
        stop_form: list[EventType] = ([ActiveLoop(None), SlotSet("requested_slot", None)]
                                      if tracker.active_loop.get("name") else [])
        return [*stop_form, SlotSet("handoff_requested", True), SlotSet("handoff_offered", False),
                SlotSet(escalation.MISUNDERSTOOD, 0.0), SlotSet(escalation.UNANSWERED, None),
                ConversationPaused()]


def requested_event(row: HandoffRow) -> LiveEvent:
    """The agents' live event for a new request (the admin service turns the sender id into
    the conversation's opaque id before it reaches a page)."""
    requested_at: datetime = row.created_at
    return LiveEvent(tenant_id=row.tenant_id, kind=REQUESTED, sender_id=row.sender_id,
                     data={"handoff_id": row.id, "status": row.status, "reason": row.reason,
                           "channel": row.channel, "summary": row.summary or {},
                           "last_message": row.last_message,
                           "requested_at": requested_at.isoformat()})


class ActionHandoffDeclined(Action):
    def name(self) -> str:
        return "action_handoff_declined"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        # Mid-form the form asks its question again right after; "anything else?" would not fit.
        if not tracker.active_loop.get("name"):
            dispatcher.utter_message(response="utter_anything_else")
        return [SlotSet("handoff_offered", False)]
