"""What a shop used this calendar month (UTC), for its owner's page, its limit warnings and
Stripe: conversations (billing/tables.py `BilledConversationRow`) and the LLM's answers and
tokens (knowledge/tables.py `LlmUsageRow`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from billing.account import month_of
from billing.tables import BilledConversationRow
from knowledge.tables import LlmUsageRow


@dataclass(frozen=True)
class MonthlyUsage:
    month: str  # "2026-11"
    conversations: int  # started this month and served by the bot
    conversations_refused: int  # started past the limit: got the polite message instead
    llm_answers: int  # knowledge answers the LLM wrote
    llm_tokens: int  # their input + output tokens

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def monthly_usage(sessions: async_sessionmaker, tenant_id: str,
                        now: datetime) -> MonthlyUsage:
    month = month_of(now.astimezone(UTC))
    refused = func.coalesce(func.sum(case((BilledConversationRow.over_limit, 1), else_=0)), 0)
    async with sessions() as session:
        total, over = (await session.execute(
            select(func.count(BilledConversationRow.id), refused).where(
                BilledConversationRow.tenant_id == tenant_id,
                BilledConversationRow.month == month))).one()
        answers, tokens = (await session.execute(
            select(func.count(LlmUsageRow.id),
                   func.coalesce(func.sum(LlmUsageRow.input_tokens
                                          + LlmUsageRow.output_tokens), 0)).where(
                LlmUsageRow.tenant_id == tenant_id,
                LlmUsageRow.created_at >= month_start(now)))).one()
    return MonthlyUsage(month=month, conversations=int(total) - int(over),
                        conversations_refused=int(over), llm_answers=int(answers),
                        llm_tokens=int(tokens))
