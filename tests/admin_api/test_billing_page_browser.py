"""The owner page's Billing tab in headless Chromium, with billing on.

The admin service runs as a subprocess (tests/admin_api/test_pages_browser.py's
`admin_process`) with STRIPE_API_KEY set and STRIPE_API_BASE pointing at the Stripe sandbox
(tests/fakes/stripe_server.py), served over HTTP from an event loop in a thread of this
process for the module's life. The demo shop starts on the free plan with 8 of its 10
knowledge documents and its 1 agent. An owner opening /app/#billing lands on the tab and
sees the plan in words, usage against the limits (80 % and 100 % marked), the plans with
"Choose" buttons; one agent more in People is a 402 whose message links to Billing. Choose
"starter" opens the sandbox's Checkout; "Pay" brings the owner back to
/app/?checkout=done#billing, which says the plan applies once Stripe confirms and checks
again: the webhook's effect (written here, as the gateway's handler would) shows as the
starter plan, with its invoice and "Manage billing" opening the portal, whose "Back" returns
to the tab. A failed payment shows the grace period's end; ?checkout=cancelled says nothing
changed. Comped on pro, choosing starter lists what it takes away and asks first (keep pro,
or go on to Checkout); agent seats say how they are counted. A designer never sees the tab.

Marked `integration`: Chromium and a server process of its own.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from sqlalchemy import select

from admin_api import people
from billing.tables import BillingAccountRow
from core.db import create_engine, session_factory, utcnow
from core.settings import async_database_url
from devtools.demo_shop import DEMO_TENANT_ID
from knowledge.tables import KnowledgeDocumentRow
from tests.admin_api.test_pages_browser import OWNER, WAIT_MS, admin_process, prepare
from tests.browser import chromium, require_chromium, watched_page
from tests.databases import migrated_url
from tests.fakes.stripe_server import StripeServer, stripe_server

pytestmark = pytest.mark.integration

DESIGNER = "dana.designer@demo.example"
AGENT = "ann.agent@demo.example"
PEOPLE_PASSWORD = "designer password 123"


@dataclass(frozen=True)
class Billed:
    base: str
    owner_password: str
    database_url: str
    stripe: StripeServer


@contextmanager
def stripe_in_a_thread() -> Iterator[StripeServer]:
    """The sandbox served from its own event loop in a thread (the admin process reaches it
    over HTTP while this thread runs the browser)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="stripe-sandbox", daemon=True)
    thread.start()
    serving = stripe_server()
    try:
        fake = asyncio.run_coroutine_threadsafe(serving.__aenter__(), loop).result(30)
        try:
            yield fake
        finally:
            asyncio.run_coroutine_threadsafe(
                serving.__aexit__(None, None, None), loop).result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def add_people_and_documents(database_url: str) -> None:
    """A designer and an agent who log in with PEOPLE_PASSWORD; 8 knowledge documents."""
    engine = create_engine(async_database_url(database_url))
    try:
        sessions = session_factory(engine)
        for email, role in ((DESIGNER, "designer"), (AGENT, "agent")):
            await people.set_password(sessions, email, PEOPLE_PASSWORD, create=True)
            await people.ensure_member(sessions, DEMO_TENANT_ID, email, role)
        async with sessions() as session:
            session.add_all(KnowledgeDocumentRow(tenant_id=DEMO_TENANT_ID, source=f"doc-{n}.md",
                                                 title=f"Doc {n}", content_hash="0" * 64)
                            for n in range(8))
            await session.commit()
    finally:
        await engine.dispose()


def set_account(database_url: str, **values: object) -> None:
    """The demo shop's billing row as the gateway's webhook handler would leave it (in a
    thread: Playwright's sync API keeps an event loop running in this one)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _set_account(database_url, values)).result(30)


async def _set_account(database_url: str, values: dict[str, object]) -> None:
    engine = create_engine(async_database_url(database_url))
    try:
        async with session_factory(engine)() as session:
            row = (await session.execute(select(BillingAccountRow).where(
                BillingAccountRow.tenant_id == DEMO_TENANT_ID))).scalar_one_or_none()
            if row is None:  # no checkout yet (this test's module fixture on its own)
                row = BillingAccountRow(tenant_id=DEMO_TENANT_ID)
                session.add(row)
            for key, value in values.items():
                setattr(row, key, value)
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def billed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Billed]:
    # The page on SQLite only: what it shows comes from the routes, which
    # tests/admin_api/test_billing.py checks on both databases.
    require_chromium()
    root = tmp_path_factory.mktemp("billing-page")
    database_url = migrated_url("sqlite", root)
    password = asyncio.run(prepare(database_url, root / "dev.env"))
    asyncio.run(add_people_and_documents(database_url))
    with stripe_in_a_thread() as fake, admin_process(
            root, database_url, STRIPE_API_KEY=fake.api_key,
            STRIPE_API_BASE=fake.base_url) as base:
        yield Billed(base, password, database_url, fake)


@pytest.fixture(scope="module")
def browser(billed: Billed) -> Iterator[Browser]:
    expect.set_options(timeout=WAIT_MS)
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh, watched page (tests/browser.py); en-US: amounts and numbers as asserted."""
    with watched_page(browser, WAIT_MS, timezone_id="UTC", locale="en-US") as page:
        yield page


