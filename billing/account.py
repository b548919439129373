"""A shop's billing as the rest of the code sees it: its plan now, its subscription's state,
and a short-lived per-process cache for the hot path (the gateway asks on every new
conversation)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from billing.plans import NONE, UNLIMITED, Plan, Pricing, effective_plan
from billing.tables import BillingAccountRow
from core.db import utcnow


@dataclass(frozen=True)
class BillingState:
    plan: Plan  # the plan whose limits bind the shop now
    subscribed_plan: str | None  # the subscription's plan, whatever its state
    status: str  # Stripe's subscription status, or "none"
    customer_id: str | None
    subscription_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    cancel_at_period_end: bool
    past_due_since: datetime | None
    grace_ends: datetime | None  # past_due: when the limits tighten


class Accounts:
    """Reads shops' billing state. `pricing` None: billing is off, every shop unlimited.

    `state` reads the database; `cached` serves a state read in the last `ttl` seconds
    (a webhook's change reaches other processes within that; `forget` drops one at once in
    the process that handled it)."""

    def __init__(self, sessions: async_sessionmaker, pricing: Pricing | None,
                 grace: timedelta, ttl: float = 30.0, max_tenants: int = 4096,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.pricing = pricing
        self.grace = grace
        self.ttl = ttl
        self.max_tenants = max_tenants
        self._clock = clock
        self._now = now
        self._cache: OrderedDict[str, tuple[float, BillingState]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.pricing is not None

    async def state(self, tenant_id: str) -> BillingState:
        async with self.sessions() as session:
            row = (await session.execute(select(BillingAccountRow).where(
                BillingAccountRow.tenant_id == tenant_id))).scalar_one_or_none()
        return self.state_of(row)

    def state_of(self, row: BillingAccountRow | None) -> BillingState:
        if self.pricing is None:
            plan = UNLIMITED
        else:
            plan = effective_plan(self.pricing, row, self._now(), self.grace)
        since = row.past_due_since if row is not None else None
        return BillingState(
            plan=plan,
            subscribed_plan=row.plan if row is not None else None,
            status=row.status if row is not None else NONE,
            customer_id=row.stripe_customer_id if row is not None else None,
            subscription_id=row.stripe_subscription_id if row is not None else None,
            period_start=row.current_period_start if row is not None else None,
            period_end=row.current_period_end if row is not None else None,
            cancel_at_period_end=bool(row.cancel_at_period_end) if row is not None else False,
            past_due_since=since,
            grace_ends=(since + self.grace
                        if since is not None and row is not None and row.status == "past_due"
                        else None))

    async def cached(self, tenant_id: str) -> BillingState:
        hit = self._cache.get(tenant_id)
        if hit is not None and self._clock() - hit[0] < self.ttl:
            self._cache.move_to_end(tenant_id)
            return hit[1]
        state = await self.state(tenant_id)
        self._cache[tenant_id] = (self._clock(), state)
        self._cache.move_to_end(tenant_id)
        while len(self._cache) > self.max_tenants:
            self._cache.popitem(last=False)
        return state

    def forget(self, tenant_id: str) -> None:
        self._cache.pop(tenant_id, None)


def month_of(when: datetime) -> str:
    """The calendar month (UTC) usage counts in: "2026-11"."""
    return when.strftime("%Y-%m")
