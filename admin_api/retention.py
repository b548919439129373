"""Retention: a shop's conversations older than its `retention_days` are deleted.

`sweep` runs once an hour in the admin process (started by `install`'s listener) and is what
tests call directly. For every shop with a period it deletes, older than now - period:

- our messages, deliveries, handoff requests, agents' internal notes and the handoff event
  log (by their `created_at`: notes are free text about the visitor, and the events name the
  visitor's conversation and rating, so they go with the conversation, as an erase takes them);
- Rasa's tracker events (by their `timestamp`), which is also what bounds the tracker store's
  growth: Rasa itself never deletes events. A conversation still going on loses only its old
  turns; Rasa rebuilds its tracker from what is left (slots set before the cut are forgotten,
  which is the point);
- the link from old return requests to their conversation (`sender_id` set to null): the
  return itself is the shop's business record and stays.

A shop without a period (None) keeps everything. Each sweep that deleted something writes one
audit entry per shop, actor `system:retention`, with the counts.

With several admin processes, Redis (when configured) elects one sweeper an hour (SET NX with
an expiry); a sweep is idempotent anyway, so two at once would only write two entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sanic import Sanic
from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from admin_api.analytics import roll_up_every_shop
from admin_api.privacy import EVENTS, forget_return_senders, has_events_table, tracker_engine
from admin_api.tables import AuditRow
from core.conversations import HandoffRow, MessageRow
from core.db import utcnow
from core.deliveries import DeliveryRow
from core.handoffs import ConversationEventRow, NoteRow
from tenants.models import TenantRow

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 3600.0
FIRST_DELAY_SECONDS = 60.0  # let the process settle (and tests finish) before the first sweep
ACTOR = "system:retention"
LOCK_KEY = "switchboard:retention-sweep"


async def sweep(sessions: async_sessionmaker, tracker: AsyncEngine,
                now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Delete what every shop's retention period has expired; counts per shop id (shops with
    nothing to delete are left out)."""
    now = now or utcnow()
    async with sessions() as session:
        rows = (await session.execute(
            select(TenantRow.id, TenantRow.retention_days)
            .where(TenantRow.retention_days.is_not(None)))).all()
    periods: dict[int, list[str]] = defaultdict(list)
    for shop, days in rows:
        if days and days >= 1:
            periods[int(days)].append(str(shop))
    done: dict[str, dict[str, int]] = {}
    for days, shops in sorted(periods.items()):
        cutoff = now - timedelta(days=days)
        # Rasa's events table has no index we could use for "this shop's, older than": one
        # scan per distinct period, not one per shop.
        events = await expired_events(tracker, shops, cutoff.timestamp())
        for shop in shops:
            counts = await _sweep_shop(sessions, shop, cutoff)
            counts["tracker_events"] = events.get(shop, 0)
            if any(counts.values()):
                done[shop] = counts
                await _audit(sessions, shop, days, cutoff, counts)
    return done


async def _audit(sessions: async_sessionmaker, shop: str, days: int, cutoff: datetime,
                 counts: dict[str, int]) -> None:
    async with sessions() as session:
        await session.execute(insert(AuditRow).values(
            tenant_id=shop, actor=ACTOR, action="retention.sweep",
            target=f"older than {days} days", before=None,
            after={"cutoff": cutoff.isoformat(), "deleted": counts}, created_at=utcnow()))
        await session.commit()
    log.info("retention sweep", extra={"tenant_id": shop, "retention_days": days,
                                       **{f"deleted_{k}": v for k, v in counts.items()}})


async def expired_events(tracker: AsyncEngine, shops: list[str],
                         before: float) -> dict[str, int]:
    """Delete these shops' tracker events older than `before` (epoch seconds) in one
    statement; the number deleted per shop (from the sender ids it returns)."""
    if not shops or not await has_events_table(tracker):
        return {}
    sender = EVENTS.c.sender_id
    if tracker.dialect.name == "postgresql":
        tenant_part = func.split_part(sender, ":", 1)
    else:  # SQLite
        tenant_part = func.substr(sender, 1, func.instr(sender, ":") - 1)
    counts: dict[str, int] = defaultdict(int)
    async with tracker.begin() as conn:
        deleted = await conn.execute(
            delete(EVENTS).where(or_(EVENTS.c.timestamp < before, EVENTS.c.timestamp.is_(None)),
                                 tenant_part.in_(shops))
            .returning(sender))
        for (sender_id,) in deleted:
            counts[sender_id.split(":", 1)[0]] += 1
    return dict(counts)


async def _sweep_shop(sessions: async_sessionmaker, shop: str,
                      cutoff: datetime) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with sessions() as session:
        for name, table in (("messages", MessageRow), ("deliveries", DeliveryRow),
                            ("handoff_requests", HandoffRow), ("conversation_notes", NoteRow),
                            ("conversation_events", ConversationEventRow)):
            result: Any = await session.execute(delete(table).where(
                table.tenant_id == shop, table.created_at < cutoff))
            counts[name] = int(result.rowcount or 0)
        await session.commit()
    counts["return_requests_unlinked"] = await forget_return_senders(sessions, shop, cutoff)
    return counts


async def _elected(redis: Any) -> bool:
    if redis is None:
        return True
    try:
        return bool(await redis.set(LOCK_KEY, "1", nx=True, ex=int(INTERVAL_SECONDS) - 60))
    except Exception as exc:  # noqa: BLE001 - without Redis every process sweeps (idempotent)
        log.warning("retention lock unavailable", extra={"error": type(exc).__name__})
        return True


async def run_periodically(app: Sanic, interval: float = INTERVAL_SECONDS,
                           first_delay: float = FIRST_DELAY_SECONDS) -> None:
    await asyncio.sleep(first_delay)
    while True:
        try:
            if await _elected(app.ctx.redis):
                await sweep(app.ctx.sessions, tracker_engine(app.ctx))
                # The same hourly turn rolls up analytics' finished days ahead of time, so
                # no owner's first 90-day summary pays for scanning every message.
                await roll_up_every_shop(app.ctx.sessions)
        except Exception:  # a failed sweep is logged and tried again next hour
            log.exception("retention sweep or analytics rollup failed")
        await asyncio.sleep(interval)


def install(app: Sanic) -> None:
    """Start the hourly sweep with the server (after the connections are open) and stop it,
    and close the embedded tracker engine, when the server stops."""

    @app.after_server_start
    async def start_retention(app: Sanic) -> None:
        app.ctx.retention_task = asyncio.create_task(run_periodically(app))

    @app.before_server_stop
    async def stop_retention(app: Sanic) -> None:
        task = getattr(app.ctx, "retention_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        engine = getattr(app.ctx, "tracker_engine", None)
        if engine is not None and engine is not getattr(app.ctx, "engine", None):
            await engine.dispose()
