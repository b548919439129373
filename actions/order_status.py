"""Order status flow: verify number + email, then tell status, carrier and tracking."""

from __future__ import annotations

import logging
from datetime import datetime

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.commerce.base import BackendError, Order, OrderState
from actions.said import Said
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


def item_list(order: Order) -> str:
    """'Running shoes, Socks ×2'."""
    return ", ".join(item.name + (f" ×{item.quantity}" if item.quantity > 1 else "")
                     for item in order.items)


def describe_order(order: Order, now: datetime) -> list[Said]:
    """What the visitor is told about an order: its state, then how to track it if it can be.

    Every state has its own response; a date the backend did not give reads "recently", and a
    shipment without a carrier's name says so with the response that does not name one (and
    its tracking number is "with the carrier").
    """
    about = {"order_number": order.number, "order_items": item_list(order)}

    def when(moment: datetime | None) -> str:
        return human_date(moment, now) if moment else "recently"

    shipment = order.shipment
    said: list[Said]
    if order.state is OrderState.PENDING:
        return [Said("utter_order_pending", {**about, "placed": when(order.placed_at)})]
    if order.state is OrderState.SHIPPED:
        arguments = {**about, "shipped": when(order.shipped_at)}
        if shipment and shipment.carrier:
            said = [Said("utter_order_shipped_with_carrier",
                         {**arguments, "carrier": shipment.carrier})]
        else:
            said = [Said("utter_order_shipped", arguments)]
    elif order.state is OrderState.DELIVERED:
        said = [Said("utter_order_delivered", {**about, "delivered": when(order.delivered_at)})]
    elif order.state is OrderState.CANCELLED:
        return [Said("utter_order_cancelled", {**about, "cancelled": when(order.cancelled_at)})]
    else:
        return [Said("utter_order_returned", about)]
    if shipment and shipment.tracking_number:
        carrier = shipment.carrier or "the carrier"
        tracking = {"order_number": order.number, "carrier": carrier,
                    "tracking_number": shipment.tracking_number}
        if shipment.tracking_url:
            said.append(Said("utter_order_tracking_link",
                             {**tracking, "tracking_url": shipment.tracking_url}))
        else:
            said.append(Said("utter_order_tracking_number", tracking))
    return said


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
        for said in describe_order(order, utcnow()):
            said.utter(dispatcher)
        # The number is asked afresh next time ("and my other order?"); `verified_order` and
        # the email stay for the shop's quiet period (restarted now), so a return right after
        # this one needs no new details.
        return stop_events() + [SlotSet("order_number", None)] + verified_now()
