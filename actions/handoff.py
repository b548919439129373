"""Handing a conversation to a person: record the request for the agent inbox.

The agent side (inbox, replies, pausing the bot with ConversationPaused) comes later; until
then the request is stored honestly and the visitor is told a person will reply here.
"""

from __future__ import annotations

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.runtime import runtime
from actions.tenancy import NoTenant, channel_of, tenant_of
from core import logs
from core.handoffs import open_handoff

log = logging.getLogger(__name__)


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            tenant = await tenant_of(tracker)
            failed = tracker.get_slot("verification_failures")
            reason = "verification_failed" if failed else "visitor_asked"
            row, created = await open_handoff(
                runtime().sessions,
                tenant_id=tenant.id,
                sender_id=tracker.sender_id,
                channel=channel_of(tracker),
                reason=reason,
                last_message=tracker.latest_message.get("text"),
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
                                             "new_request": created,
                                             "sender": logs.visitor(tracker.sender_id)})
        dispatcher.utter_message(
            response="utter_handoff_requested" if created else "utter_handoff_already_requested"
        )
        # Failed verifications are not forgotten: a person taking over is no reason to give
        # whoever is guessing a fresh set of tries (the counts across senders live in
        # actions/attempts.py and a handoff does not touch them either).
        return [SlotSet("handoff_requested", True), SlotSet("handoff_offered", False)]


class ActionHandoffDeclined(Action):
    def name(self) -> str:
        return "action_handoff_declined"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(response="utter_anything_else")
        return [SlotSet("handoff_offered", False)]
