"""Billing's tables: each shop's subscription as Stripe last told it, Stripe's events as they
arrived, the conversations a shop's plan counts, usage waiting to be reported to Stripe's
meters, and the limit warnings already mailed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow


class BillingAccountRow(Base):
    """A shop's subscription state. No row: never subscribed (status none, default plan).

    Written only from Stripe's events (billing/events.py) and when a Checkout creates the
    shop's Stripe customer; `state_event_created` is the `created` time of the newest event
    that set the subscription's state, so an older event arriving late changes nothing."""

    __tablename__ = "billing_accounts"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)
    plan: Mapped[str | None] = mapped_column(String(64))  # by the subscription's Price
    status: Mapped[str] = mapped_column(String(32), default="none")  # Stripe's, or "none"
    current_period_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    current_period_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    past_due_since: Mapped[datetime | None] = mapped_column(UtcDateTime)  # first failed payment
    state_event_created: Mapped[int] = mapped_column(BigInteger, default=0)  # unix seconds
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class StripeEventRow(Base):
    """Every verified Stripe event, stored by its id before it is handled: a redelivery finds
    its id and is acknowledged without being handled again."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # evt_...
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger)  # Stripe's, unix seconds
    tenant_id: Mapped[str | None] = mapped_column(String(36), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(Text)  # why handling failed (retried later)


class BilledConversationRow(Base):
    """One visitor conversation as the plan counts it: a sender's messages without an hour
    of silence, in the calendar month (UTC) it started. `over_limit`: it started past the
    month's limit and got the polite refusal instead of the bot. `visitor` is the sender id's
    keyed pseudonym (core/logs.py `visitor`), not the phone number or email address: a
    record kept for billing needs no personal data, so retention and erasure need not touch
    it and a month's count stays what it was."""

    __tablename__ = "billed_conversations"
    __table_args__ = (
        Index("ix_billed_conversations_tenant_id_visitor", "tenant_id", "visitor"),
        Index("ix_billed_conversations_tenant_id_month", "tenant_id", "month"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    visitor: Mapped[str] = mapped_column(String(200))  # "<tenant>:<channel>:v-<hash>"
    channel: Mapped[str] = mapped_column(String(32))
    month: Mapped[str] = mapped_column(String(7))  # "2026-11"
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    over_limit: Mapped[bool] = mapped_column(Boolean, default=False)


class MeterEventRow(Base):
    """Usage to report to a Stripe Billing Meter, written as it happens (in the transaction
    that records it) and sent by the reporter (billing/meters.py). `identifier` is what Stripe
    dedupes on: a retried report sends the same one, so usage counts once."""

    __tablename__ = "meter_events"
    __table_args__ = (Index("ix_meter_events_reported_at_id", "reported_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identifier: Mapped[str] = mapped_column(String(100), unique=True)  # "conversation-17"
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    meter: Mapped[str] = mapped_column(String(32))  # "conversations" | "llm_tokens"
    value: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    reported_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))


class UsageNoticeRow(Base):
    """A limit warning mailed to the shop's owners: once per month, limit and threshold."""

    __tablename__ = "usage_notices"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    limit: Mapped[str] = mapped_column(String(32), primary_key=True)  # a Limits field
    threshold: Mapped[int] = mapped_column(Integer, primary_key=True)  # 80 | 100 (percent)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
