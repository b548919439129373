"""Conversations counted as they start, and refused politely past the plan's monthly limit.

A conversation is one sender's messages without `gap` (60 minutes, Rasa's
session_expiration_time in bot/domain/session.yml) of silence; it counts in the calendar
month (UTC) it started (billing/tables.py `BilledConversationRow`), on whichever channel.
The gateway asks `ConversationMeter.admit` before Rasa, for every visitor message:
- an ongoing conversation is admitted (or stays refused, if it started refused: each of its
  messages gets the polite message again, never a silent drop, until the limit leaves room:
  a new plan, a new month; it then starts a counted conversation); its last_message_at is
  written at most once per `touch_every` (a minute), and a per-process LRU of senders saves
  the read, so a busy conversation costs nothing here;
- a new one is counted against the binding plan's `conversations_per_month`: under it, a row
  and (in the same transaction) a meter event for Stripe (meter "conversations", value 1,
  identifier "conversation-<row id>"); at or over it, a row with over_limit and a refusal.
  A conversation a person owns (handoffs) is never refused: it is counted as served.

Billing off (no STRIPE_API_KEY): every message is admitted at once and nothing is written.
Counting without billing would add a write per conversation to every deployment that does
not charge, for a number nobody is billed on; the owner page's usage then shows the LLM's
spend only.

Two new conversations of a shop racing at its last free place may both be admitted (no lock
across gateways): a limit overshot by one conversation is a smaller harm than a lock on the
hot path. The same sender racing itself in one process is serialised (a lock per sender).
A database failure here admits the message (logged): the limit is not worth a lost visitor.
Rows name the visitor by the sender id's keyed pseudonym (core/logs.py `visitor`, keyed by
the deployment's log key, the same in every gateway), never by their phone or email.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker

from billing.account import Accounts, month_of
from billing.tables import BilledConversationRow, MeterEventRow
from core import logs
from core.db import utcnow

log = logging.getLogger(__name__)

GAP = timedelta(minutes=60)  # bot/domain/session.yml session_expiration_time
TOUCH_EVERY = timedelta(minutes=1)
CONVERSATIONS_METER = "conversations"


@dataclass(frozen=True)
class Admission:
    refused: bool  # past the month's limit: the polite message instead of the bot
    conversation_id: int | None = None  # its billed_conversations row (None: not counted)
    new: bool = False  # this message started the conversation
    limit: int | None = None  # the plan's conversations_per_month when it started


ADMITTED = Admission(refused=False)


@dataclass
class _Known:
    """What this process knows of a sender's latest conversation."""

    id: int
    last_message_at: datetime
    over_limit: bool
    limit: int | None = None


@dataclass(frozen=True)
class _Quota:
    plan: str
    limit: int | None
    over: bool


