"""Seeding restores the demo shop completely, whatever a developer or a test changed.

`make run` after `make test` (or after an experiment) must find the shop called `demo` with the
demo settings; complete channel credentials keep their secrets so a running sandbox or
try_channel keeps working, missing or broken ones get fresh ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from actions.commerce.tables import DemoOrderRow
from devtools.demo_shop import (
    DEMO_GREETING,
    DEMO_ORDERS,
    DEMO_TENANT_ID,
    DEMO_WIDGET_KEY,
    DEMO_WIDGET_THEME,
    DemoShopConflict,
    seed_demo,
)
from tenants import TenantResolver, TenantRow
from tenants.crypto import CredentialsBox
from tenants.models import DEFAULT_LLM_MODEL
from tests.databases import database_params, migrated_url, seeded_sessions


@pytest.mark.parametrize("kind", database_params())
@pytest.mark.asyncio
async def test_seeding_puts_every_demo_setting_back(kind: str, tmp_path: Path) -> None:
    async with seeded_sessions(migrated_url(kind, tmp_path)) as (_, sessions):
        async with sessions() as session:
            await session.execute(update(TenantRow).where(TenantRow.id == DEMO_TENANT_ID).values(
                slug="demo-renamed", name="Renamed", greeting="Yo", return_window_days=3,
                order_backend="shopify", llm_model="claude-other", llm_max_tokens=9,
                llm_temperature=0.9, widget_key="pk_other", widget_theme={"primary": "#000"}))
            await session.execute(delete(DemoOrderRow).where(DemoOrderRow.number == "1001"))
            await session.commit()

        await seed_demo(sessions)

        tenant = await TenantResolver(sessions).get("demo")
        assert tenant.id == DEMO_TENANT_ID
        assert (tenant.name, tenant.greeting, tenant.return_window_days, tenant.order_backend) == (
            "Demo Outfitters", DEMO_GREETING, 30, "demo")
        assert (tenant.llm_model, tenant.llm_max_tokens, tenant.llm_temperature) == (
            DEFAULT_LLM_MODEL, 400, 0.2)
        assert (tenant.widget_key, tenant.widget_theme) == (DEMO_WIDGET_KEY, DEMO_WIDGET_THEME)
        async with sessions() as session:
            orders = (await session.execute(
                select(func.count()).select_from(DemoOrderRow)
                .where(DemoOrderRow.tenant_id == DEMO_TENANT_ID))).scalar()
        assert orders == len(DEMO_ORDERS)


@pytest.mark.parametrize("kind", database_params())
@pytest.mark.asyncio
async def test_complete_channel_secrets_are_kept_and_broken_ones_replaced(kind: str,
                                                                         tmp_path: Path) -> None:
    box = CredentialsBox(CredentialsBox.generate_key())
    async with seeded_sessions(migrated_url(kind, tmp_path)) as (_, sessions):
        await seed_demo(sessions, box=box, smtp_port=2600)
        async with sessions() as session:
            row = await session.get(TenantRow, DEMO_TENANT_ID)
            first = box.open(row.credentials_encrypted)
            # A developer broke one section and deleted another.
            broken = {**first, "twilio": {**first["twilio"], "auth_token": ""}}
            del broken["email"]
            row.credentials_encrypted = box.seal(broken)
            await session.commit()

        await seed_demo(sessions, box=box, smtp_port=2700)

        async with sessions() as session:
            again = box.open((await session.get(TenantRow, DEMO_TENANT_ID)).credentials_encrypted)
        assert again["meta_whatsapp"] == first["meta_whatsapp"]  # complete: kept as it was
        assert again["twilio"]["auth_token"]  # incomplete: a fresh pair
        assert again["twilio"]["account_sid"] != first["twilio"]["account_sid"]
        assert again["email"]["mailgun_signing_key"]
        assert again["email"]["smtp"]["port"] == 2700  # where the sandbox listens now

        # Sealed with a key that is gone (var/dev.env regenerated): fresh secrets, no crash.
        other = CredentialsBox(CredentialsBox.generate_key())
        await seed_demo(sessions, box=other)
        async with sessions() as session:
            fresh = other.open((await session.get(TenantRow, DEMO_TENANT_ID)).credentials_encrypted)
        assert set(fresh) == {"twilio", "meta_whatsapp", "email"}


@pytest.mark.parametrize("kind", database_params())
@pytest.mark.asyncio
async def test_another_shop_holding_the_demo_slug_is_named(kind: str, tmp_path: Path) -> None:
    async with seeded_sessions(migrated_url(kind, tmp_path)) as (_, sessions):
        async with sessions() as session:
            await session.execute(update(TenantRow).where(TenantRow.id == DEMO_TENANT_ID)
                                  .values(slug="demo-renamed", widget_key=None))
            session.add(TenantRow(id="squatter", slug="demo", name="Squatter",
                                  return_window_days=14, order_backend="demo",
                                  widget_key=DEMO_WIDGET_KEY))
            await session.commit()
        try:
            with pytest.raises(DemoShopConflict, match="tenant squatter .*slug 'demo'.*widget key"):
                await seed_demo(sessions)
        finally:
            async with sessions() as session:
                await session.execute(delete(TenantRow).where(TenantRow.id == "squatter"))
                await session.commit()
        await seed_demo(sessions)  # the way out the message gives
        assert (await TenantResolver(sessions).get("demo")).id == DEMO_TENANT_ID
