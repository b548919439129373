"""Return eligibility and the ledger's idempotency, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from actions.commerce.base import BackendError, LineItem, Order, OrderState, PlatformReturn
from actions.commerce.demo_store import DemoStoreBackend
from actions.commerce.returns import (
    Ineligible,
    ItemsAlreadyReturned,
    ReturnLedger,
    order_eligibility,
)
from actions.returns import match_items
from core.db import utcnow
from devtools.demo_shop import DEMO_TENANT_ID
from tests.databases import database_params, migrated_url, seeded_sessions

NOW = utcnow()


def order(state: OrderState, delivered_days_ago: int | None = None, items: int = 2) -> Order:
    return Order(
        number="1002",
        email="sam@example.com",
        state=state,
        placed_at=NOW - timedelta(days=40),
        items=tuple(LineItem(id=str(i), name=n)
                    for i, n in enumerate(["Denim jacket", "Scarf"][:items])),
        delivered_at=(NOW - timedelta(days=delivered_days_ago)
                      if delivered_days_ago is not None else None),
    )


@pytest.mark.parametrize(
    ("state", "delivered", "expected"),
    [
        (OrderState.DELIVERED, 10, None),
        (OrderState.DELIVERED, 30, None),
        (OrderState.DELIVERED, 31, Ineligible.WINDOW_CLOSED),
        (OrderState.SHIPPED, None, Ineligible.NOT_DELIVERED),
        (OrderState.PENDING, None, Ineligible.NOT_DELIVERED),
        (OrderState.CANCELLED, None, Ineligible.CANCELLED),
        (OrderState.RETURNED, 5, Ineligible.ALREADY_RETURNED),
    ],
)
def test_eligibility(state: OrderState, delivered: int | None, expected: Ineligible | None) -> None:
    assert order_eligibility(order(state, delivered), 30, NOW - timedelta(hours=1)) == expected


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("the jacket", ["Denim jacket"]),
        (["scarves"], ["Scarf"]),
        ("both of them", ["Denim jacket", "Scarf"]),
        ("the scarf and the denim jacket", ["Denim jacket", "Scarf"]),
        ("a toaster", []),
    ],
)
def test_match_items(said: str | list[str], expected: list[str]) -> None:
    assert [i.name for i in match_items(said, order(OrderState.DELIVERED, 3))] == expected


def test_match_items_it_means_the_only_item() -> None:
    only = order(OrderState.DELIVERED, 3, items=1)
    assert [i.name for i in match_items("I want to return it", only)] == ["Denim jacket"]


class RefusingBackend(DemoStoreBackend):
    async def create_return(self, *args: object, **kwargs: object) -> PlatformReturn | None:
        raise BackendError("platform said no")


@pytest.mark.parametrize("kind", database_params())
@pytest.mark.asyncio
async def test_ledger_is_idempotent_and_refuses_overlaps(kind: str, tmp_path: Path) -> None:
    async with seeded_sessions(migrated_url(kind, tmp_path)) as (_, sessions):
        backend = DemoStoreBackend(sessions, DEMO_TENANT_ID)
        found = await backend.find_order("1002", "SAM@example.com")
        assert found is not None and found.state is OrderState.DELIVERED
        assert await backend.find_order("1002", "alex@example.com") is None
        ledger = ReturnLedger(sessions, DEMO_TENANT_ID)
        jacket = [i for i in found.items if i.name == "Denim jacket"]

        # Two identical requests at the same moment: one return, one reference.
        first, second = await asyncio.gather(
            ledger.request(order=found, items=jacket, reason="too big", backend=backend,
                           sender_id="s"),
            ledger.request(order=found, items=jacket, reason="too big", backend=backend,
                           sender_id="s"),
        )
        assert first.reference == second.reference
        assert {first.created, second.created} == {True, False}

        with pytest.raises(ItemsAlreadyReturned) as overlap:
            await ledger.request(order=found, items=list(found.items), reason="x",
                                 backend=backend, sender_id="s")
        assert overlap.value.reference == first.reference
        assert overlap.value.names == ("Denim jacket",)

        scarf = [i for i in found.items if i.name == "Scarf"]
        with pytest.raises(BackendError):
            await ledger.request(order=found, items=scarf, reason="x",
                                 backend=RefusingBackend(sessions, DEMO_TENANT_ID), sender_id="s")
        # The refused request left nothing behind: a later attempt creates it afresh.
        later = await ledger.request(order=found, items=scarf, reason="x", backend=backend,
                                     sender_id="s")
        assert later.created and later.reference != first.reference