class ConversationMeter:
    def __init__(self, sessions: async_sessionmaker, accounts: Accounts,
                 gap: timedelta = GAP, touch_every: timedelta = TOUCH_EVERY,
                 max_senders: int = 10_000) -> None:
        self.sessions = sessions
        self.accounts = accounts
        self.gap = gap
        self.touch_every = touch_every
        self.max_senders = max_senders
        self._known: OrderedDict[tuple[str, str], _Known] = OrderedDict()
        # One lock per sender while some of its messages are being admitted (and a count of
        # them, so the lock goes when the last one is done).
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    async def admit(self, tenant_id: str, sender_id: str, channel: str,
                    now: datetime | None = None, person_owns: bool = False) -> Admission:
        """Whether the bot may answer this visitor message (module doc)."""
        if not self.accounts.enabled:
            return ADMITTED
        now = now or utcnow()
        key = (tenant_id, sender_id)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._admit(key, channel, now, person_owns)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("conversation not metered; admitted",
                        extra={"tenant_id": tenant_id, "error": type(exc).__name__})
            self._known.pop(key, None)
            return ADMITTED
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _admit(self, key: tuple[str, str], channel: str, now: datetime,
                     person_owns: bool) -> Admission:
        known = self._known.get(key)
        if known is None or now - known.last_message_at >= self.gap:
            # Not known here, or over by what this process saw: another gateway may have
            # seen later messages, so the database decides before a new one starts.
            known = await self._latest(key)
        if known is None or now - known.last_message_at >= self.gap:
            return await self._start(key, channel, now, await self._quota(key[0], now,
                                                                          person_owns))
        if known.over_limit and not person_owns:
            # Refused so far: a raised limit (a new plan) or a new month answers it now, as
            # a conversation of its own; else it stays refused.
            quota = await self._quota(key[0], now, person_owns)
            if not quota.over:
                return await self._start(key, channel, now, quota)
        if now - known.last_message_at >= self.touch_every:
            async with self.sessions() as session:
                await session.execute(update(BilledConversationRow).where(
                    BilledConversationRow.id == known.id).values(last_message_at=now))
                await session.commit()
            known.last_message_at = now
        self._remember(key, known)
        return Admission(refused=known.over_limit and not person_owns,
                         conversation_id=known.id, limit=known.limit)

    async def _latest(self, key: tuple[str, str]) -> _Known | None:
        tenant_id, sender_id = key
        async with self.sessions() as session:
            row = (await session.execute(
                select(BilledConversationRow.id, BilledConversationRow.last_message_at,
                       BilledConversationRow.over_limit)
                .where(BilledConversationRow.tenant_id == tenant_id,
                       BilledConversationRow.visitor == logs.visitor(sender_id))
                .order_by(BilledConversationRow.last_message_at.desc()).limit(1))).first()
        return _Known(row[0], row[1], bool(row[2])) if row is not None else None

    async def _quota(self, tenant_id: str, now: datetime, person_owns: bool) -> _Quota:
        """Whether a conversation starting now is past the binding plan's monthly limit."""
        state = await self.accounts.cached(tenant_id)
        limit = state.plan.limits.conversations_per_month
        if limit is None or person_owns:
            return _Quota(state.plan.name, limit, over=False)
        async with self.sessions() as session:
            served = (await session.execute(
                select(func.count(BilledConversationRow.id)).where(
                    BilledConversationRow.tenant_id == tenant_id,
                    BilledConversationRow.month == month_of(now),
                    BilledConversationRow.over_limit.is_(False)))).scalar_one()
        return _Quota(state.plan.name, limit, over=served >= limit)

    async def _start(self, key: tuple[str, str], channel: str, now: datetime,
                     quota: _Quota) -> Admission:
        """A new conversation: counted (with its meter event), or refused."""
        tenant_id, sender_id = key
        month = month_of(now)
        async with self.sessions() as session:
            row = BilledConversationRow(tenant_id=tenant_id, visitor=logs.visitor(sender_id),
                                        channel=channel, month=month, started_at=now,
                                        last_message_at=now, over_limit=quota.over)
            session.add(row)
            await session.flush()
            if not quota.over:
                session.add(MeterEventRow(identifier=f"conversation-{row.id}",
                                          tenant_id=tenant_id, meter=CONVERSATIONS_METER,
                                          value=1, occurred_at=now, attempts=0))
            await session.commit()
            row_id = row.id
        if quota.over:
            log.info("conversation refused: monthly limit reached",
                     extra={"tenant_id": tenant_id, "channel": channel, "limit": quota.limit,
                            "month": month, "plan": quota.plan})
        self._remember(key, _Known(row_id, now, quota.over, quota.limit))
        return Admission(refused=quota.over, conversation_id=row_id, new=True,
                         limit=quota.limit)

    def _remember(self, key: tuple[str, str], known: _Known) -> None:
        self._known[key] = known
        self._known.move_to_end(key)
        while len(self._known) > self.max_senders:
            self._known.popitem(last=False)
