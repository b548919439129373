"""What the visitor reads about an order: each state's response, rendered from the domain's
defaults as the NLG endpoint renders it, and in a shop's own words when it overrode it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from actions.commerce.base import LineItem, Order, OrderState, Shipment
from actions.commerce.returns import Ineligible
from actions.order_status import describe_order
from actions.returns import explain_ineligible
from actions.said import Said
from core.db import utcnow
from tenants import Tenant
from tenants.texts import ARGUMENTS, domain_texts, render, validate

NOW = utcnow()


def make(state: OrderState, *, shipment: Shipment | None = None,
         shipped_at: datetime | None = None, delivered_at: datetime | None = None,
         cancelled_at: datetime | None = None) -> Order:
    return Order(number="1001", email="alex@example.com", state=state,
                 placed_at=NOW - timedelta(days=4),
                 items=(LineItem("1", "Running shoes"), LineItem("2", "Socks", quantity=2)),
                 shipment=shipment, shipped_at=shipped_at, delivered_at=delivered_at,
                 cancelled_at=cancelled_at)


def read(said: list[Said] | Said, overrides: dict[str, list[dict[str, str]]] | None = None
         ) -> str:
    """The messages as the visitor reads them, one per line."""
    domain = domain_texts()
    lines = []
    for one in said if isinstance(said, list) else [said]:
        assert set(one.arguments) == ARGUMENTS[one.response], one.response
        variants = (overrides or {}).get(one.response) or domain.defaults(one.response)
        message = render(variants, "web", {}, one.arguments)
        assert message is not None
        lines.append(message["text"])
    return "\n".join(lines)


def test_shipped_names_carrier_tracking_and_link() -> None:
    shipment = Shipment("UPS", "1Z999AA10123456784", "https://ups.example/t")
    text = read(describe_order(make(OrderState.SHIPPED, shipped_at=NOW - timedelta(days=2),
                                    shipment=shipment), NOW))
    assert "shipped" in text and "2 days ago" in text and "with UPS" in text
    assert "1Z999AA10123456784" in text and "https://ups.example/t" in text
    assert "Socks ×2" in text and "{" not in text


def test_shipment_without_carrier_date_or_link_still_reads_well() -> None:
    text = read(describe_order(make(OrderState.SHIPPED, shipment=Shipment(None, "TRK42")), NOW))
    assert "shipped recently and is on its way." in text
    assert "shipped recently and is on its way.\nTracking number with the carrier: TRK42." in text


def test_pending_says_not_shipped_and_no_tracking() -> None:
    text = read(describe_order(make(OrderState.PENDING), NOW))
    assert "hasn't shipped yet" in text and "Tracking number" not in text


def test_cancelled_delivered_and_returned() -> None:
    assert "cancelled today" in read(describe_order(
        make(OrderState.CANCELLED, cancelled_at=NOW), NOW))
    assert "delivered yesterday" in read(describe_order(
        make(OrderState.DELIVERED, delivered_at=NOW - timedelta(days=1)), NOW))
    assert "has been returned" in read(describe_order(make(OrderState.RETURNED), NOW))


def test_a_shops_own_wording_is_used_with_the_same_values() -> None:
    mine = {"utter_order_shipped_with_carrier": [
        {"text": "Good news: #{order_number} left us {shipped} via {carrier}!"}]}
    validate("utter_order_shipped_with_carrier", mine["utter_order_shipped_with_carrier"],
             domain_texts())
    text = read(describe_order(make(OrderState.SHIPPED, shipped_at=NOW,
                                    shipment=Shipment("DHL", None)), NOW), mine)
    assert text == "Good news: #1001 left us today via DHL!"


@pytest.mark.parametrize(("why", "says"), [
    (Ineligible.CANCELLED, "was cancelled, so there's nothing to send back"),
    (Ineligible.NOT_DELIVERED, "Once it arrives you'll have 30 days to return it."),
    (Ineligible.WINDOW_CLOSED, "our return window is 30 days, so it closed on"),
    (Ineligible.ALREADY_RETURNED, "Everything in order #1001 has already been returned."),
])
def test_why_an_order_cannot_be_returned(why: Ineligible, says: str) -> None:
    tenant = Tenant(id="t1", slug="shop", name="Shop", greeting=None, return_window_days=30,
                    order_backend="demo", credentials_encrypted=None)
    order = make(OrderState.DELIVERED, delivered_at=datetime(2026, 9, 1, 12, 0))
    text = read(explain_ineligible(why, order, tenant))
    assert says in text and "{" not in text
    if why is Ineligible.WINDOW_CLOSED:
        assert "delivered on 01 September 2026" in text and "closed on 01 October 2026" in text
