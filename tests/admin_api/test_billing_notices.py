"""Limit warnings: a shop's owners get one mail at 80 % and one at 100 % of a monthly limit
(conversations, LLM tokens), through a real SMTP server; never twice (also from a second admin
process), never to other roles or shops; without mail configured the warning is still marked.
The admin service runs them and the meter reporter with billing on, and only then."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from admin_api.app import create_app
from admin_api.billing_notices import UsageNotices
from admin_api.tables import MembershipRow, UserRow
from billing.account import Accounts
from billing.conversations import ConversationMeter
from billing.plans import parse_pricing
from billing.tables import BillingAccountRow, UsageNoticeRow
from core.settings import Settings
from knowledge.tables import LlmUsageRow
from tests.admin_api.conftest import Admin, admin_settings
from tests.fakes.stripe_server import stripe_server
from tests.integration.mailbox import Mailbox
from tests.sanic_client import RunningAppClient, stop_app
from tests.servers import free_port

pytestmark = pytest.mark.asyncio
NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)
PRICING = parse_pricing({"default": "free", "plans": {"free": {"price_id": None, "limits": {
    "conversations_per_month": 10, "llm_tokens_per_month": 1000}}}}, "test pricing")
OWNERS = ("owner-a@example.com", "owner-b@example.com")


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with Mailbox(free_port()) as box:
        yield box


async def person(sessions: async_sessionmaker, shop: str, email: str, role: str,
                 disabled: bool = False) -> None:
    async with sessions() as session:
        user_id = str(uuid.uuid4())
        session.add(UserRow(id=user_id, email=email, disabled=disabled))
        await session.flush()
        session.add(MembershipRow(user_id=user_id, tenant_id=shop, role=role))
        await session.commit()


def notices(admin: Admin, settings: Settings) -> UsageNotices:
    return UsageNotices(admin.sessions, Accounts(admin.sessions, PRICING, timedelta(days=7),
                                                 ttl=0.0), settings)


async def conversations(admin: Admin, shop: str, count: int, start: int = 0) -> None:
    meter = ConversationMeter(admin.sessions, Accounts(admin.sessions, PRICING,
                                                       timedelta(days=7)))
    for n in range(start, start + count):
        assert not (await meter.admit(shop, f"{shop}:web:{n}", "web", NOW)).refused


async def test_owners_are_mailed_once_at_80_and_once_at_100_percent(
        admin: Admin, mailbox: Mailbox) -> None:
    shop = admin.demo.id
    for owner in OWNERS:
        await person(admin.sessions, shop, owner, "owner")
    await person(admin.sessions, shop, "agent@example.com", "agent")
    await person(admin.sessions, shop, "gone@example.com", "owner", disabled=True)
    await person(admin.sessions, admin.other.id, "other@example.com", "owner")
    settings = replace(admin.settings, smtp_url=f"smtp://127.0.0.1:{mailbox.port}",
                       admin_public_url="https://admin.example.com")
    checker = notices(admin, settings)

    await conversations(admin, shop, 7)
    await conversations(admin, admin.other.id, 9)  # the other shop: its own owners only
    assert [w.tenant_id for w in await checker.check(NOW)] == [admin.other.id]
    assert [m["To"] for m in mailbox.messages] == ["other@example.com"]
    mailbox.messages.clear()

    await conversations(admin, shop, 1, start=7)  # 8 of 10
    [warning] = await checker.check(NOW)
    assert (warning.limit, warning.threshold, warning.used) == ("conversations_per_month", 80, 8)
    assert sorted(str(m["To"]) for m in mailbox.messages) == list(OWNERS)
    mail = mailbox.messages[0]
    assert "80%" in str(mail["Subject"])
    body = mail.get_content()
    assert "8 of the 10 conversations" in body and "https://admin.example.com/app/" in body
    # Checked again, or by another admin process: not mailed again.
    assert await checker.check(NOW) == [] and await notices(admin, settings).check(NOW) == []
    assert len(mailbox.messages) == 2

    await conversations(admin, shop, 2, start=8)  # 10 of 10
    [full] = await checker.check(NOW)
    assert full.threshold == 100 and sorted(full.mailed_to) == list(OWNERS)
    assert len(mailbox.messages) == 4
    assert "reached its monthly limit" in str(mailbox.messages[-1]["Subject"])
    assert await checker.check(NOW) == []

    # Tokens jump past both thresholds between two checks: one mail (100 %), both marked.
    async with admin.sessions() as session:
        session.add(LlmUsageRow(tenant_id=shop, model="m", input_tokens=900, output_tokens=150,
                                created_at=NOW))
        await session.commit()
    [tokens] = await checker.check(NOW)
    assert (tokens.limit, tokens.threshold) == ("llm_tokens_per_month", 100)
    assert len(mailbox.messages) == 6
    async with admin.sessions() as session:
        marked = sorted((r.limit, r.threshold) for r in (await session.execute(
            select(UsageNoticeRow).where(UsageNoticeRow.tenant_id == shop))).scalars())
    assert marked == [("conversations_per_month", 80), ("conversations_per_month", 100),
                      ("llm_tokens_per_month", 80), ("llm_tokens_per_month", 100)]
    # A new month starts afresh.
    assert await checker.check(NOW + timedelta(days=15)) == []


async def test_without_mail_the_warning_is_marked_and_logged(
        admin: Admin, caplog: pytest.LogCaptureFixture) -> None:
    shop = admin.demo.id
    await person(admin.sessions, shop, OWNERS[0], "owner")
    await conversations(admin, shop, 8)
    checker = notices(admin, replace(admin.settings, smtp_url=None))
    with caplog.at_level("INFO", logger="admin_api.billing_notices"):
        [warning] = await checker.check(NOW)
    assert warning.threshold == 80 and warning.mailed_to == ()
    assert any("no SMTP_URL" in r.getMessage() for r in caplog.records)
    assert await checker.check(NOW) == []  # marked: not warned again once mail works


async def test_billing_off_warns_nobody(admin: Admin) -> None:
    off = UsageNotices(admin.sessions, Accounts(admin.sessions, None, timedelta(days=7)),
                       admin.settings)
    assert await off.check(NOW) == []


async def test_the_admin_service_reports_usage_with_billing_on_and_stops_cleanly(
        admin: Admin, tmp_path: Path) -> None:
    """The meter reporter and the warnings run in the admin process (billing on only): a
    conversation waiting to be reported reaches the Stripe sandbox; stopping the app stops
    them."""
    async with admin.sessions() as session:
        session.add(BillingAccountRow(tenant_id=admin.demo.id, stripe_customer_id="cus_demo",
                                      plan="starter", status="active"))
        await session.commit()
    meter = ConversationMeter(admin.sessions, Accounts(admin.sessions, PRICING,
                                                       timedelta(days=7)))
    await meter.admit(admin.demo.id, f"{admin.demo.id}:web:v", "web")
    async with stripe_server() as fake:
        settings = admin_settings(tmp_path, admin.database_url, STRIPE_API_KEY=fake.api_key,
                                  STRIPE_API_BASE=fake.base_url)
        app = create_app(settings, name=f"admin-meters-{uuid.uuid4().hex[:8]}")
        app.config.WEBHOOK_WORKER = False
        try:
            _, health = await RunningAppClient(app).get("/health")  # starts the app
            assert health.status == 200
            tasks = (app.ctx.meter_reporter, app.ctx.usage_notices)
            async with asyncio.timeout(10):
                while not fake.sandbox.meter_events:
                    await asyncio.sleep(0.02)
            [event] = fake.sandbox.meter_events
            assert event["event_name"] == "switchboard_conversations"  # billing/plans.yml
            assert event["payload"]["stripe_customer_id"] == "cus_demo"
        finally:
            await stop_app(app)
        assert all(task.done() for task in tasks)
    # Billing off (the admin fixture's app): neither runs.
    await admin.call("GET", "/settings")
    assert getattr(admin.app.ctx, "meter_reporter", None) is None
    assert getattr(admin.app.ctx, "usage_notices", None) is None
