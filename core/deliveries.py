"""What happened to each message we sent out through a provider: one row per provider message.

The pipeline records a send (or why nothing could be sent); providers' status callbacks move
the row forward. Callbacks arrive out of order and sometimes before we have recorded the send,
so a status never moves backwards and an early callback creates the row the send then joins.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow

# How far along a message is; failures are final.
_RANK = {"pending": 0, "accepted": 1, "queued": 1, "sending": 2, "sent": 3, "delivered": 4,
         "read": 5, "undelivered": 6, "failed": 6, "not_sent": 6}


class DeliveryRow(Base):
    __tablename__ = "deliveries"
    # AUTOINCREMENT: SQLite would give erased deliveries' ids to the next ones (0015).
    __table_args__ = (UniqueConstraint("provider", "provider_message_id"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(32))
    sender_id: Mapped[str | None] = mapped_column(String(255), index=True)
    message_pk: Mapped[int | None] = mapped_column(Integer)  # our outbound messages row
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_detail: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


def _later(new: str, old: str) -> bool:
    return _RANK.get(new, 0) >= _RANK.get(old, 0)


async def record_send(
    sessions: async_sessionmaker, *, tenant_id: str, channel: str, provider: str,
    sender_id: str, message_pk: int | None, provider_message_id: str | None, status: str,
    attempts: int = 1, error_code: str | None = None, error_detail: str | None = None,
) -> None:
    """A message handed to the provider (or given up on: status failed / not_sent)."""
    now = utcnow()
    async with sessions() as session:
        try:
            session.add(DeliveryRow(
                tenant_id=tenant_id, channel=channel, provider=provider, sender_id=sender_id,
                message_pk=message_pk, provider_message_id=provider_message_id, status=status,
                error_code=error_code, error_detail=error_detail, attempts=attempts,
                created_at=now, updated_at=now))
            await session.commit()
            return
        except IntegrityError:
            await session.rollback()
        # A status callback was faster than us: join its row, keep the later status.
        row = (await session.execute(select(DeliveryRow).where(
            DeliveryRow.provider == provider,
            DeliveryRow.provider_message_id == provider_message_id))).scalar_one()
        row.sender_id, row.message_pk, row.attempts = sender_id, message_pk, attempts
        if _later(status, row.status):
            row.status = status
        await session.commit()


async def record_status(
    sessions: async_sessionmaker, *, tenant_id: str, channel: str, provider: str,
    provider_message_id: str, status: str, error_code: str | None = None,
    error_detail: str | None = None,
) -> bool:
    """Move a delivery forward; returns False when the message is another tenant's."""
    async with sessions() as session:
        row = (await session.execute(select(DeliveryRow).where(
            DeliveryRow.provider == provider,
            DeliveryRow.provider_message_id == provider_message_id))).scalar_one_or_none()
        if row is None:
            try:
                session.add(DeliveryRow(
                    tenant_id=tenant_id, channel=channel, provider=provider, sender_id=None,
                    message_pk=None, provider_message_id=provider_message_id, status=status,
                    error_code=error_code, error_detail=error_detail, attempts=0,
                    created_at=utcnow(), updated_at=utcnow()))
                await session.commit()
                return True
            except IntegrityError:  # the send was recorded meanwhile
                await session.rollback()
                return await record_status(
                    sessions, tenant_id=tenant_id, channel=channel, provider=provider,
                    provider_message_id=provider_message_id, status=status,
                    error_code=error_code, error_detail=error_detail)
        if row.tenant_id != tenant_id:
            return False
        if _later(status, row.status):
            await session.execute(update(DeliveryRow).where(DeliveryRow.id == row.id).values(
                status=status, error_code=error_code or row.error_code,
                error_detail=error_detail or row.error_detail, updated_at=utcnow()))
            await session.commit()
        return True


async def deliveries_for(sessions: async_sessionmaker, tenant_id: str,
                         sender_id: str) -> list[DeliveryRow]:
    """A conversation's deliveries, oldest first (agents' inbox, tests)."""
    async with sessions() as session:
        return list((await session.execute(select(DeliveryRow).where(
            DeliveryRow.tenant_id == tenant_id, DeliveryRow.sender_id == sender_id)
            .order_by(DeliveryRow.id))).scalars())
