"""Stripe's events change a shop's subscription state once each, whatever their order: every
handled type, redeliveries, events out of order, Checkout before or after the subscription,
a shop no event names, a handling that failed and is handled on the next delivery (SQLite,
and PostgreSQL when it answers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from billing.account import Accounts, BillingState
from billing.events import HandlingFailed, MalformedEvent, Received, receive
from billing.plans import Plan, Pricing, parse_pricing
from billing.tables import BillingAccountRow, StripeEventRow
from core.settings import ROOT
from devtools.demo_shop import DEMO_TENANT_ID
from tests.billing.stripe_events import CUSTOMER, PRO, SUBSCRIPTION, stripe_event
from tests.databases import database_params, migrated_url, seeded_sessions

pytestmark = pytest.mark.asyncio

PRICING = parse_pricing(yaml.safe_load((ROOT / "billing" / "plans.yml").read_text()), "plans")
T0 = 1764331198  # the fixtures' subscription starts here (2025-11-28)


@dataclass
class Billing:
    sessions: async_sessionmaker
    pricing: Pricing = PRICING

    async def send(self, name: str, **changes: Any) -> Received:
        return await receive(self.sessions, self.pricing, stripe_event(name, **changes))

    async def account(self, tenant_id: str = DEMO_TENANT_ID) -> BillingAccountRow | None:
        async with self.sessions() as session:
            return await session.get(BillingAccountRow, tenant_id)

    async def state(self, tenant_id: str = DEMO_TENANT_ID) -> BillingState:
        now = datetime.fromtimestamp(T0 + 3600, UTC)
        return await Accounts(self.sessions, self.pricing, timedelta(days=7),
                              now=lambda: now).state(tenant_id)

    async def events(self) -> list[StripeEventRow]:
        async with self.sessions() as session:
            return list((await session.execute(
                select(StripeEventRow).order_by(StripeEventRow.created))).scalars())


@pytest_asyncio.fixture(params=database_params())
async def billing(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Billing]:
    async with seeded_sessions(migrated_url(request.param, tmp_path)) as (_, sessions):
        yield Billing(sessions)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- each handled type -----------------------------------------------------------------------


async def test_checkout_then_the_subscription_puts_the_shop_on_its_plan(billing: Billing) -> None:
    done = await billing.send("checkout.session.completed", created=T0 + 2)
    assert done == Received(done.event_id, "checkout.session.completed", DEMO_TENANT_ID,
                            duplicate=False)
    linked = await billing.account()
    assert linked is not None and linked.status == "none" and linked.plan is None
    assert (linked.stripe_customer_id, linked.stripe_subscription_id) == (CUSTOMER, SUBSCRIPTION)

    await billing.send("customer.subscription.created", created=T0 + 3)
    state = await billing.state()
    assert (state.plan.name, state.status, state.customer_id) == ("starter", "active", CUSTOMER)
    # API 2025+: the period is on the subscription's items.
    assert (state.period_start, state.period_end) == (at(T0), at(1767009598))
    assert not state.cancel_at_period_end


async def test_the_subscription_before_checkout_finds_the_shop_by_its_metadata(
        billing: Billing) -> None:
    created = await billing.send("customer.subscription.created", created=T0)
    assert created.tenant_id == DEMO_TENANT_ID
    await billing.send("checkout.session.completed", created=T0 + 2)
    state = await billing.state()
    assert (state.plan.name, state.status, state.subscription_id) == (
        "starter", "active", SUBSCRIPTION)


async def test_an_event_for_no_known_shop_is_kept_and_handled_once_checkout_links_it(
        billing: Billing) -> None:
    orphan = await billing.send("customer.subscription.created", tenant=None, created=T0)
    assert orphan.tenant_id is None and not orphan.duplicate
    [stored] = await billing.events()
    assert stored.tenant_id is None and stored.handled_at is not None and stored.error is None
    assert await billing.account() is None

    await billing.send("checkout.session.completed", created=T0 + 2)
    state = await billing.state()
    assert (state.plan.name, state.status) == ("starter", "active")
    assert {e.type: e.tenant_id for e in await billing.events()} == {
        "customer.subscription.created": DEMO_TENANT_ID,
        "checkout.session.completed": DEMO_TENANT_ID}


async def test_a_shop_that_does_not_exist_gets_no_billing_row(billing: Billing) -> None:
    stranger = "00000000-0000-4000-8000-000000000000"
    received = await billing.send("checkout.session.completed", tenant=stranger,
                                  customer="cus_Stranger00000")
    assert received.tenant_id is None
    assert await billing.account(stranger) is None
    [stored] = await billing.events()
    assert stored.handled_at is not None and stored.tenant_id is None


async def test_updates_change_status_plan_period_and_the_cancel_flag(billing: Billing) -> None:
    await billing.send("customer.subscription.created", created=T0)
    await billing.send("customer.subscription.updated", created=T0 + 60, status="active",
                       price=PRO, cancel_at_period_end=True, period=(T0, T0 + 86400))
    state = await billing.state()
    assert (state.plan.name, state.subscribed_plan, state.cancel_at_period_end) == (
        "pro", "pro", True)
    assert state.period_end == at(T0 + 86400)

    await billing.send("customer.subscription.deleted", created=T0 + 120)
    state = await billing.state()
    assert (state.status, state.plan.name) == ("canceled", "free")


async def test_a_subscription_from_an_older_api_version_reads_its_period(
        billing: Billing) -> None:
    await billing.send("customer.subscription.updated.2020-08-27")
    account = await billing.account()
    assert account is not None and account.status == "past_due"
    assert (account.current_period_start, account.current_period_end) == (
        at(1767009598), at(1769688000))


@pytest.mark.parametrize("failed", ["invoice.payment_failed",
                                    "invoice.payment_failed.2020-08-27"])
async def test_a_failed_payment_is_past_due_until_an_invoice_is_paid(
        billing: Billing, failed: str) -> None:
    await billing.send("customer.subscription.created", created=T0)
    await billing.send(failed, created=T0 + 100)
    state = await billing.state()
    assert (state.status, state.past_due_since, state.plan.name) == (
        "past_due", at(T0 + 100), "starter")  # within the grace period
    assert state.grace_ends == at(T0 + 100) + timedelta(days=7)

    await billing.send(failed, id="evt_second_failure", created=T0 + 200)
    again = await billing.account()
    assert again is not None and again.past_due_since == at(T0 + 100)  # since the first

    await billing.send("invoice.paid", created=T0 + 300)
    state = await billing.state()
    assert (state.status, state.past_due_since, state.grace_ends) == ("active", None, None)


async def test_an_invoice_paid_does_not_revive_a_canceled_subscription(billing: Billing) -> None:
    await billing.send("customer.subscription.created", created=T0)
    await billing.send("customer.subscription.deleted", created=T0 + 10)
    await billing.send("invoice.paid", created=T0 + 20)
    assert (await billing.state()).status == "canceled"


async def test_other_types_are_stored_and_ignored(billing: Billing) -> None:
    event = stripe_event("customer.subscription.created")
    event.update(id="evt_other", type="customer.created")
    received = await receive(billing.sessions, PRICING, event)
    assert received.tenant_id is None and not received.duplicate
    [stored] = await billing.events()
    assert stored.type == "customer.created" and stored.handled_at is not None
    assert await billing.account() is None


async def test_a_body_that_is_not_an_event_is_refused_and_not_stored(billing: Billing) -> None:
    for broken in ({"object": "event"}, {"id": "evt_1", "type": "x", "created": "yesterday"},
                   {"id": "evt_1", "type": "x", "created": 1, "data": {}}):
        with pytest.raises(MalformedEvent):
            await receive(billing.sessions, PRICING, broken)
    assert await billing.events() == []


# --- once ------------------------------------------------------------------------------------


async def test_the_same_event_twice_is_handled_once(billing: Billing) -> None:
    first = await billing.send("invoice.payment_failed", created=T0 + 100)
    [stored] = await billing.events()
    # Paid since (an operator's fix, say): the redelivered failure must not undo it.
    async with billing.sessions() as session:
        await session.execute(update(BillingAccountRow).values(status="active",
                                                               past_due_since=None))
        await session.commit()
    second = await billing.send("invoice.payment_failed", created=T0 + 100)
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.tenant_id == first.tenant_id == DEMO_TENANT_ID
    [again] = await billing.events()
    assert again.handled_at == stored.handled_at
    assert (await billing.state()).status == "active"


async def test_two_deliveries_at_once_handle_the_event_once(billing: Billing) -> None:
    event = stripe_event("customer.subscription.created")
    answers = await asyncio.gather(*(receive(billing.sessions, PRICING, event)
                                     for _ in range(2)))
    assert sorted(a.duplicate for a in answers) == [False, True]
    assert len(await billing.events()) == 1


async def test_two_first_events_of_a_shop_at_once_both_apply(billing: Billing) -> None:
    # Both find no row and create one; the second insert loses and its event is retried.
    await asyncio.gather(billing.send("checkout.session.completed", created=T0 + 2),
                         billing.send("customer.subscription.created", created=T0))
    state = await billing.state()
    assert (state.plan.name, state.customer_id, state.subscription_id) == (
        "starter", CUSTOMER, SUBSCRIPTION)
    assert all(e.handled_at is not None for e in await billing.events())


class FailingOnce(Pricing):
    """The pricing, failing the first time a price is looked up (a database that went away
    mid-event would do the same)."""

    failed = False

    def by_price(self, price_id: str | None) -> Plan | None:
        if not FailingOnce.failed:
            FailingOnce.failed = True
            raise RuntimeError("lookup failed")
        return super().by_price(price_id)


async def test_a_failed_handling_is_recorded_and_handled_on_the_next_delivery(
        billing: Billing) -> None:
    FailingOnce.failed = False
    billing.pricing = FailingOnce(plans=PRICING.plans, default=PRICING.default)
    with pytest.raises(HandlingFailed):
        await billing.send("customer.subscription.created")
    [stored] = await billing.events()
    assert stored.handled_at is None and stored.error is not None
    assert "RuntimeError" in stored.error
    assert await billing.account() is None  # nothing of it half-applied

    redelivered = await billing.send("customer.subscription.created")
    assert not redelivered.duplicate and redelivered.tenant_id == DEMO_TENANT_ID
    [stored] = await billing.events()
    assert stored.handled_at is not None and stored.error is None
    assert (await billing.state()).plan.name == "starter"


# --- out of order ----------------------------------------------------------------------------


async def test_an_older_created_arriving_after_a_newer_update_leaves_it_past_due(
        billing: Billing) -> None:
    await billing.send("customer.subscription.updated", created=T0 + 100)  # past_due
    await billing.send("customer.subscription.created", created=T0)  # active, older
    state = await billing.state()
    assert (state.status, state.past_due_since, state.subscribed_plan) == (
        "past_due", at(T0 + 100), "starter")


async def test_a_late_update_after_deletion_stays_canceled(billing: Billing) -> None:
    await billing.send("customer.subscription.created", created=T0)
    await billing.send("customer.subscription.deleted", created=T0 + 200)
    await billing.send("customer.subscription.updated", created=T0 + 100, status="active")
    await billing.send("customer.subscription.updated", id="evt_same_second",
                       created=T0 + 200, status="active")
    assert (await billing.state()).status == "canceled"


async def test_an_invoice_first_then_the_older_subscription_fills_in_the_plan(
        billing: Billing) -> None:
    await billing.send("invoice.payment_failed", created=T0 + 100)
    account = await billing.account()
    assert account is not None and (account.status, account.plan) == ("past_due", None)
    await billing.send("customer.subscription.created", created=T0)  # active, older
    account = await billing.account()
    assert account is not None
    assert (account.status, account.plan, account.current_period_end) == (
        "past_due", "starter", at(1767009598))


async def test_checkout_arriving_late_links_ids_without_touching_the_state(
        billing: Billing) -> None:
    await billing.send("customer.subscription.updated", created=T0 + 100, status="active",
                       cancel_at_period_end=True)
    await billing.send("checkout.session.completed", created=T0)
    state = await billing.state()
    assert (state.status, state.cancel_at_period_end, state.customer_id) == (
        "active", True, CUSTOMER)


async def test_an_old_subscription_ending_does_not_end_the_new_one(billing: Billing) -> None:
    await billing.send("customer.subscription.created", created=T0)
    await billing.send("customer.subscription.created", id="evt_new_subscription",
                       subscription="sub_Newer000000000", price=PRO, created=T0 + 100)
    await billing.send("customer.subscription.deleted", created=T0 + 200)  # the first one
    state = await billing.state()
    assert (state.status, state.plan.name, state.subscription_id) == (
        "active", "pro", "sub_Newer000000000")
