"""Each tenant gets its own backend, built from its encrypted credentials."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from actions.commerce.base import BackendNotConfigured, Order, OrderState
from actions.commerce.demo_store import DemoStoreBackend
from actions.commerce.shopify import ShopifyBackend
from actions.commerce.woocommerce import WooCommerceBackend
from actions.runtime import Runtime
from core.settings import Settings
from tenants import Tenant, TenantResolver, TenantRow
from tenants.crypto import CredentialsBox
from tests.databases import migrated_url, seeded_sessions
from tests.fakes.shopify_server import ShopifyFake

KEY = CredentialsBox.generate_key()
ROOT = Path(__file__).resolve().parents[2]


def tenants_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tenants", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def shop() -> Iterator[ShopifyFake]:
    with ShopifyFake(token="shpat_cli_token") as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    url = migrated_url("sqlite", tmp_path)
    env = {"DATABASE_URL": url, "SWITCHBOARD_CREDENTIALS_KEY": KEY, "RASA_TOKEN": "t",
           "SWITCHBOARD_VAR_DIR": str(tmp_path),
           "ALLOW_PRIVATE_DESTINATIONS": "true"}  # the fake Shopify is on loopback
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env(env)


@asynccontextmanager
async def seeded_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """The action server's runtime on the test database, built as `runtime()` builds it."""
    async with seeded_sessions(settings.database_url) as (engine, sessions):
        runtime = Runtime(settings=settings, engine=engine, sessions=sessions,
                          tenants=TenantResolver(sessions), credentials=CredentialsBox(KEY))
        try:
            yield runtime
        finally:
            if runtime._http is not None:
                await runtime._http.aclose()


@pytest.mark.asyncio
async def test_cli_added_shopify_tenant_finds_orders_through_its_own_credentials(
    settings: Settings, shop: ShopifyFake, tmp_path: Path
) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"shopify": {"shop_url": shop.base_url,
                                             "access_token": "shpat_cli_token"}}))
    added = tenants_cli(["add", "--slug", "acme", "--name", "Acme", "--backend", "shopify",
                         "--credentials", str(creds)])
    assert added.returncode == 0, added.stderr
    listed = tenants_cli(["list"]).stdout
    assert "acme" in listed and "shopify" in listed and "shpat_cli_token" not in listed

    async with seeded_runtime(settings) as runtime:
        async with runtime.sessions() as session:
            found = await session.execute(select(TenantRow).where(TenantRow.slug == "acme"))
            row = found.scalar_one()
        assert b"shpat_cli_token" not in row.credentials_encrypted
        acme = await runtime.tenants.get("acme")
        backend = runtime.backend_for(acme)
        assert isinstance(backend, ShopifyBackend)
        order = await backend.find_order("1001", "alex.rivera@example.com")
        assert order is not None and order.state is OrderState.SHIPPED
        assert isinstance(runtime.backend_for(await runtime.tenants.get("demo")), DemoStoreBackend)
        woo = Tenant(id="w", slug="w", name="W", greeting=None, return_window_days=30,
                     order_backend="woocommerce",
                     credentials_encrypted=CredentialsBox(KEY).seal(
                         {"woocommerce": {"store_url": "https://w.example", "consumer_key": "ck",
                                          "consumer_secret": "cs"}}))
        assert isinstance(runtime.backend_for(woo), WooCommerceBackend)
        broken = Tenant(id="b", slug="b", name="B", greeting=None, return_window_days=30,
                        order_backend="shopify", credentials_encrypted=None)
        with pytest.raises(BackendNotConfigured):
            runtime.backend_for(broken)


def test_cli_refuses_incomplete_credentials(settings: Settings, tmp_path: Path) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"shopify": {"shop_url": "https://x.myshopify.com"}}))
    refused = tenants_cli(["add", "--slug", "xshop", "--name", "X", "--backend", "shopify",
                           "--credentials", str(creds)])
    assert refused.returncode != 0 and "shopify.access_token" in refused.stderr
    assert "xshop" not in tenants_cli(["list"]).stdout


class CountingBackend(DemoStoreBackend):
    calls = 0

    async def find_order(self, number: str, email: str) -> Order | None:
        CountingBackend.calls += 1
        return await super().find_order(number, email)


@pytest.mark.asyncio
async def test_verified_order_is_read_from_the_shop_once_per_short_window(
        settings: Settings) -> None:
    async with seeded_runtime(settings) as runtime:
        demo = await runtime.tenants.get("demo")
        runtime.backend_for(demo)
        version, _ = runtime._backends[demo.id]
        runtime._backends[demo.id] = (version, CountingBackend(runtime.sessions, demo.id))
        first = await runtime.find_order(demo, "1002", "sam@example.com")
        again = await runtime.find_order(demo, "1002", "SAM@example.com ")
        assert first == again and first is not None and CountingBackend.calls == 1
        assert await runtime.find_order(demo, "1002", "alex@example.com") is None
        assert await runtime.find_order(demo, "1002", "alex@example.com") is None
        assert CountingBackend.calls == 3  # misses are never cached
        runtime.order_ttl = 0
        await runtime.find_order(demo, "1002", "sam@example.com")
        assert CountingBackend.calls == 4


@pytest.mark.asyncio
async def test_new_credentials_build_a_new_backend_client(settings: Settings) -> None:
    """An owner's new credentials (admin API) take effect without restarting the actions."""
    async with seeded_runtime(settings) as runtime:
        demo = await runtime.tenants.get("demo")
        first = runtime.backend_for(demo)
        assert runtime.backend_for(demo) is first
        changed = dataclasses.replace(demo, credentials_encrypted=b"another sealed blob")
        assert runtime.backend_for(changed) is not first
        assert len(runtime._backends) == 1  # replaced, not accumulated
