"""Tenant credentials are encrypted at rest; tenants resolve by slug or id and only their own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select, update

from actions.commerce.demo_store import DemoStoreBackend
from actions.commerce.tables import DemoOrderItemRow, DemoOrderRow
from core.db import utcnow
from core.logs import JsonFormatter, redact
from tenants import TenantResolver, TenantRow, UnknownTenant
from tenants.crypto import CredentialsBox, CredentialsError
from tenants.demo import DEMO_TENANT_ID, seed_demo
from tests.databases import database_params, migrated_url, seeded_sessions


def test_credentials_round_trip_and_wrong_key() -> None:
    box = CredentialsBox(CredentialsBox.generate_key())
    sealed = box.seal({"shopify": {"access_token": "shpat_secret"}})
    assert b"shpat_secret" not in sealed
    assert box.open(sealed) == {"shopify": {"access_token": "shpat_secret"}}
    with pytest.raises(CredentialsError):
        CredentialsBox(CredentialsBox.generate_key()).open(sealed)


def test_key_rotation_reads_old_tokens() -> None:
    old, new = CredentialsBox.generate_key(), CredentialsBox.generate_key()
    sealed = CredentialsBox(old).seal({"a": 1})
    assert CredentialsBox(f"{new},{old}").open(sealed) == {"a": 1}


def test_logs_mask_card_numbers_and_secrets() -> None:
    assert redact("card 4000 0000 0000 4242") == "card **** **** **** 4242"
    assert "abc123" not in redact("token=abc123 and api_key: abc123")
    import logging

    record = logging.LogRecord("x", logging.INFO, "", 0, "pay 4111111111111111", (), None)
    assert "4111111111111111" not in JsonFormatter().format(record)


@pytest.mark.parametrize("kind", database_params())
@pytest.mark.asyncio
async def test_resolver_and_isolation(kind: str, tmp_path: Path) -> None:
    async with seeded_sessions(migrated_url(kind, tmp_path)) as (_, sessions):
        async with sessions() as session:
            session.add(TenantRow(id="other-tenant", slug="other", name="Other Shop",
                                  return_window_days=14, order_backend="demo"))
            await session.flush()
            session.add(DemoOrderRow(tenant_id="other-tenant", number="1001", email="canary@other.example",
                                     status="shipped", placed_at=utcnow(),
                                     items=[DemoOrderItemRow(name="Canary lamp")]))
            await session.commit()
        resolver = TenantResolver(sessions)
        assert (await resolver.get("demo")).id == DEMO_TENANT_ID
        assert (await resolver.get(DEMO_TENANT_ID)).slug == "demo"
        with pytest.raises(UnknownTenant):
            await resolver.get("nobody")
        # Same order number in two shops: each sees only its own.
        demo = DemoStoreBackend(sessions, DEMO_TENANT_ID)
        other = DemoStoreBackend(sessions, "other-tenant")
        assert await demo.find_order("1001", "canary@other.example") is None
        assert (await other.find_order("1001", "canary@other.example")).items[0].name == "Canary lamp"
        assert await other.find_order("1001", "alex@example.com") is None
        # Re-seeding keeps one demo tenant and refreshes its orders.
        await seed_demo(sessions)
        async with sessions() as session:
            count = len((await session.execute(select(TenantRow))).scalars().all())
        assert count == 2


class CountingSessions:
    """The real session factory, counting the sessions opened (one per resolver query)."""

    def __init__(self, sessions) -> None:
        self._sessions, self.opened = sessions, 0

    def __call__(self):
        self.opened += 1
        return self._sessions()


@pytest.mark.parametrize("kind", database_params())
@pytest.mark.asyncio
async def test_resolver_serves_settings_while_it_rereads_them(kind: str, tmp_path: Path) -> None:
    async with seeded_sessions(migrated_url(kind, tmp_path)) as (_, sessions):
        counted = CountingSessions(sessions)
        resolver = TenantResolver(counted, ttl_seconds=0)
        # Many requests for a shop not yet read share one query.
        tenants = await asyncio.gather(*(resolver.get("demo") for _ in range(50)))
        assert {t.name for t in tenants} == {"Demo Outfitters"} and counted.opened == 1

        async with sessions() as session:
            await session.execute(update(TenantRow).where(TenantRow.slug == "demo")
                                  .values(name="Demo Outfitters Ltd"))
            await session.commit()
        # Past its time: the requests get the settings they had at once, one query rereads them.
        stale = await asyncio.gather(*(resolver.get("demo") for _ in range(50)))
        assert {t.name for t in stale} == {"Demo Outfitters"}
        for _ in range(100):  # the reread finishes in the background
            if (await resolver.get(DEMO_TENANT_ID)).name == "Demo Outfitters Ltd":
                break
            await asyncio.sleep(0.01)
        assert (await resolver.get("demo")).name == "Demo Outfitters Ltd"

        async with sessions() as session:  # renamed: the old address stops working
            await session.execute(update(TenantRow).where(TenantRow.slug == "demo")
                                  .values(slug="demo-renamed"))
            await session.commit()
        await resolver.get("demo")
        for _ in range(100):
            try:
                await resolver.get("demo")
            except UnknownTenant:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(UnknownTenant):
            await resolver.get("demo")
        assert (await resolver.get("demo-renamed")).id == DEMO_TENANT_ID


@pytest.mark.parametrize(("credentials", "fragment"), [
    ({"twilio": {"account_sid": "AC1"}}, "twilio.auth_token"),
    ({"twilio": {"account_sid": "AC1", "auth_token": "t"}}, "sms_numbers"),
    ({"meta_whatsapp": {"app_secret": "s", "verify_token": "v", "access_token": "a"}},
     "phone_number_id"),
    ({"email": {"address": "a@b.example", "inbound": "imap", "smtp": {"host": "h"}}},
     "'mailgun' or 'sendgrid'"),
    ({"email": {"address": "a@b.example", "inbound": "mailgun", "smtp": {"host": "h"}}},
     "signing key"),
])
def test_channel_credentials_missing_a_part_are_refused(credentials: dict, fragment: str) -> None:
    from tenants.__main__ import check_credentials

    with pytest.raises(SystemExit, match=fragment.replace(".", r"\.").replace("'", ".")):
        check_credentials("demo", credentials)


def test_complete_channel_credentials_pass() -> None:
    from tenants.__main__ import check_credentials
    from tenants.demo import demo_channel_credentials

    check_credentials("demo", demo_channel_credentials())
