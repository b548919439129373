"""Limit warnings: a shop's owners are mailed when its usage reaches 80 % and 100 % of a
monthly limit of its plan (conversations_per_month, llm_tokens_per_month).

`UsageNotices.check` (every few minutes in the admin process, `run`; billing on only) looks at
the shops that used something this month, reads their usage (billing/usage.py
`monthly_usage`) against the binding plan's limits and, for each threshold reached, inserts a
`usage_notices` row first: its primary key (shop, month, limit, threshold) makes the warning
once per month across every admin process, whichever inserts it mails. Then the shop's owners
get the numbers, what happens at the limit and a link to the owner page (ADMIN_PUBLIC_URL,
else ADMIN_URL, + /app/). A shop that jumped past both thresholds between two checks gets the
100 % mail only (both are marked). Mail not configured, or the server failing: logged, and the
row still marks it (a warning late by a month's retry loop is worth less than no duplicate).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from admin_api import mail
from admin_api.tables import MembershipRow, UserRow
from billing.account import Accounts, month_of
from billing.tables import BilledConversationRow, UsageNoticeRow
from billing.usage import MonthlyUsage, month_start, monthly_usage
from core.db import utcnow
from core.settings import Settings
from knowledge.tables import LlmUsageRow
from tenants.models import TenantRow

log = logging.getLogger(__name__)

EVERY_SECONDS = 300.0
FIRST_DELAY_SECONDS = 30.0  # let the process settle before the first check
THRESHOLDS = (80, 100)  # percent, ascending
OWNER = "owner"


@dataclass(frozen=True)
class UsageWarning:
    """One warning decided (and marked) by a check."""

    tenant_id: str
    limit: str  # a Limits field
    threshold: int
    used: int
    allowed: int
    mailed_to: tuple[str, ...]


def _used(limit: str, usage: MonthlyUsage) -> int:
    return usage.conversations if limit == "conversations_per_month" else usage.llm_tokens


def warning_text(shop: str, limit: str, threshold: int, used: int, allowed: int,
                 link: str) -> tuple[str, str]:
    """The subject and body of a warning."""
    what = "conversations" if limit == "conversations_per_month" else "AI answer tokens"
    if threshold >= 100:
        subject = f"{shop} has reached its monthly limit of {what}"
        then = ("New conversations now get a short message with your contact address "
                "instead of the bot, until the month ends or you change plan."
                if limit == "conversations_per_month" else
                "Answers from your knowledge base are now the best matching passage instead "
                "of written by the AI, until the month ends or you change plan.")
    else:
        subject = f"{shop} has used {threshold}% of its monthly {what}"
        then = ("At the limit, new conversations get a short message with your contact "
                "address instead of the bot."
                if limit == "conversations_per_month" else
                "At the limit, answers from your knowledge base are the best matching "
                "passage instead of written by the AI.")
    body = (f"Hello,\n\n{shop} has used {used:,} of the {allowed:,} {what} its plan includes "
            f"this month ({used * 100 // max(allowed, 1)}%).\n\n{then}\n\n"
            f"See your usage and change plan on the owner page:\n\n{link}\n")
    return subject, body


class UsageNotices:
    def __init__(self, sessions: async_sessionmaker, accounts: Accounts,
                 settings: Settings) -> None:
        self.sessions = sessions
        self.accounts = accounts
        self.settings = settings

    @property
    def owner_page(self) -> str:
        base = (self.settings.admin_public_url or self.settings.admin_url).rstrip("/")
        return f"{base}/app/"

    async def check(self, now: datetime | None = None) -> list[UsageWarning]:
        """One pass over the shops that used something this month (module doc)."""
        if not self.accounts.enabled:
            return []
        now = now or utcnow()
        warnings: list[UsageWarning] = []
        for tenant_id in await self._active_shops(now):
            try:
                warnings += await self._check_shop(tenant_id, now)
            except Exception:  # one shop's failure does not keep the others' warnings
                log.exception("usage warnings not checked", extra={"tenant_id": tenant_id})
        return warnings

    async def _active_shops(self, now: datetime) -> list[str]:
        month = month_of(now)
        query = union(
            select(BilledConversationRow.tenant_id).where(BilledConversationRow.month == month),
            select(LlmUsageRow.tenant_id).where(LlmUsageRow.created_at >= month_start(now)))
        async with self.sessions() as session:
            return sorted({str(t) for (t,) in (await session.execute(query)).all()})

    async def _check_shop(self, tenant_id: str, now: datetime) -> list[UsageWarning]:
        limits = (await self.accounts.state(tenant_id)).plan.limits
        usage: MonthlyUsage | None = None
        warnings: list[UsageWarning] = []
        for limit in ("conversations_per_month", "llm_tokens_per_month"):
            allowed = getattr(limits, limit)
            if not allowed:  # None: no limit (0: nothing to warn about before it bites)
                continue
            usage = usage or await monthly_usage(self.sessions, tenant_id, now)
            used = _used(limit, usage)
            reached = [t for t in THRESHOLDS if used * 100 >= allowed * t]
            marked = [t for t in reached if await self._mark(tenant_id, usage.month, limit, t)]
            if marked:
                threshold = max(marked)
                mailed = await self._mail(tenant_id, limit, threshold, used, allowed)
                warnings.append(UsageWarning(tenant_id, limit, threshold, used, allowed, mailed))
        return warnings

    async def _mark(self, tenant_id: str, month: str, limit: str, threshold: int) -> bool:
        """Whether this process is the first to warn of it (the row's key decides)."""
        async with self.sessions() as session:
            try:
                session.add(UsageNoticeRow(tenant_id=tenant_id, month=month, limit=limit,
                                           threshold=threshold, sent_at=utcnow()))
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return False
        return True

    async def _mail(self, tenant_id: str, limit: str, threshold: int, used: int,
                    allowed: int) -> tuple[str, ...]:
        async with self.sessions() as session:
            shop = await session.get(TenantRow, tenant_id)
            owners = [str(e) for (e,) in (await session.execute(
                select(UserRow.email).join(MembershipRow, MembershipRow.user_id == UserRow.id)
                .where(MembershipRow.tenant_id == tenant_id, MembershipRow.role == OWNER,
                       UserRow.disabled.is_(False)).order_by(UserRow.email))).all()]
        facts = {"tenant_id": tenant_id, "limit": limit, "threshold": threshold,
                 "used": used, "allowed": allowed}
        if shop is None or not owners:
            log.warning("usage warning for a shop without owners; not mailed", extra=facts)
            return ()
        if not self.settings.smtp_url:
            log.info("usage warning not mailed: no SMTP_URL", extra=facts)
            return ()
        subject, body = warning_text(shop.name, limit, threshold, used, allowed,
                                     self.owner_page)
        sent: list[str] = []
        for owner in owners:
            try:
                await mail.send(self.settings, owner, subject, body)
                sent.append(owner)
            except mail.MailError:
                pass  # logged by mail.send; the warning stays marked
        log.info("usage warning mailed", extra={**facts, "owners": len(sent)})
        return tuple(sent)

    async def run(self, every: float = EVERY_SECONDS,
                  first_delay: float = FIRST_DELAY_SECONDS) -> None:
        """Check every `every` seconds until cancelled."""
        await asyncio.sleep(first_delay)
        while True:
            try:
                await self.check()
            except Exception:  # the database may be away for a moment; the next pass tries
                log.exception("usage warnings pass failed")
            await asyncio.sleep(every)
