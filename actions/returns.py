"""Return flow: verify the order, check it can be returned, pick items and reason, confirm.

Order-level problems (cancelled, not delivered yet, outside the window, already returned) are
explained right after verification, before asking anything else; outside the window a person
is offered (buttons, a typed yes or no, or a yes with the story: actions/escalation.py), and a
return asked for next is about another order, so the form asks which. The reference is
idempotent: asking again for the same order and items gives the same one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import answers, escalation
from actions.answers import Turn, choose_items, leads_elsewhere, reason_in
from actions.commerce.base import BackendError, LineItem, Order
from actions.commerce.returns import (
    Ineligible,
    ItemsAlreadyReturned,
    ReturnLedger,
    order_eligibility,
    window_end,
)
from actions.runtime import runtime
from actions.said import Said
from actions.tenancy import NoTenant
from actions.verification import (
    STOP_NOT_ELIGIBLE,
    VerifiedOrderForm,
    explain_stop,
    slot_before_turn,
    stop_events,
    verified_now,
    verified_order,
)
from core import logs
from core.db import utcnow
from tenants import Tenant

log = logging.getLogger(__name__)

def match_items(wanted: Sequence[str] | str, order: Order) -> list[LineItem]:
    """Line items of `order` the visitor means (see actions.answers.match_items)."""
    return answers.match_items(wanted, order.items)


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _item_list(items: Sequence[LineItem]) -> str:
    return _join([item.name for item in items])


def explain_ineligible(why: Ineligible, order: Order, tenant: Tenant) -> Said:
    """Why the order cannot be returned, as a response with the values its template uses."""
    window = {"order_number": order.number, "return_window_days": str(tenant.return_window_days)}
    if why is Ineligible.CANCELLED:
        return Said("utter_return_order_cancelled", {"order_number": order.number})
    if why is Ineligible.NOT_DELIVERED:
        return Said("utter_return_not_delivered_yet", window)
    if why is Ineligible.WINDOW_CLOSED:
        assert order.delivered_at is not None  # a closed window started with a delivery
        end = window_end(order, tenant.return_window_days)
        return Said("utter_return_window_closed",
                    {**window, "delivered_on": f"{order.delivered_at:%d %B %Y}",
                     "window_closed_on": f"{end:%d %B %Y}"})
    return Said("utter_return_order_fully_returned", {"order_number": order.number})


def request_text(tracker: Tracker, form: str) -> str:
    """What the visitor typed to start this return, if it was a request to return."""
    events = tracker.events
    start = len(events)  # the form is starting on the latest message
    if tracker.active_loop_name == form:
        start = max((i for i, e in enumerate(events)
                     if e.get("event") == "active_loop" and e.get("name") == form), default=0)
    for event in reversed(events[:start]):
        if event.get("event") == "user":
            intent = (event.get("parse_data") or {}).get("intent") or {}
            return str(event.get("text") or "") if intent.get("name") == "request_return" else ""
    return ""


def refused_since_verified(tracker: Tracker) -> bool:
    """The verified order was refused a return after it was last verified: "I want to return
    something else" then means another order, not the same refusal again."""
    for event in reversed(tracker.events):
        if event.get("event") != "slot":
            continue
        if event.get("name") == "verified_order" and event.get("value"):
            return False
        if event.get("name") == "flow_stop_reason" and event.get("value") == STOP_NOT_ELIGIBLE:
            return True
    return False