def log_in_at(page: Page, url: str, email: str, password: str) -> None:
    page.goto(url)
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def usage_row(page: Page, what: str) -> Locator:
    return page.locator("#billing-usage tbody tr", has=page.locator("th", has_text=what))


def test_an_owner_sees_the_free_plan_and_buys_starter_on_stripe(
        billed: Billed, page: Page) -> None:
    log_in_at(page, f"{billed.base}/app/#billing", OWNER, billed.owner_password)
    tab = page.get_by_role("tab", name="Billing")
    expect(tab).to_have_attribute("aria-selected", "true")
    expect(page.locator("#billing-summary")).to_contain_text("Plan nowfree")
    expect(page.locator("#billing-state")).to_have_text("Free: the free plan, no subscription.")
    expect(page.get_by_role("button", name="Manage billing")).to_be_hidden()

    conversations = usage_row(page, "Conversations this month")
    expect(conversations.locator("td").nth(1)).to_have_text("100")
    expect(conversations).to_contain_text("+ 0 refused past the limit")
    expect(usage_row(page, "LLM tokens").locator("td").nth(1)).to_have_text("50,000")
    documents = usage_row(page, "Knowledge documents")
    expect(documents.locator("td").first).to_have_text("8")
    expect(documents).to_have_class("near")
    expect(documents).to_contain_text("80 % or more")
    agents = usage_row(page, "Agents")
    expect(agents).to_have_class("reached")
    expect(agents).to_contain_text("limit reached")
    expect(usage_row(page, "Channels")).not_to_have_class(re.compile("near|reached"))

    plans = page.locator("#billing-plans tbody tr")
    expect(plans).to_have_count(3)
    expect(plans.nth(0)).to_contain_text("current plan")
    expect(plans.nth(0).get_by_role("button")).to_have_count(0)
    expect(plans.nth(2)).to_contain_text("no limit")  # pro: channels and agents
    # What its usage price counts, in words (it said "$0.01 per unit used").
    expect(plans.nth(2).locator("td.price")).to_contain_text(
        "$99.00 a monthplus usage: $0.01 per conversation, billed monthly")
    expect(page.locator("#billing-invoices-note")).to_have_text("No invoices yet.")

    # One agent more than the free plan allows: the 402's detail, and a way to the plans.
    page.get_by_role("tab", name="People").click()
    page.get_by_label("Email to invite").fill("bo.agent@demo.example")
    page.get_by_label("Role").select_option("agent")
    page.get_by_role("button", name="Invite").click()
    status = page.locator("#people-status")
    expect(status).to_contain_text("the free plan allows 1 agents")
    status.get_by_role("link", name="See the plans under Billing.").click()
    expect(tab).to_have_attribute("aria-selected", "true")
    expect(tab).to_be_focused()

    page.get_by_role("button", name="Choose starter").click()
    page.wait_for_url(f"{billed.stripe.base_url}/stripe/checkout/cs_test_*")
    session_id = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(f"{billed.base}/app/#billing")  # ?checkout=done taken out of the address
    notice = page.locator("#billing-notice")
    expect(notice).to_contain_text("the plan applies as soon as Stripe confirms")

    # Stripe's events as the gateway stores them (no gateway here): the page's next check
    # shows the plan.
    checkout = billed.stripe.sandbox.checkout_sessions[session_id]
    subscription = billed.stripe.sandbox.subscriptions[checkout["subscription"]]
    period_end = utcnow() + timedelta(days=30)
    set_account(billed.database_url, plan="starter", status="active",
                stripe_subscription_id=subscription["id"], current_period_end=period_end)
    expect(notice).to_have_text("Stripe confirmed: the starter plan applies now.")
    expect(page.locator("#billing-summary")).to_contain_text("Plan nowstarter")
    expect(page.locator("#billing-state")).to_contain_text("Active: the starter plan, renewed on")
    expect(page.locator("#billing-summary")).to_contain_text(f"{period_end:%B} {period_end.day}")
    expect(agents).not_to_have_class("reached")  # 1 of starter's 5
    expect(plans.nth(1)).to_contain_text("current plan")
    (invoice,) = billed.stripe.sandbox.invoices.values()
    row = page.locator("#billing-invoices tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(invoice["number"])
    expect(row).to_contain_text("paid")
    expect(row).to_contain_text(f"${invoice['total'] / 100:,.2f}")
    expect(row.get_by_role("link", name=f"View invoice {invoice['number']}")).to_have_attribute(
        "href", invoice["hosted_invoice_url"])

    page.get_by_role("button", name="Manage billing").click()
    page.wait_for_url(f"{billed.stripe.base_url}/stripe/portal/*")
    page.get_by_role("link", name="Back").click()
    page.wait_for_url(f"{billed.base}/app/#billing")
    expect(tab).to_have_attribute("aria-selected", "true")
    expect(page.locator("#billing-summary")).to_contain_text("Plan nowstarter")

    # A failed payment: the plan stays for the grace period, whose end is shown.
    set_account(billed.database_url, status="past_due", past_due_since=utcnow())
    page.goto(f"{billed.base}/app/?checkout=cancelled#billing")
    expect(notice).to_have_text("Checkout cancelled: nothing changed.")
    assert "checkout" not in page.url
    grace = utcnow() + timedelta(days=7)
    state = page.locator("#billing-state")
    expect(state).to_contain_text("A payment failed. The starter plan stays until "
                                  f"{grace:%B} {grace.day}, {grace.year}")
    expect(state).to_have_class(re.compile("error"))


def test_a_smaller_plan_says_what_the_shop_loses_and_asks_first(
        billed: Billed, page: Page) -> None:
    """Comped on pro (as `make run`'s demo shop): choosing starter lists what it takes away
    (agent seats and the rest, own models) and asks; keeping pro stays on the page, going on
    opens Stripe. Agent seats say how they are counted, with the numbers."""
    set_account(billed.database_url, plan="pro", status="comped", past_due_since=None,
                stripe_subscription_id=None)
    log_in_at(page, f"{billed.base}/app/#billing", OWNER, billed.owner_password)
    agents = usage_row(page, "Agents")
    expect(agents).to_contain_text(
        "1 person + 2 agent API keys, a seat each; owners are not counted")
    expect(page.locator("#billing-plans-hint")).to_contain_text(
        "Agents: Each person with the agent role (pending invitations included) and each "
        "agent API key takes an agent seat; owners are not counted.")

    page.get_by_role("button", name="Choose starter").click()
    confirm = page.get_by_role("group", name="The starter plan allows less than the shop has now")
    expect(confirm).to_contain_text("Compared with the pro plan, the shop would have:")
    expect(confirm.locator("li")).to_have_count(6)
    expect(confirm).to_contain_text("Agent seats: 5 instead of no limit")
    expect(confirm).to_contain_text("Channels besides the web widget: 3 instead of no limit")
    expect(confirm).to_contain_text(
        "Own models: designers can no longer train the shop's own models")
    sessions_before = len(billed.stripe.sandbox.checkout_sessions)
    confirm.get_by_role("button", name="Keep the pro plan").click()
    expect(confirm).to_have_count(0)
    expect(page.get_by_role("button", name="Choose starter")).to_be_focused()
    assert len(billed.stripe.sandbox.checkout_sessions) == sessions_before

    page.get_by_role("button", name="Choose starter").click()
    confirm.get_by_role("button", name="Change to starter anyway").click()
    page.wait_for_url(f"{billed.stripe.base_url}/stripe/checkout/cs_test_*")
    assert len(billed.stripe.sandbox.checkout_sessions) == sessions_before + 1


def test_a_designer_does_not_see_billing(billed: Billed, page: Page) -> None:
    log_in_at(page, f"{billed.base}/app/#billing", DESIGNER, PEOPLE_PASSWORD)
    expect(page.get_by_role("tab", name="Texts")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab", name="Billing")).to_be_hidden()
    expect(page.locator("#panel-billing")).to_be_hidden()
