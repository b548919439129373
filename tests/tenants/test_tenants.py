"""Tenant credentials are encrypted at rest; tenants resolve by slug or id and only their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions.commerce.demo_store import DemoStoreBackend
from actions.commerce.tables import DemoOrderItemRow, DemoOrderRow
from core.db import utcnow
from core.logs import JsonFormatter, redact
from devtools.demo_shop import DEMO_TENANT_ID, seed_demo
from tenants import TenantResolver, TenantRow, UnknownTenant
from tenants.crypto import CredentialsBox, CredentialsError
from tests.databases import database_params, migrated_url, seeded_sessions


@asynccontextmanager
async def own_tenant(sessions: async_sessionmaker, tenant_id: str, slug: str,
                     name: str) -> AsyncIterator[str]:
    """A tenant of the test's own, deleted afterwards with its demo-store orders (the
    database may be the one a developer's `make run` uses)."""
    async with sessions() as session:
        session.add(TenantRow(id=tenant_id, slug=slug, name=name, return_window_days=14,
                              order_backend="demo"))
        await session.commit()
    try:
        yield tenant_id
    finally:
        async with sessions() as session:
            await session.execute(delete(DemoOrderRow).where(DemoOrderRow.tenant_id == tenant_id))
            await session.execute(delete(TenantRow).where(TenantRow.id == tenant_id))
            await session.commit()


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
    async with seeded_sessions(migrated_url(kind, tmp_path)) as (_, sessions), \
            own_tenant(sessions, "other-tenant", "other", "Other Shop"):
        async with sessions() as session:
            session.add(DemoOrderRow(tenant_id="other-tenant", number="1001",
                                     email="canary@other.example", status="shipped",
                                     placed_at=utcnow(),
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
        canary = await other.find_order("1001", "canary@other.example")
        assert canary is not None and canary.items[0].name == "Canary lamp"
        assert await other.find_order("1001", "alex@example.com") is None
        # Re-seeding keeps one demo tenant and refreshes its orders.
        await seed_demo(sessions)
        async with sessions() as session:
            count = len((await session.execute(select(TenantRow))).scalars().all())
        assert count == 2


class CountingSessions:
    """The real session factory, counting the sessions opened (one per resolver query)."""

    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions, self.opened = sessions, 0

    def __call__(self) -> AsyncSession:
        self.opened += 1
        return self._sessions()


@pytest.mark.parametrize("kind", database_params())
@pytest.mark.asyncio
async def test_resolver_serves_settings_while_it_rereads_them(kind: str, tmp_path: Path) -> None:
    # A shop of the test's own: renaming the demo shop would outlive the test.
    async with seeded_sessions(migrated_url(kind, tmp_path)) as (_, sessions), \
            own_tenant(sessions, "reread-tenant", "reread", "Reread Shop") as tenant_id:
        counted = CountingSessions(sessions)
        resolver = TenantResolver(cast(async_sessionmaker, counted), ttl_seconds=0)
        # Many requests for a shop not yet read share one query.
        tenants = await asyncio.gather(*(resolver.get("reread") for _ in range(50)))
        assert {t.name for t in tenants} == {"Reread Shop"} and counted.opened == 1

        async with sessions() as session:
            await session.execute(update(TenantRow).where(TenantRow.id == tenant_id)
                                  .values(name="Reread Shop Ltd"))
            await session.commit()
        # Past its time: the requests get the settings they had at once, one query rereads them.
        stale = await asyncio.gather(*(resolver.get("reread") for _ in range(50)))
        assert {t.name for t in stale} == {"Reread Shop"}
        for _ in range(100):  # the reread finishes in the background
            if (await resolver.get(tenant_id)).name == "Reread Shop Ltd":
                break
            await asyncio.sleep(0.01)
        assert (await resolver.get("reread")).name == "Reread Shop Ltd"

        async with sessions() as session:  # renamed: the old address stops working
            await session.execute(update(TenantRow).where(TenantRow.id == tenant_id)
                                  .values(slug="reread-renamed"))
            await session.commit()
        await resolver.get("reread")
        for _ in range(100):
            try:
                await resolver.get("reread")
            except UnknownTenant:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(UnknownTenant):
            await resolver.get("reread")
        assert (await resolver.get("reread-renamed")).id == tenant_id
        assert (await resolver.get("demo")).name == "Demo Outfitters"  # the demo shop untouched


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
    from devtools.demo_shop import demo_channel_credentials
    from tenants.__main__ import check_credentials

    check_credentials("demo", demo_channel_credentials())