class ValidateReturnForm(VerifiedOrderForm):
    def name(self) -> str:
        return "validate_return_form"

    async def extract_order_number(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A return right after talking about an order is about that order ("return it")."""
        if tracker.get_slot("order_number") or tracker.get_slot("flow_stop_reason"):
            return await super().extract_order_number(dispatcher, tracker, domain)
        verified = tracker.get_slot("verified_order")
        if (verified and tracker.get_slot("email") and self.asked(tracker) is None
                and not refused_since_verified(tracker)):
            return {"order_number": verified}
        return await super().extract_order_number(dispatcher, tracker, domain)

    async def extract_return_items(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """The items the visitor picked, by name as the order lists them (any case, article,
        typo), by position ("the second one") or all of them; the buttons send names."""
        if self.asked(tracker) != "return_items":
            return {}
        turn = Turn.of(tracker.latest_message)
        try:
            found = await verified_order(tracker, before_turn=True)
        except (BackendError, NoTenant):
            found = None
        if found is None or turn.is_payload:
            return {}
        chosen, only_the_choice = choose_items(turn.text, found[1].items)
        # "Denim jacket" is an answer even when NLU calls it a product question; "does the
        # denim jacket come in other sizes?" is a question that happens to name an item.
        if chosen and (only_the_choice or not leads_elsewhere(turn, self.form_name())):
            return {"return_items": [item.name for item in chosen]}
        return self.free_answer("return_items", None, tracker, domain)

    async def extract_return_reason(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Whatever the visitor types as the reason is the reason, unless it leads elsewhere."""
        if self.asked(tracker) != "return_reason" or escalation.answers_the_offer(tracker):
            return {}
        reason = reason_in(Turn.of(tracker.latest_message))
        return {"return_reason": reason} if reason else {}

    async def on_verified(
        self, tenant: Tenant, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        why = order_eligibility(order, tenant.return_window_days, utcnow())
        if why is not None:
            log.info("return not eligible", extra={"tenant_id": tenant.id, "why": why.value})
            explain_ineligible(why, order, tenant).utter(dispatcher)
            events: list[EventType] = [SlotSet("flow_stop_reason", STOP_NOT_ELIGIBLE)]
            if why is Ineligible.WINDOW_CLOSED:
                events.append(SlotSet("handoff_offered", True))
            return events
        # Items named before the order was known ("return my shoes") are resolved now: those
        # NLU found, else whatever in the request names the order's items ("send back the
        # denim jacekt", or a shop's own product name NLU has never seen).
        wanted = tracker.get_slot("return_items") or request_text(tracker, self.form_name())
        if wanted:
            matched = match_items(wanted, order)
            return [SlotSet("return_items", [i.name for i in matched] or None)]
        return []

    async def validate_return_items(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        earlier = slot_before_turn(tracker, "return_items")
        if earlier and self.asked(tracker) != "return_items":
            # "the scarf is too small" answers the reason; the items were chosen already.
            return {"return_items": earlier}
        try:
            found = await verified_order(tracker)
        except (BackendError, NoTenant):
            found = None
        if found is None:
            # Not verified yet: keep what was said; on_verified resolves it.
            return {"return_items": value}
        _, order = found
        matched = match_items(value, order)
        if not matched:
            dispatcher.utter_message(
                response="utter_unknown_return_items",
                order_number=order.number,
                order_items=_item_list(order.items),
            )
            return {"return_items": None}
        return {"return_items": [item.name for item in matched]}

    def validate_return_reason(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        reason = str(value or "").strip()
        if len(reason) < 2:
            return {"return_reason": None}
        return {"return_reason": reason[:500]}


class ActionAskReturnItems(Action):
    """Ask which items, offering the order's items as buttons."""

    def name(self) -> str:
        return "action_ask_return_items"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if escalation.offered_this_turn(tracker):
            return []  # the person just offered is the turn's one question
        try:
            found = await verified_order(tracker)
        except (BackendError, NoTenant):
            found = None
        if found is None:
            dispatcher.utter_message(response="utter_which_return_items")
            return []
        _, order = found
        buttons = [{"title": item.name, "payload": item.name} for item in order.items]
        if len(order.items) > 1:
            buttons.append({"title": "All of them", "payload": "all of them"})
        # The shop's text (NLG) with the order's items as buttons added after its own.
        dispatcher.utter_message(response="utter_which_return_items_of_order",
                                 order_number=order.number,
                                 order_items=_item_list(order.items), buttons=buttons)
        return []


class ActionAskReturnReason(Action):
    """Ask the reason, with the usual choices, unless a person was just offered instead."""

    def name(self) -> str:
        return "action_ask_return_reason"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if not escalation.offered_this_turn(tracker):
            dispatcher.utter_message(response="utter_ask_return_reason")
        return []


class ActionSubmitReturn(Action):
    def name(self) -> str:
        return "action_submit_return"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        reset = stop_events() + [SlotSet(slot, None)
                                 for slot in ("return_items", "return_reason", "order_number")]
        reason = tracker.get_slot("flow_stop_reason")
        if reason:
            return explain_stop(reason, dispatcher) + reset
        try:
            found = await verified_order(tracker)
            if found is None:
                dispatcher.utter_message(response="utter_verification_exhausted")
                return reset
            tenant, order = found
            items = match_items(tracker.get_slot("return_items") or [], order)
            if not items:
                dispatcher.utter_message(response="utter_return_items_unclear")
                return reset
            rt = runtime()
            outcome = await ReturnLedger(rt.sessions, tenant.id).request(
                order=order,
                items=items,
                reason=tracker.get_slot("return_reason") or "",
                backend=rt.backend_for(tenant),
                sender_id=tracker.sender_id,
            )
        except ItemsAlreadyReturned as exc:
            dispatcher.utter_message(
                response=("utter_return_item_already_returned" if len(exc.names) == 1
                          else "utter_return_items_already_returned"),
                items=_join(exc.names), order_number=tracker.get_slot("verified_order"),
                reference=exc.reference)
            return reset
        except (BackendError, NoTenant):
            log.exception("return could not be registered",
                          extra={"sender": logs.visitor(tracker.sender_id)})
            dispatcher.utter_message(response="utter_backend_unavailable")
            return reset + [SlotSet("handoff_offered", True)]
        dispatcher.utter_message(
            response="utter_return_registered" if outcome.created else "utter_return_in_progress",
            items=_item_list(items), order_number=order.number, reference=outcome.reference,
            order_email=order.email)
        return reset + verified_now()
