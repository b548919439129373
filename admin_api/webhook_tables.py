"""Shops' webhooks: subscriptions, one delivery per event and subscription, one row per attempt.

Kept apart from the delivery code (admin_api/webhooks.py) so that the migrations, which import
every table, do not import the HTTP client and the API's routes with them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class WebhookRow(Base):
    """A shop's subscription: where to POST which event kinds, and how far it has read the
    event log (`last_event_id`: every event up to it has its delivery row)."""

    __tablename__ = "webhooks"
    # AUTOINCREMENT: the id is in the API and the audit log; SQLite would give a deleted
    # subscription's id to the next one (migration 0015).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON)  # kinds of core/handoffs.py EVENT_KINDS
    # {"secret": "whsec_…"} sealed with the shop credentials' box (tenants/crypto.py).
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebhookDeliveryRow(Base):
    """One event for one subscription: pending until the shop's server answers 2xx
    (delivered) or until it has been tried for GIVE_UP (failed). A worker holds it while
    sending (`lease_owner` until `lease_until`)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        # AUTOINCREMENT: shops dedupe by the id (X-Switchboard-Delivery); SQLite would give a
        # pruned delivery's id to the next one (migration 0015).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(Integer, ForeignKey("webhooks.id",
                                                                ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(36))
    event_id: Mapped[int] = mapped_column(Integer)  # conversation_events.id
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer)  # the last HTTP status answered
    error: Mapped[str | None] = mapped_column(String(500))  # why the last attempt failed
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookAttemptRow(Base):
    """One POST of a delivery and how it ended (the delivery log shows them)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1 for the first try
    http_status: Mapped[int | None] = mapped_column(Integer)  # None: no answer
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
