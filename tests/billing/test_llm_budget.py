"""The plan's llm_tokens_per_month caps a shop's LLM spend together with the shop's own
budget (the smaller wins), through the action server's runtime; billing off: only the shop's
own budget, as before."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import async_sessionmaker

from actions.runtime import Runtime
from billing.tables import BillingAccountRow
from core.settings import Settings
from knowledge.budget import LlmBudget
from knowledge.tables import LlmUsageRow
from tenants import Tenant, TenantResolver
from tenants.crypto import CredentialsBox
from tests.core.test_settings import SECRETS

NOW = datetime.now(UTC)
PLANS = {"default": "free", "plans": {
    "free": {"price_id": None, "limits": {"llm_tokens_per_month": 1000}},
    "pro": {"price_id": "price_pro", "limits": {"llm_tokens_per_month": None}}}}


def shop(tenant_id: str, own_budget: int | None = None) -> Tenant:
    return Tenant(id=tenant_id, slug=tenant_id, name=tenant_id, greeting=None,
                  return_window_days=30, order_backend="demo", credentials_encrypted=None,
                  llm_monthly_token_budget=own_budget)


def runtime(sessions: async_sessionmaker, tmp_path: Path, billing: bool) -> Runtime:
    plans = tmp_path / "plans.yml"
    plans.write_text(yaml.safe_dump(PLANS))
    env = {**SECRETS, "BILLING_PLANS": str(plans)}
    if billing:
        env["STRIPE_API_KEY"] = "sk_test_budget"
    settings = Settings.from_env(env)
    return Runtime(settings=settings, engine=None,  # type: ignore[arg-type]  # unused here
                   sessions=sessions, tenants=TenantResolver(sessions),
                   credentials=CredentialsBox(Fernet.generate_key().decode()))


async def spend(sessions: async_sessionmaker, tenant_id: str, tokens: int) -> None:
    async with sessions() as session:
        session.add(LlmUsageRow(tenant_id=tenant_id, model="m", input_tokens=tokens,
                                output_tokens=0, created_at=NOW))
        await session.commit()


@pytest.mark.asyncio
async def test_the_plan_and_the_shops_own_budget_cap_together(
        sessions: async_sessionmaker, tmp_path: Path) -> None:
    rt = runtime(sessions, tmp_path, billing=True)
    budget = LlmBudget(sessions, refresh=0.0, plan_limit=rt.plan_tokens)
    free, pro = shop("free-shop"), shop("pro-shop")
    async with sessions() as session:
        session.add(BillingAccountRow(tenant_id=pro.id, plan="pro", status="active",
                                      stripe_customer_id="cus_pro"))
        await session.commit()
    await spend(sessions, free.id, 999)
    await spend(sessions, pro.id, 5000)
    assert await budget.budget_of(free) == 1000 and not await budget.exhausted(free)
    assert await budget.budget_of(pro) is None and not await budget.exhausted(pro)
    await spend(sessions, free.id, 1)
    assert await budget.exhausted(free)  # the free plan's 1000 tokens are spent
    # The smaller wins: the shop's own budget under the plan's, or over it.
    assert await budget.exhausted(replace(free, llm_monthly_token_budget=5000))
    assert await budget.budget_of(replace(free, llm_monthly_token_budget=10)) == 10
    assert await budget.exhausted(replace(pro, llm_monthly_token_budget=4000))


@pytest.mark.asyncio
async def test_without_billing_only_the_shops_own_budget_counts(
        sessions: async_sessionmaker, tmp_path: Path) -> None:
    rt = runtime(sessions, tmp_path, billing=False)
    budget = LlmBudget(sessions, refresh=0.0, plan_limit=rt.plan_tokens)
    await spend(sessions, "s", 5000)
    assert await budget.budget_of(shop("s")) is None and not await budget.exhausted(shop("s"))
    assert await budget.exhausted(shop("s", own_budget=5000))
