"""Billing on with a small pricing, for the usage tests (conversations, meters, notices)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker

from billing.account import Accounts
from billing.plans import Pricing, parse_pricing

PRICING: Pricing = parse_pricing({
    "default": "free",
    "meters": {"conversations": "sb_conversations", "llm_tokens": "sb_llm_tokens"},
    "plans": {
        "free": {"price_id": None, "limits": {"conversations_per_month": 2,
                                              "llm_tokens_per_month": 1000}},
        "pro": {"price_id": "price_pro", "limits": {"conversations_per_month": None}},
    },
}, "test pricing")


def accounts(sessions: async_sessionmaker, pricing: Pricing | None = PRICING) -> Accounts:
    return Accounts(sessions, pricing, timedelta(days=7), ttl=0.0)
