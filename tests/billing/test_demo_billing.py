"""`make run`'s demo shop (devtools/bootstrap.py) is comped on the development pricing's pro
plan, so its visitors are answered and its channels kept whatever the free plan allows; a
subscription it takes through the sandbox's Checkout is its own, and the next bootstrap
leaves it alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from billing.account import Accounts
from billing.tables import BillingAccountRow
from devtools.demo_shop import DEMO_TENANT_ID, comp_demo_plan, seed_demo
from tests.billing.test_plans import PRICING


@pytest.mark.asyncio
async def test_the_demo_shop_is_comped_until_it_subscribes(sessions: async_sessionmaker) -> None:
    accounts = Accounts(sessions, PRICING, timedelta(days=7))
    await seed_demo(sessions)
    assert (await accounts.state(DEMO_TENANT_ID)).status == "none"  # the tests' demo shop
    await comp_demo_plan(sessions)  # `make run`'s bootstrap
    state = await accounts.state(DEMO_TENANT_ID)
    assert (state.plan.name, state.status) == ("pro", "comped")
    assert state.plan.limits.conversations_per_month == 20000

    async with sessions() as session:  # Checkout on the sandbox made it a subscription
        row = await session.get(BillingAccountRow, DEMO_TENANT_ID)
        assert row is not None
        row.plan, row.status = "starter", "active"
        row.stripe_customer_id, row.stripe_subscription_id = "cus_demo", "sub_demo"
        await session.commit()
    await comp_demo_plan(sessions)
    state = await accounts.state(DEMO_TENANT_ID)
    assert (state.plan.name, state.status, state.subscription_id) == (
        "starter", "active", "sub_demo")
