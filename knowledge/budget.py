"""A shop's monthly LLM budget: tokens spent this calendar month (UTC), and the answer to
"may this shop still ask Claude?".

Every LLM answer's spend is recorded as one `llm_usage` row (input + output tokens, the
model), so the database is the truth, shared by every action server. Reading the month's sum
on each question would add a query to the hot path, so each process keeps a per-shop sum,
read from the database at most every `refresh` seconds and increased in process by the
answers it records itself. Between two reads the other processes' spend is not seen: a shop
may overshoot its budget by what the other processes spend in one `refresh` window, a small
price for no query per question. A shop without a budget (None) costs nothing here.

The budget is the smaller of the shop's own setting (llm_monthly_token_budget) and, with
billing on, its plan's llm_tokens_per_month: `plan_limit` is handed in by the action server
(actions/runtime.py), as knowledge/ does not import billing.

Once the month's spend reaches the budget, answers are extractive (the no-key mode) until
the month ends; the first refusal of a month is logged as a warning for each process.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.db import utcnow
from knowledge.tables import LlmUsageRow
from tenants.models import Tenant

log = logging.getLogger(__name__)


@dataclass
class _Spend:
    month: datetime  # the first instant of the month it counts
    tokens: int
    read_at: float  # monotonic time of the last database read
    warned: bool = False


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


PlanLimit = Callable[[str], Awaitable[int | None]]  # shop id -> its plan's monthly tokens


class LlmBudget:
    def __init__(self, sessions: async_sessionmaker, refresh: float = 60.0,
                 max_tenants: int = 4096, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = utcnow,
                 plan_limit: PlanLimit | None = None) -> None:
        self.sessions = sessions
        self.plan_limit = plan_limit
        self.refresh = refresh
        self.max_tenants = max_tenants
        self._clock = clock
        self._now = now
        self._spent: OrderedDict[str, _Spend] = OrderedDict()  # LRU: memory stays bounded

    async def exhausted(self, tenant: Tenant) -> bool:
        """Has the shop spent its tokens for this month? (False when it has no budget.)"""
        budget = await self.budget_of(tenant)
        if budget is None:
            return False
        spend = await self._current(tenant.id)
        if spend.tokens < budget:
            return False
        if not spend.warned:
            spend.warned = True
            log.warning("llm budget exhausted: answers are extractive until the month ends",
                        extra={"tenant_id": tenant.id, "budget": budget, "spent": spend.tokens,
                               "month": spend.month.strftime("%Y-%m")})
        return True

    async def budget_of(self, tenant: Tenant) -> int | None:
        """The shop's monthly tokens: the smaller of its setting and its plan's limit."""
        limits = [tenant.llm_monthly_token_budget]
        if self.plan_limit is not None:
            limits.append(await self.plan_limit(tenant.id))
        known = [limit for limit in limits if limit is not None]
        return min(known) if known else None

    async def spent(self, tenant_id: str) -> int:
        """Tokens this month as this process knows them (at most `refresh` seconds behind)."""
        return (await self._current(tenant_id)).tokens

    async def record(self, tenant: Tenant, model: str, input_tokens: int,
                     output_tokens: int) -> None:
        """Store one answer's spend. A failed insert is logged, never raised: the visitor's
        answer is already paid for and should still be shown."""
        now = self._now()
        try:
            async with self.sessions() as session:
                session.add(LlmUsageRow(tenant_id=tenant.id, model=model[:100],
                                        input_tokens=input_tokens, output_tokens=output_tokens,
                                        created_at=now))
                await session.commit()
        except (SQLAlchemyError, OSError):
            log.exception("llm usage not recorded", extra={"tenant_id": tenant.id})
        spend = self._spent.get(tenant.id)
        if spend is not None and spend.month == month_start(now):
            spend.tokens += input_tokens + output_tokens

    async def _current(self, tenant_id: str) -> _Spend:
        month = month_start(self._now())
        spend = self._spent.get(tenant_id)
        if spend is not None:
            self._spent.move_to_end(tenant_id)
            if spend.month == month and self._clock() - spend.read_at < self.refresh:
                return spend
            if spend.month == month:
                # Stale: questions arriving during the read use the old sum (one read, not N).
                spend.read_at = self._clock()
        tokens = await self._read(tenant_id, month)
        if tokens is None:  # database unreachable: keep what we knew, try again next refresh
            if spend is None or spend.month != month:
                spend = self._store(tenant_id, _Spend(month, 0, self._clock()))
            return spend
        if spend is None or spend.month != month:
            spend = self._store(tenant_id, _Spend(month, tokens, self._clock()))
        else:
            spend.tokens, spend.read_at = tokens, self._clock()
        return spend

    def _store(self, tenant_id: str, spend: _Spend) -> _Spend:
        self._spent[tenant_id] = spend
        self._spent.move_to_end(tenant_id)
        while len(self._spent) > self.max_tenants:
            self._spent.popitem(last=False)
        return spend

    async def _read(self, tenant_id: str, month: datetime) -> int | None:
        total = func.coalesce(func.sum(LlmUsageRow.input_tokens + LlmUsageRow.output_tokens), 0)
        try:
            async with self.sessions() as session:
                return int((await session.execute(
                    select(total).where(LlmUsageRow.tenant_id == tenant_id,
                                        LlmUsageRow.created_at >= month))).scalar_one())
        except (SQLAlchemyError, OSError):
            log.exception("llm usage not readable", extra={"tenant_id": tenant_id})
            return None
