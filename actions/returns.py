"""Return flow: verify the order, check it can be returned, pick items and reason, confirm.

Order-level problems (cancelled, not delivered yet, outside the window, already returned) are
explained right after verification, before asking anything else. The reference is idempotent:
asking again for the same order and items gives the same one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.commerce.base import BackendError, LineItem, Order
from actions.commerce.returns import (
    Ineligible,
    ItemsAlreadyReturned,
    ReturnLedger,
    order_eligibility,
    window_end,
)
from actions.runtime import runtime
from actions.tenancy import NoTenant
from actions.verification import (
    STOP_NOT_ELIGIBLE,
    VerifiedOrderForm,
    explain_stop,
    stop_events,
    verified_order,
)
from core.db import utcnow
from tenants import Tenant

log = logging.getLogger(__name__)

_ALL = re.compile(r"\b(all|both|everything|every item|whole order|entire order)\b", re.I)
_STOPWORDS = {"the", "and", "my", "a", "an", "of", "pair", "pack", "set", "with", "for", "in"}


def _singular(word: str) -> str:
    """Enough English plural folding for product nouns: scarves, dresses, batteries, socks."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith("ss"):
        return word
    if word.endswith("ves"):
        return word[:-3] + "f"
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    return word[:-1]


def _tokens(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {_singular(w) for w in words if w not in _STOPWORDS}


def match_items(wanted: Sequence[str] | str, order: Order) -> list[LineItem]:
    """Line items the visitor means: 'the shoes', 'socks and shoes', 'both', 'all of it'."""
    phrases = [wanted] if isinstance(wanted, str) else list(wanted)
    text = " ".join(str(p) for p in phrases)
    only_one = len(order.items) == 1
    if _ALL.search(text) or (only_one and re.search(r"\b(it|that|this)\b", text, re.I)):
        return list(order.items)
    said = _tokens(text)
    return [item for item in order.items if _tokens(item.name) & said]


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _item_list(items: Sequence[LineItem]) -> str:
    return _join([item.name for item in items])


def explain_ineligible(why: Ineligible, order: Order, tenant: Tenant) -> str:
    if why is Ineligible.CANCELLED:
        return (f"Order #{order.number} was cancelled, so there's nothing to send back. "
                "If you were charged for it, the refund goes to your original payment method.")
    if why is Ineligible.NOT_DELIVERED:
        return (f"Order #{order.number} hasn't been delivered yet, so it can't be returned yet. "
                f"Once it arrives you'll have {tenant.return_window_days} days to return it.")
    if why is Ineligible.WINDOW_CLOSED:
        end = window_end(order, tenant.return_window_days)
        return (f"Order #{order.number} was delivered on {order.delivered_at:%d %B %Y}, and our "
                f"return window is {tenant.return_window_days} days, so it closed on "
                f"{end:%d %B %Y}. I can't start a return for it, but a person from our team can "
                "look at your case (for example if an item is faulty).")
    return f"Everything in order #{order.number} has already been returned."


class ValidateReturnForm(VerifiedOrderForm):
    def name(self) -> str:
        return "validate_return_form"

    async def extract_order_number(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A return right after talking about an order is about that order ("return it")."""
        if tracker.get_slot("order_number") or tracker.get_slot("flow_stop_reason"):
            return {}
        verified = tracker.get_slot("verified_order")
        if verified and tracker.get_slot("email"):
            return {"order_number": verified}
        return {}

    async def on_verified(
        self, tenant: Tenant, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        why = order_eligibility(order, tenant.return_window_days, utcnow())
        if why is not None:
            log.info("return not eligible", extra={"tenant_id": tenant.id, "why": why.value})
            dispatcher.utter_message(text=explain_ineligible(why, order, tenant))
            events: list[EventType] = [SlotSet("flow_stop_reason", STOP_NOT_ELIGIBLE)]
            if why is Ineligible.WINDOW_CLOSED:
                events.append(SlotSet("handoff_offered", True))
            return events
        # Items named before the order was known ("return my shoes") are resolved now.
        wanted = tracker.get_slot("return_items")
        if wanted:
            matched = match_items(wanted, order)
            return [SlotSet("return_items", [i.name for i in matched] or None)]
        return []

    async def validate_return_items(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
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
        try:
            found = await verified_order(tracker)
        except (BackendError, NoTenant):
            found = None
        if found is None:
            dispatcher.utter_message(text="Which item(s) would you like to return?")
            return []
        _, order = found
        buttons = [{"title": item.name, "payload": item.name} for item in order.items]
        if len(order.items) > 1:
            buttons.append({"title": "All of them", "payload": "all of them"})
        dispatcher.utter_message(
            text=f"Which item(s) from order #{order.number} would you like to return? "
            f"It has: {_item_list(order.items)}.",
            buttons=buttons,
        )
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
                dispatcher.utter_message(
                    text="I couldn't tell which items to return, so nothing was registered.")
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
                text=f"{_join(exc.names)} from order #{tracker.get_slot('verified_order')} "
                f"{'is' if len(exc.names) == 1 else 'are'} already part of return {exc.reference}, "
                "so I can't register them again. You can still return the other items."
            )
            return reset
        except (BackendError, NoTenant):
            log.exception("return could not be registered", extra={"sender": tracker.sender_id})
            dispatcher.utter_message(response="utter_backend_unavailable")
            return reset + [SlotSet("handoff_offered", True)]
        what = _item_list(items)
        if outcome.created:
            text = (f"Done! Your return of {what} from order #{order.number} is registered. "
                    f"Your return reference is {outcome.reference}. We'll email you at "
                    f"{order.email} with the next steps.")
        else:
            text = (f"You've already started a return of {what} from order #{order.number}: "
                    f"the reference is {outcome.reference}. No need to do anything else.")
        dispatcher.utter_message(text=text)
        return reset
