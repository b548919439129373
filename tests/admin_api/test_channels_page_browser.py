"""The Channels tab's words for what is wrong, in headless Chromium against a real admin
process (tests/admin_api/test_pages_browser.py's `admin_process`): a card whose stored
credentials lack a field says so by the field's label ("Auth token is missing", never
`twilio.auth_token`), and the order backend's form puts a missing field's refusal next to that
field in the same words (the body is refused before the route runs: it once said pydantic's
"Field required").

The shop's credentials are stored as `python -m tenants add` or an older release leaves them,
without the admin API's check, sealed with the admin process's own key.

Marked `integration`: Chromium and a server process of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from core.db import create_engine, session_factory
from core.settings import async_database_url
from devtools.demo_shop import DEMO_TENANT_ID
from tenants.crypto import CredentialsBox
from tenants.models import TenantRow
from tests.admin_api.test_pages_browser import OWNER, WAIT_MS, Served, demo_served, log_in
from tests.browser import chromium, watched_page

pytestmark = pytest.mark.integration

KEY = CredentialsBox.generate_key()
STORED: dict[str, Any] = {
    "twilio": {"account_sid": "AC0123456789", "sms_numbers": ["+15550001111"]},
    "shopify": {"shop_url": "acme.myshopify.com"}}


async def store(database_url: str) -> None:
    """The demo shop's credentials lacking Twilio's auth token and Shopify's access token."""
    engine = create_engine(async_database_url(database_url))
    try:
        async with session_factory(engine)() as session:
            row = await session.get(TenantRow, DEMO_TENANT_ID)
            assert row is not None
            row.credentials_encrypted = CredentialsBox(KEY).seal(STORED)
            row.order_backend = "shopify"
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with demo_served(tmp_path_factory.mktemp("channels-page"), store,
                     SWITCHBOARD_CREDENTIALS_KEY=KEY) as served:
        yield served


@pytest.fixture
def page(served: Served) -> Iterator[Page]:
    expect.set_options(timeout=WAIT_MS)
    with chromium() as browser, watched_page(browser, WAIT_MS, base_url=served.base) as page:
        yield page


def test_the_channels_tab_says_what_is_wrong_by_the_fields_labels(
        served: Served, page: Page) -> None:
    log_in(page, served.base, OWNER, served.owner_password)
    page.get_by_role("tab", name="Channels").click()
    twilio = page.locator('article[data-channel="twilio"]')
    expect(twilio.locator(".badge")).to_have_text("needs attention")
    expect(twilio.locator(".problems li")).to_have_text(["Auth token is missing"])
    orders = page.locator('article[data-channel="order_backend"]')
    expect(orders.locator(".problems li")).to_have_text(["Admin API access token is missing"])
    assert "twilio.auth_token" not in page.content()

    # Saved without the token (a secret is never filled in again): refused next to it.
    orders.get_by_text("Change the order backend").click()
    form = orders.get_by_role("form", name="Order backend settings")
    expect(form.get_by_label("Shop address")).to_have_value("acme.myshopify.com")
    form.get_by_role("button", name="Save the order backend").click()
    token = form.get_by_label("Admin API access token")
    expect(token).to_have_attribute("aria-invalid", "true")
    expect(token).to_be_focused()
    error = form.locator(".field-error:visible")
    expect(error).to_have_text(["Admin API access token is missing"])
    expect(form.get_by_role("status")).to_have_text("Not saved: see the marked fields.")

    # WooCommerce with nothing filled in: each field says so under itself.
    form.get_by_label("Shop platform").select_option("woocommerce")
    form.get_by_role("button", name="Save the order backend").click()
    expect(form.locator(".field-error:visible")).to_have_text([
        "Store address is missing", "Consumer key is missing", "Consumer secret is missing"])
    expect(form.get_by_label("Store address")).to_be_focused()
