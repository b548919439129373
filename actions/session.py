"""Session start: carry slots over and pin the conversation to its tenant."""

from __future__ import annotations

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.tenancy import NoTenant, parse_sender_id

log = logging.getLogger(__name__)


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        # Carry over what the visitor already told us (domain: carry_over_slots_to_new_session).
        carried = {
            name: value
            for name, value in tracker.current_slot_values().items()
            if value is not None and name not in ("requested_slot", "flow_stop_reason")
        }
        events.extend(SlotSet(name, value) for name, value in carried.items())
        try:
            scoped = parse_sender_id(tracker.sender_id)
            tenant_id, channel = scoped.tenant_id, scoped.channel
        except NoTenant:
            log.warning("conversation without tenant", extra={"sender": tracker.sender_id[:80]})
        else:
            metadata = tracker.get_slot("session_started_metadata") or {}
            if metadata.get("tenant_id") not in (None, tenant_id):
                log.warning("metadata tenant ignored: it disagrees with the sender id",
                            extra={"tenant_id": tenant_id, "channel": channel})
            events.append(SlotSet("tenant_id", tenant_id))
        events.append(ActionExecuted("action_listen"))
        return events
