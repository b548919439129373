"""Session start: carry slots over and pin the conversation to its tenant.

What a visitor proved about an order, and the flow they were in, stay with the session that saw
it: whoever writes to the same sender id later (a REST `sender` or an email `From` is whatever
the client says) must prove the order again."""

from __future__ import annotations

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.escalation import TURN_SLOTS
from actions.smalltalk import FLOW_SLOTS
from actions.tenancy import NoTenant, parse_sender_id
from actions.verification import IDENTITY_SLOTS
from core import logs

log = logging.getLogger(__name__)

NOT_CARRIED = frozenset(IDENTITY_SLOTS) | frozenset(FLOW_SLOTS) | frozenset(TURN_SLOTS)


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        # Carry over what the visitor already told us (domain: carry_over_slots_to_new_session),
        # except a proof of identity and the state of a flow.
        carried = {
            name: value
            for name, value in tracker.current_slot_values().items()
            if value is not None and name not in NOT_CARRIED
        }
        events.extend(SlotSet(name, value) for name, value in carried.items())
        try:
            scoped = parse_sender_id(tracker.sender_id)
            tenant_id, channel = scoped.tenant_id, scoped.channel
        except NoTenant:
            log.warning("conversation without tenant",
                        extra={"sender": logs.visitor(tracker.sender_id)})
        else:
            metadata = tracker.get_slot("session_started_metadata") or {}
            if metadata.get("tenant_id") not in (None, tenant_id):
                log.warning("metadata tenant ignored: it disagrees with the sender id",
                            extra={"tenant_id": tenant_id, "channel": channel})
            events.append(SlotSet("tenant_id", tenant_id))
        events.append(ActionExecuted("action_listen"))
        return events
