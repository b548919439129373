"""What the visitor reads for each order state."""

from __future__ import annotations

from datetime import datetime, timedelta

from actions.commerce.base import LineItem, Order, OrderState, Shipment
from actions.order_status import describe_order
from core.db import utcnow

NOW = utcnow()


def make(state: OrderState, *, shipment: Shipment | None = None,
         shipped_at: datetime | None = None, delivered_at: datetime | None = None,
         cancelled_at: datetime | None = None) -> Order:
    return Order(number="1001", email="alex@example.com", state=state,
                 placed_at=NOW - timedelta(days=4),
                 items=(LineItem("1", "Running shoes"), LineItem("2", "Socks", quantity=2)),
                 shipment=shipment, shipped_at=shipped_at, delivered_at=delivered_at,
                 cancelled_at=cancelled_at)


def test_shipped_names_carrier_tracking_and_link() -> None:
    shipment = Shipment("UPS", "1Z999AA10123456784", "https://ups.example/t")
    text = describe_order(make(OrderState.SHIPPED, shipped_at=NOW - timedelta(days=2),
                               shipment=shipment), NOW)
    assert "shipped" in text and "2 days ago" in text and "UPS" in text
    assert "1Z999AA10123456784" in text and "https://ups.example/t" in text
    assert "Socks ×2" in text


def test_pending_says_not_shipped_and_no_tracking() -> None:
    text = describe_order(make(OrderState.PENDING), NOW)
    assert "hasn't shipped yet" in text and "tracking number:" not in text


def test_cancelled_and_delivered() -> None:
    assert "cancelled" in describe_order(make(OrderState.CANCELLED, cancelled_at=NOW), NOW)
    assert "delivered yesterday" in describe_order(
        make(OrderState.DELIVERED, delivered_at=NOW - timedelta(days=1)), NOW)
