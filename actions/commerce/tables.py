"""Our own commerce tables: the built-in demo store's orders, and return requests for every
backend."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, UtcDateTime, utcnow


class DemoOrderRow(Base):
    __tablename__ = "demo_orders"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id"), index=True)
    number: Mapped[str] = mapped_column(String(32))
    email: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # an OrderState value
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    shipped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    carrier: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    tracking_url: Mapped[str | None] = mapped_column(Text)

    items: Mapped[list[DemoOrderItemRow]] = relationship(
        back_populates="order", cascade="all, delete-orphan", lazy="selectin",
        order_by="DemoOrderItemRow.id",
    )


class DemoOrderItemRow(Base):
    __tablename__ = "demo_order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("demo_orders.id", ondelete="CASCADE"),
                                          index=True)
    sku: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer, default=1)

    order: Mapped[DemoOrderRow] = relationship(back_populates="items")


class ReturnRequestRow(Base):
    __tablename__ = "return_requests"
    # One return per (order, set of items): asking twice gives the same reference.
    __table_args__ = (UniqueConstraint("tenant_id", "order_number", "items_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id"), index=True)
    order_number: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    items_key: Mapped[str] = mapped_column(String(512))  # sorted line item ids, "|"-joined
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{id, name, quantity}]
    reason: Mapped[str] = mapped_column(Text)
    # requested: waiting for staff; platform: created on the shop platform (platform_id set)
    status: Mapped[str] = mapped_column(String(16), default="requested")
    platform_id: Mapped[str | None] = mapped_column(String(128))
    sender_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
