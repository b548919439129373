"""The built-in demo store: orders kept in our own database, for the `demo` tenant and trials."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from actions.commerce.base import (
    LineItem,
    Order,
    OrderState,
    PlatformReturn,
    Shipment,
)
from actions.commerce.tables import DemoOrderRow


class DemoStoreBackend:
    kind = "demo"

    def __init__(self, sessions: async_sessionmaker, tenant_id: str) -> None:
        self._sessions = sessions
        self._tenant_id = tenant_id

    async def find_order(self, number: str, email: str) -> Order | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(DemoOrderRow).where(
                        DemoOrderRow.tenant_id == self._tenant_id,
                        DemoOrderRow.number == number,
                        func.lower(DemoOrderRow.email) == email.strip().lower(),
                    )
                )
            ).scalar_one_or_none()
            if row is None:
                return None
            return _to_order(row)

    async def create_return(
        self, order: Order, items: Sequence[LineItem], reason: str, idempotency_key: str
    ) -> PlatformReturn | None:
        # Our own store has no separate returns system: the return request we record is it.
        return None

    async def aclose(self) -> None:
        return None


def _to_order(row: DemoOrderRow) -> Order:
    shipment = (
        Shipment(carrier=row.carrier, tracking_number=row.tracking_number,
                 tracking_url=row.tracking_url)
        if row.carrier or row.tracking_number
        else None
    )
    return Order(
        number=row.number,
        email=row.email,
        state=OrderState(row.status),
        placed_at=row.placed_at,
        items=tuple(
            LineItem(id=str(item.id), name=item.name, quantity=item.quantity, sku=item.sku)
            for item in row.items
        ),
        shipment=shipment,
        shipped_at=row.shipped_at,
        delivered_at=row.delivered_at,
        cancelled_at=row.cancelled_at,
        backend_id=str(row.id),
    )
