"""Records about conversations that several processes write: messages and handoff requests.

The gateway stores every inbound and outbound message; actions record handoff requests.
The agent inbox (a later issue) reads both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, UniqueConstraint, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("tenant_id", "channel", "direction", "message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    sender_id: Mapped[str] = mapped_column(String(255), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    message_id: Mapped[str | None] = mapped_column(String(255))  # provider id, for dedupe
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Provider channels answer in the background: set once the reply went out (or could not),
    # so a gateway that starts after a crash can answer what was acknowledged but not handled.
    handled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class HandoffRow(Base):
    __tablename__ = "handoff_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    sender_id: Mapped[str] = mapped_column(String(255), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(64))  # "visitor_asked", "verification_failed", ...
    last_message: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | taken | resolved
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DuplicateMessage(Exception):
    """This provider message id was already stored for the tenant and channel."""


async def record_message(
    sessions: async_sessionmaker,
    *,
    tenant_id: str,
    sender_id: str,
    channel: str,
    direction: str,
    text: str | None,
    message_id: str | None = None,
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """Store one message; raises DuplicateMessage when `message_id` was seen before.

    `at` is when it was said, for a message stored after the fact (a bot reply stored once it
    went out), so a conversation reads in order by created_at even when the visitor's next
    message was stored first."""
    # A Core INSERT, not the ORM unit of work: this runs on every turn's hot path.
    statement = (
        insert(MessageRow)
        .values(
            tenant_id=tenant_id,
            sender_id=sender_id,
            channel=channel,
            direction=direction,
            text=text,
            message_id=message_id,
            payload=payload,
            created_at=at or utcnow(),
        )
        .returning(MessageRow.id)
    )
    async with sessions() as session:
        try:
            message_pk = (await session.execute(statement)).scalar_one()
            await session.commit()
        except IntegrityError as exc:
            raise DuplicateMessage(message_id) from exc
    return message_pk


async def open_handoff(
    sessions: async_sessionmaker,
    *,
    tenant_id: str,
    sender_id: str,
    channel: str,
    reason: str,
    last_message: str | None,
) -> tuple[HandoffRow, bool]:
    """The open handoff request for this conversation, creating one if none is open.

    Returns (row, created).
    """
    async with sessions() as session:
        existing = (
            await session.execute(
                select(HandoffRow).where(
                    HandoffRow.tenant_id == tenant_id,
                    HandoffRow.sender_id == sender_id,
                    HandoffRow.status != "resolved",
                )
            )
        ).scalars().first()
        if existing is not None:
            return existing, False
        row = HandoffRow(
            tenant_id=tenant_id,
            sender_id=sender_id,
            channel=channel,
            reason=reason,
            last_message=last_message,
        )
        session.add(row)
        await session.commit()
        return row, True
