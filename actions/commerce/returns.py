"""Return eligibility and the ledger of return requests, the same for every backend.

Eligibility is decided here, from the order the backend reports and the tenant's return
window; the ledger makes "return these items" idempotent (same order and items, same
reference) and refuses items that are already in another return.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from actions.commerce.base import LineItem, Order, OrderBackend, OrderState
from actions.commerce.tables import ReturnRequestRow

log = logging.getLogger(__name__)

_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out on the phone


class Ineligible(enum.StrEnum):
    CANCELLED = "cancelled"
    NOT_DELIVERED = "not_delivered"
    WINDOW_CLOSED = "window_closed"
    ALREADY_RETURNED = "already_returned"


def window_end(order: Order, window_days: int) -> datetime | None:
    return order.delivered_at + timedelta(days=window_days) if order.delivered_at else None


def order_eligibility(order: Order, window_days: int, now: datetime) -> Ineligible | None:
    """Why this order cannot be returned at all, or None when it can."""
    if order.state is OrderState.CANCELLED:
        return Ineligible.CANCELLED
    if order.state is OrderState.RETURNED:
        return Ineligible.ALREADY_RETURNED
    if order.state is not OrderState.DELIVERED or order.delivered_at is None:
        return Ineligible.NOT_DELIVERED
    end = window_end(order, window_days)
    if end is not None and now > end:
        return Ineligible.WINDOW_CLOSED
    return None


def items_key(items: Sequence[LineItem]) -> str:
    return "|".join(sorted(item.id for item in items))


@dataclass(frozen=True)
class ReturnRecord:
    reference: str
    item_ids: frozenset[str]
    item_names: tuple[str, ...]
    status: str


@dataclass(frozen=True)
class ReturnOutcome:
    reference: str
    created: bool  # False: the same return already existed (idempotent repeat)
    status: str


class ItemsAlreadyReturned(Exception):
    def __init__(self, names: Sequence[str], reference: str) -> None:
        super().__init__(f"{', '.join(names)} already in return {reference}")
        self.names = tuple(names)
        self.reference = reference


def _new_reference(order_number: str) -> str:
    suffix = "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(4))
    return f"RMA-{order_number}-{suffix}"


class ReturnLedger:
    def __init__(self, sessions: async_sessionmaker, tenant_id: str) -> None:
        self._sessions = sessions
        self._tenant_id = tenant_id

    async def for_order(self, order_number: str) -> list[ReturnRecord]:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(ReturnRequestRow).where(
                        ReturnRequestRow.tenant_id == self._tenant_id,
                        ReturnRequestRow.order_number == order_number,
                    )
                )
            ).scalars().all()
        return [
            ReturnRecord(
                reference=row.reference,
                item_ids=frozenset(row.items_key.split("|")),
                item_names=tuple(item["name"] for item in row.items),
                status=row.status,
            )
            for row in rows
        ]

    async def request(
        self,
        *,
        order: Order,
        items: Sequence[LineItem],
        reason: str,
        backend: OrderBackend,
        sender_id: str | None,
    ) -> ReturnOutcome:
        """Record (or find) the return of `items`; creates it on the platform when supported.

        Raises ItemsAlreadyReturned when some items are in a different return already, and
        BackendError (after removing our reservation) when the platform refuses.
        """
        key = items_key(items)
        for record in await self.for_order(order.number):
            if record.item_ids == frozenset(key.split("|")):
                return ReturnOutcome(record.reference, created=False, status=record.status)
            overlap = [i.name for i in items if i.id in record.item_ids]
            if overlap:
                raise ItemsAlreadyReturned(overlap, record.reference)

        reference = _new_reference(order.number)
        async with self._sessions() as session:
            session.add(
                ReturnRequestRow(
                    tenant_id=self._tenant_id,
                    order_number=order.number,
                    reference=reference,
                    items_key=key,
                    items=[{"id": i.id, "name": i.name, "quantity": i.quantity} for i in items],
                    reason=reason,
                    status="requested",
                    sender_id=sender_id,
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                # A concurrent turn recorded the same return first: answer with its reference.
                await session.rollback()
                for record in await self.for_order(order.number):
                    if record.item_ids == frozenset(key.split("|")):
                        return ReturnOutcome(record.reference, created=False, status=record.status)
                raise

        try:
            platform = await backend.create_return(
                order, items, reason, idempotency_key=f"{self._tenant_id}:{order.number}:{key}"
            )
        except Exception:
            async with self._sessions() as session:
                await session.execute(
                    delete(ReturnRequestRow).where(ReturnRequestRow.reference == reference)
                )
                await session.commit()
            raise
        status = "requested"
        if platform is not None:
            status = "platform"
            async with self._sessions() as session:
                await session.execute(
                    update(ReturnRequestRow)
                    .where(ReturnRequestRow.reference == reference)
                    .values(status=status, platform_id=platform.platform_id)
                )
                await session.commit()
        log.info(
            "return recorded",
            extra={"tenant_id": self._tenant_id, "reference": reference,
                   "backend": backend.kind, "status": status},
        )
        return ReturnOutcome(reference, created=True, status=status)
