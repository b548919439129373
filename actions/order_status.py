"""Order status flow: verify number + email, then tell status, carrier and tracking."""

from __future__ import annotations

import logging
from datetime import datetime

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.commerce.base import BackendError, Order, OrderState
from actions.tenancy import NoTenant
from actions.verification import (
    VerifiedOrderForm,
    explain_stop,
    stop_events,
    verified_now,
    verified_order,
)
from core import logs
from core.db import utcnow

log = logging.getLogger(__name__)


def human_date(moment: datetime, now: datetime) -> str:
    """'today', 'yesterday', 'on Saturday 21 November (2 days ago)': reads after a verb."""
    days = (now.date() - moment.date()).days
    label = f"{moment.strftime('%A')} {moment.day} {moment.strftime('%B')}"
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    if 1 < days < 7:
        return f"on {label} ({days} days ago)"
    return f"on {label}"


def describe_order(order: Order, now: datetime) -> str:
    """One short message a visitor can act on."""
    items = ", ".join(
        f"{item.name}" + (f" ×{item.quantity}" if item.quantity > 1 else "") for item in order.items
    )
    head = f"Order #{order.number} ({items})"
    shipment = order.shipment
    tracking = ""
    if shipment and shipment.tracking_number:
        carrier = f"{shipment.carrier} " if shipment.carrier else ""
        tracking = f" {carrier}tracking number: {shipment.tracking_number}."
        if shipment.tracking_url:
            tracking += f" Track it here: {shipment.tracking_url}"
    if order.state is OrderState.PENDING:
        return (f"{head} was placed {human_date(order.placed_at, now)} and hasn't shipped yet. "
                "You'll get an email with the tracking number as soon as it leaves our warehouse.")
    if order.state is OrderState.SHIPPED:
        when = f" {human_date(order.shipped_at, now)}" if order.shipped_at else ""
        via = f" with {shipment.carrier}" if shipment and shipment.carrier else ""
        return f"{head} shipped{when}{via} and is on its way.{tracking}"
    if order.state is OrderState.DELIVERED:
        when = f" {human_date(order.delivered_at, now)}" if order.delivered_at else ""
        return f"{head} was delivered{when}.{tracking}"
    if order.state is OrderState.CANCELLED:
        when = f" {human_date(order.cancelled_at, now)}" if order.cancelled_at else ""
        return f"{head} was cancelled{when}, so it won't be shipped."
    return f"{head} has been returned."


class ValidateOrderStatusForm(VerifiedOrderForm):
    def name(self) -> str:
        return "validate_order_status_form"


class ActionOrderStatus(Action):
    def name(self) -> str:
        return "action_order_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        reason = tracker.get_slot("flow_stop_reason")
        if reason:
            return explain_stop(reason, dispatcher) + stop_events()
        try:
            found = await verified_order(tracker)
        except (BackendError, NoTenant):
            log.exception("order status lookup failed",
                          extra={"sender": logs.visitor(tracker.sender_id)})
            dispatcher.utter_message(response="utter_backend_unavailable")
            return stop_events()
        if found is None:
            # Only reachable if the order vanished between verification and now.
            dispatcher.utter_message(response="utter_verification_exhausted")
            return stop_events()
        _, order = found
        dispatcher.utter_message(text=describe_order(order, utcnow()))
        # The number is asked afresh next time ("and my other order?"); `verified_order` and
        # the email stay for the shop's quiet period (restarted now), so a return right after
        # this one needs no new details.
        return stop_events() + [SlotSet("order_number", None)] + verified_now()
