"""Shop settings over the admin API: an owner reads and changes them, bad values are refused
with a 422 that says which, the change is what the gateway reads (the tenant row), and the
audit log holds exactly the fields that changed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from admin_api.tables import AuditRow
from tenants.models import Tenant, TenantRow
from tenants.resolver import TenantResolver
from tests.admin_api.conftest import Admin

pytestmark = pytest.mark.asyncio

HOURS = {"timezone": "Europe/Berlin",
         "days": {"fri": [["13:00", "17:00"], ["09:00", "12:00"]], "mon": [["09:00", "24:00"]]}}


async def test_an_owner_reads_the_shops_settings(admin: Admin) -> None:
    status, settings = await admin.call("GET", "/settings")
    assert status == 200
    assert settings["slug"] == "demo" and settings["order_backend"] == "demo"
    assert settings["rate_per_shop"] > 0 and settings["retention_days"] is None
    assert "credentials_encrypted" not in settings and "widget_key" not in settings


async def test_a_change_reaches_what_the_gateway_reads_and_is_audited(admin: Admin) -> None:
    _, before = await admin.call("GET", "/settings")
    status, after = await admin.call("PATCH", "/settings", json={
        "greeting": "  Moin! How can we help?  ", "return_window_days": 14,
        "opening_hours": HOURS, "llm_monthly_token_budget": 250_000, "retention_days": 90,
        "rate_per_client": 0, "support_email": "Help@Demo.Example",
        "name": before["name"]})  # unchanged: not in the audit entry
    assert status == 200, after
    assert after["greeting"] == "Moin! How can we help?"
    assert after["support_email"] == "help@demo.example"
    # Days in week order, intervals in time order.
    assert list(after["opening_hours"]["days"]) == ["mon", "fri"]
    assert after["opening_hours"]["days"]["fri"][0] == ["09:00", "12:00"]

    # What the gateway and the actions see: a fresh resolver reads the new tenant.
    tenant: Tenant = await TenantResolver(admin.sessions).get(admin.demo.id)
    assert tenant.return_window_days == 14 and tenant.rate_per_client == 0
    assert tenant.llm_monthly_token_budget == 250_000 and tenant.retention_days == 90
    assert tenant.opening_hours["timezone"] == "Europe/Berlin"

    async with admin.sessions() as session:
        entry = (await session.execute(select(AuditRow).where(
            AuditRow.tenant_id == admin.demo.id, AuditRow.action == "settings.update")
        )).scalars().one()
    assert entry.actor.startswith("key:")
    assert set(entry.after or {}) == {"greeting", "return_window_days", "opening_hours",
                                      "llm_monthly_token_budget", "retention_days",
                                      "rate_per_client", "support_email"}
    assert (entry.before or {})["return_window_days"] == before["return_window_days"]
    assert (entry.before or {})["retention_days"] is None

    # null clears what may be empty; the same values again change nothing and log nothing.
    status, cleared = await admin.call("PATCH", "/settings", json={"retention_days": None})
    assert status == 200 and cleared["retention_days"] is None
    await admin.call("PATCH", "/settings", json={"return_window_days": 14})
    async with admin.sessions() as session:
        entries = (await session.execute(select(AuditRow).where(
            AuditRow.tenant_id == admin.demo.id))).scalars().all()
    assert len(entries) == 2


@pytest.mark.parametrize("body, field", [
    ({"return_window_days": -1}, "return_window_days"),
    ({"return_window_days": 366}, "return_window_days"),
    ({"verification_expiry_minutes": 0}, "verification_expiry_minutes"),
    ({"rate_per_shop": -5}, "rate_per_shop"),
    ({"llm_max_tokens": 10}, "llm_max_tokens"),
    ({"llm_temperature": 1.5}, "llm_temperature"),
    ({"llm_model": "gpt-4o"}, "llm_model"),
    ({"retention_days": 0}, "retention_days"),
    ({"support_email": "not an address"}, "support_email"),
    ({"name": "   "}, "name"),
    ({"greeting": "hello\x00there"}, "greeting"),
    ({"llm_monthly_token_budget": 3_000_000_000}, "llm_monthly_token_budget"),
    ({"order_backend": "magento"}, "order_backend"),
    ({"opening_hours": {"timezone": "Mars/Olympus", "days": {}}}, "opening_hours"),
    ({"opening_hours": {"timezone": "UTC", "days": {"mon": [["17:00", "09:00"]]}}},
     "opening_hours"),
    ({"opening_hours": {"timezone": "UTC", "days": {"mon": [["9:00", "12:00"]]}}},
     "opening_hours"),
    ({"opening_hours": {"timezone": "UTC",
                        "days": {"tue": [["09:00", "13:00"], ["12:00", "14:00"]]}}},
     "opening_hours"),
    ({"opening_hours": {"timezone": "UTC", "days": {"someday": []}}}, "opening_hours"),
    ({"slug": "mine"}, "slug"),
    ({"credentials_encrypted": "x"}, "credentials_encrypted"),
])
async def test_invalid_settings_are_refused_with_the_field_named(
        admin: Admin, body: dict[str, object], field: str) -> None:
    status, answer = await admin.call("PATCH", "/settings", json=body)
    assert status == 422, answer
    assert any(field in error["loc"] for error in answer["detail"]), answer
    _, settings = await admin.call("GET", "/settings")
    assert settings["return_window_days"] == 30  # nothing stored


async def test_a_refusal_reads_as_one_sentence_per_field(admin: Admin) -> None:
    """No "Input should be None" beside the real complaint for a field that may be empty,
    no union member's tag in the field's name, no "Value error, " before our own words."""
    status, answer = await admin.call("PATCH", "/settings",
                                      json={"return_window_days": 400, "retention_days": 0})
    assert status == 422
    assert [(e["loc"], e["msg"]) for e in answer["detail"]] == [
        (["return_window_days"], "Input should be less than or equal to 365"),
        (["retention_days"], "Input should be greater than or equal to 1")]
    status, answer = await admin.call("PATCH", "/settings", json={"return_window_days": None})
    assert [e["msg"] for e in answer["detail"]] == ["return_window_days cannot be null"]


async def test_null_is_refused_where_a_value_is_needed_and_empty_changes_nothing(
        admin: Admin) -> None:
    status, answer = await admin.call("PATCH", "/settings", json={"rate_per_shop": None})
    assert status == 422 and "rate_per_shop cannot be null" in str(answer["detail"])
    _, before = await admin.call("GET", "/settings")
    status, answer = await admin.call("PATCH", "/settings", json={})
    assert status == 200 and answer == before
    _, audit = await admin.call("GET", "/audit")
    assert audit["total"] == 0


async def test_a_backend_without_its_credentials_is_refused(admin: Admin) -> None:
    status, answer = await admin.call("PATCH", "/settings", json={"order_backend": "shopify"})
    assert status == 409
    # In the owner's words: which backend, which credentials (as the Channels tab labels
    # them), where to enter them; the API's names in fields of their own for programs.
    assert answer["detail"] == (
        "Shopify cannot answer order questions without its Shop address and Admin API access "
        "token: enter them on the Channels tab, under Orders (Shop platform: Shopify); saving "
        "there makes Shopify the shop's order backend")
    assert answer["backend"] == "shopify"
    assert answer["missing"] == ["shopify.shop_url", "shopify.access_token"]
    assert answer["set_with"] == "PUT /api/v1/channels/order_backend"
    status, answer = await admin.call("PATCH", "/settings", json={"order_backend": "woocommerce"})
    assert status == 409 and answer["detail"].startswith(
        "WooCommerce cannot answer order questions without its Store address, Consumer key and "
        "Consumer secret: enter them on the Channels tab")
    status, _ = await admin.call("PUT", "/channels/order_backend", json={
        "backend": "shopify", "credentials": {"shop_url": "demo.myshopify.com",
                                              "access_token": "shpat_secret_1"}})
    assert status == 200
    status, settings = await admin.call("PATCH", "/settings", json={"order_backend": "shopify"})
    assert status == 200 and settings["order_backend"] == "shopify"


async def test_only_owners_and_only_their_own_shop(admin: Admin) -> None:
    for role in ("designer", "agent"):
        for method, body in (("GET", None), ("PATCH", {"greeting": "hi"})):
            extra: dict[str, Any] = {"json": body} if body else {}
            status, answer = await admin.call(method, "/settings", role=role, **extra)
            assert status == 403 and answer["detail"]
    # The other shop's owner changes the other shop only.
    status, _ = await admin.call("PATCH", "/settings", shop=admin.other,
                                 json={"greeting": "Other's hello"})
    assert status == 200
    _, ours = await admin.call("GET", "/settings")
    assert ours["greeting"] != "Other's hello"
    async with admin.sessions() as session:
        other = (await session.execute(select(TenantRow).where(
            TenantRow.id == admin.other.id))).scalar_one()
    assert other.greeting == "Other's hello"


async def test_no_credentials_no_answer(admin: Admin) -> None:
    _, response = await admin.client.get("/api/v1/settings")
    assert response.status == 401
