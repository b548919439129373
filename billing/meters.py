"""Usage reported to Stripe's Billing Meters: conversations and the LLM's tokens, each once.

Usage is written as it happens into `meter_events` (billing/tables.py): a conversation's row in
the transaction that counts it (billing/conversations.py); an LLM answer's tokens are copied
here from `llm_usage` (knowledge/ may not import billing, so the action server only records
its spend, and the reporter turns new llm_usage rows into meter events: meter "llm_tokens",
value input + output, identifier "llm-<llm_usage id>"; the identifier is unique, so two
reporters copying the same row write it once).

`MeterReporter.report_once` (every few seconds in the admin process, `run`) then sends the
unreported rows oldest first with `StripeApi.meter_event`, using the event names of the
pricing's `meters`:
- reported_at is set only after Stripe took it; a failure adds an attempt and keeps the error,
  and the row is tried again later, waiting longer after each failure (BACKOFF), always with
  the SAME identifier: Stripe dedupes on it, so a call that failed after Stripe recorded it
  (a timeout) counts once however often it is retried;
- Stripe unreachable or failing: the rest of the pass waits for the next one;
- rows of shops without a Stripe customer (never subscribed) are marked done without a call,
  "no Stripe customer" in their error column; likewise a meter the pricing has no event
  name for;
- a row Stripe refused MAX_ATTEMPTS times is left alone (its error says why): an operator's
  matter, not one to hammer Stripe with.
Several admin processes: on PostgreSQL the rows a pass sends are claimed with SELECT ... FOR
UPDATE SKIP LOCKED for the pass (another process takes the next ones); SQLite (one host,
usually one admin process) reads them without a lock. A row sent twice anyway (a crash
between Stripe's answer and our commit) carries its identifier twice: Stripe counts it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import String, cast, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from billing.plans import Pricing
from billing.stripe_api import StripeFailure, StripeUnavailable
from billing.tables import BillingAccountRow, MeterEventRow
from core.db import utcnow
from knowledge.tables import LlmUsageRow

log = logging.getLogger(__name__)

EVERY_SECONDS = 5.0
BATCH = 50
MAX_ATTEMPTS = 20
# Seconds before a failed row is tried again, by its failures so far (the last repeats).
BACKOFF: tuple[float, ...] = (5.0, 15.0, 60.0, 300.0, 900.0)
# llm_usage ids below the newest copied one looked at again: on PostgreSQL ids are taken
# before their transaction commits, so a smaller id may become visible after a larger one.
LOOKBACK = 1000
NO_CUSTOMER = "no Stripe customer"
LLM_METER = "llm_tokens"


class MeterApi(Protocol):
    """What the reporter needs of billing/stripe_api.py `StripeApi`."""

    async def meter_event(self, event_name: str, customer_id: str, value: int,
                          identifier: str, timestamp: datetime) -> None:
        ...


@dataclass(frozen=True)
class Pass:
    """What one pass did."""

    sent: int = 0
    skipped: int = 0  # marked done without a call (no customer, no meter)
    failed: int = 0


@dataclass(frozen=True)
class _Pending:
    """An unreported row, read as plain values (they outlive the read's transaction)."""

    id: int
    identifier: str
    tenant_id: str
    meter: str
    value: int
    occurred_at: datetime
    attempts: int
    customer_id: str | None


@dataclass(frozen=True)
class _Outcome:
    id: int
    reported_at: datetime | None
    error: str | None
    failed: bool


class MeterReporter:
    def __init__(self, sessions: async_sessionmaker, api: MeterApi, pricing: Pricing,
                 batch: int = BATCH, backoff: tuple[float, ...] = BACKOFF,
                 call_attempts: int = 2, call_wait: float = 0.5,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.api = api
        self.pricing = pricing
        self.batch = batch
        self.backoff = backoff
        self.call_attempts = call_attempts
        self.call_wait = call_wait
        self._now = now
        self._llm_mark: int | None = None  # newest llm_usage id copied (None: not read yet)
        self._not_before: dict[int, datetime] = {}  # failed rows: when to try again

    # -- llm_usage -> meter_events ----------------------------------------------------------
    async def collect_llm_usage(self) -> int:
        """Copy new llm_usage rows into meter_events; how many were new."""
        async with self.sessions() as session:
            if self._llm_mark is None:
                self._llm_mark = await self._copied_mark(session)
            identifier = literal("llm-") + cast(LlmUsageRow.id, String)
            rows = (await session.execute(
                select(LlmUsageRow.id, LlmUsageRow.tenant_id, LlmUsageRow.input_tokens,
                       LlmUsageRow.output_tokens, LlmUsageRow.created_at)
                .where(LlmUsageRow.id > self._llm_mark - LOOKBACK,
                       ~exists().where(MeterEventRow.identifier == identifier))
                .order_by(LlmUsageRow.id).limit(self.batch * 10))).all()
            if not rows:
                return 0
            values = [{"identifier": f"llm-{r.id}", "tenant_id": r.tenant_id,
                       "meter": LLM_METER, "value": int(r.input_tokens + r.output_tokens),
                       "occurred_at": r.created_at, "attempts": 0} for r in rows]
            insert = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
            written = (await session.execute(
                insert(MeterEventRow).values(values)
                .on_conflict_do_nothing(index_elements=["identifier"])
                .returning(MeterEventRow.id))).all()
            await session.commit()
        self._llm_mark = max(self._llm_mark, max(r.id for r in rows))
        return len(written)

    async def _copied_mark(self, session: AsyncSession) -> int:
        """The newest llm_usage id already copied (from the newest llm meter event)."""
        newest = (await session.execute(
            select(MeterEventRow.identifier).where(MeterEventRow.meter == LLM_METER)
            .order_by(MeterEventRow.id.desc()).limit(1))).scalar_one_or_none()
        if newest is None:
            return 0
        try:
            return int(newest.removeprefix("llm-"))
        except ValueError:
            return 0

    # -- meter_events -> Stripe ---------------------------------------------------------------
    async def report_once(self) -> Pass:
        """Copy new LLM usage, then send one batch of unreported rows."""
        await self.collect_llm_usage()
        async with self.sessions() as session:
            if _dialect(session) == "postgresql":
                async with session.begin():  # the rows stay claimed while they are sent
                    pending = await self._pending(session, lock=True)
                    outcomes = await self._send(pending)
                    await self._record(session, outcomes)
            else:
                pending = await self._pending(session, lock=False)
                await session.rollback()  # no transaction held while Stripe answers
                outcomes = await self._send(pending)
                async with session.begin():
                    await self._record(session, outcomes)
        done = Pass(sent=sum(1 for o in outcomes if o.reported_at and not o.error),
                    skipped=sum(1 for o in outcomes if o.reported_at and o.error),
                    failed=sum(1 for o in outcomes if o.failed))
        if outcomes:
            log.info("usage reported to stripe", extra={
                "sent": done.sent, "skipped": done.skipped, "failed": done.failed})
        return done

    async def _pending(self, session: AsyncSession, lock: bool) -> list[_Pending]:
        now = self._now()
        waiting = [i for i, at in self._not_before.items() if at > now]
        query = (select(MeterEventRow.id, MeterEventRow.identifier, MeterEventRow.tenant_id,
                        MeterEventRow.meter, MeterEventRow.value, MeterEventRow.occurred_at,
                        MeterEventRow.attempts, BillingAccountRow.stripe_customer_id)
                 .outerjoin(BillingAccountRow,
                            BillingAccountRow.tenant_id == MeterEventRow.tenant_id)
                 .where(MeterEventRow.reported_at.is_(None),
                        MeterEventRow.attempts < MAX_ATTEMPTS)
                 .order_by(MeterEventRow.id).limit(self.batch))
        if waiting:
            query = query.where(MeterEventRow.id.not_in(waiting))
        if lock:
            query = query.with_for_update(skip_locked=True, of=MeterEventRow)
        return [_Pending(*found) for found in (await session.execute(query)).all()]

    async def _send(self, pending: list[_Pending]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        for row in pending:
            customer = row.customer_id
            now = self._now()
            event_name = self.pricing.meters.get(row.meter)
            if customer is None or event_name is None:
                reason = NO_CUSTOMER if customer is None else f"no meter for {row.meter}"
                outcomes.append(_Outcome(row.id, now, reason, failed=False))
                continue
            try:
                await self._call(event_name, customer, row)
            except StripeFailure as exc:
                attempts = row.attempts + 1
                wait = self.backoff[min(attempts, len(self.backoff)) - 1]
                self._not_before[row.id] = now + timedelta(seconds=wait)
                outcomes.append(_Outcome(row.id, None, exc.detail[:500], failed=True))
                log.warning("meter event not reported; tried again later", extra={
                    "tenant_id": row.tenant_id, "identifier": row.identifier,
                    "attempt": attempts, "in_s": wait, "error": type(exc).__name__})
                if isinstance(exc, StripeUnavailable):
                    break  # Stripe is away: the rest waits for the next pass
                continue
            self._not_before.pop(row.id, None)
            outcomes.append(_Outcome(row.id, now, None, failed=False))
        return outcomes

    async def _call(self, event_name: str, customer: str, row: _Pending) -> None:
        async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.call_attempts), reraise=True,
                wait=wait_exponential(multiplier=self.call_wait, max=5),
                retry=retry_if_exception_type(StripeUnavailable)):
            with attempt:
                await self.api.meter_event(event_name, customer, int(row.value),
                                           row.identifier, row.occurred_at)

    async def _record(self, session: AsyncSession, outcomes: list[_Outcome]) -> None:
        for outcome in outcomes:
            values: dict[str, object] = {"error": outcome.error}
            if outcome.failed:
                values["attempts"] = MeterEventRow.attempts + 1
            else:
                values["reported_at"] = outcome.reported_at
            await session.execute(update(MeterEventRow).where(
                MeterEventRow.id == outcome.id, MeterEventRow.reported_at.is_(None))
                .values(**values))

    async def run(self, every: float = EVERY_SECONDS) -> None:
        """Report every `every` seconds until cancelled."""
        while True:
            try:
                await self.report_once()
            except Exception:  # the database may be away for a moment; the next pass tries
                log.exception("usage reporting pass failed")
            await asyncio.sleep(every)


async def unreported(sessions: async_sessionmaker) -> int:
    """Meter events not reported yet (for health and tests)."""
    async with sessions() as session:
        return int((await session.execute(select(func.count(MeterEventRow.id)).where(
            MeterEventRow.reported_at.is_(None)))).scalar_one())


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    return bind.dialect.name if bind is not None else ""
