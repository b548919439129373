"""The owner page's Channels, Developers and Audit log tabs, privacy requests from a
transcript, and the Texts tab's pages, in headless Chromium against a real admin process
(`python -m admin_api serve` on a migrated SQLite database, as tests/admin_api/
test_pages_browser.py starts it).

One browser, two walks. The owner's: Twilio connected with an Account SID the channel's own
check refuses (the 422 is shown under that field), then with a good one (its number shown, its
auth token never), and disconnected; a REST key created (shown once, copyable), gone on the
next visit and revoked; a webhook refused for its URL and then added (its signing secret shown
once); the audit log listing those changes newest first and filtered to keys; a visitor's data
exported and erased from their transcript; the texts a page at a time. Then a designer and an
agent, who see none of the owner's tabs and no privacy form.

Marked `integration`: it needs Chromium (`make test` installs Debian's) and a server process.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from admin_api import people
from core.conversations import MessageRow
from core.db import create_engine, session_factory
from core.settings import async_database_url
from devtools.bootstrap import DEMO_OWNER_EMAIL, demo_people, env_value
from devtools.demo_shop import DEMO_TENANT_ID, seed_demo
from tests.admin_api.test_pages_browser import admin_process, log_in
from tests.browser import chromium, require_chromium, watched_page
from tests.databases import migrated_url

pytestmark = pytest.mark.integration

WAIT_MS = 10_000
DESIGNER = "designer@demo.example"
AGENT = "agent@demo.example"
JOINED = "joined@demo.example"
VISITOR = f"{DEMO_TENANT_ID}:web:privacy-visitor"
AUTH_TOKEN = "tw-auth-" + secrets.token_hex(8)


@dataclass(frozen=True)
class Served:
    base: str
    owner_password: str
    password: str  # the designer's and the agent's
    database_url: str


async def add_member(database_url: str, email: str) -> None:
    """`email` joins the demo shop as a designer (as accepting an invitation leaves it)."""
    engine = create_engine(async_database_url(database_url))
    try:
        sessions = session_factory(engine)
        await people.set_password(sessions, email, secrets.token_urlsafe(12), create=True)
        await people.ensure_member(sessions, DEMO_TENANT_ID, email, "designer")
    finally:
        await engine.dispose()


async def prepare(database_url: str, dev_env: Path, password: str) -> str:
    """The demo shop, its owner (`make run`'s bootstrap), a designer and an agent with
    `password`, and one visitor's conversation; returns the owner's password."""
    url = async_database_url(database_url)
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        await seed_demo(sessions)
        await demo_people(url, dev_env)
        for email, role in ((DESIGNER, "designer"), (AGENT, "agent")):
            await people.set_password(sessions, email, password, create=True)
            await people.ensure_member(sessions, DEMO_TENANT_ID, email, role)
        at = datetime.now(UTC) - timedelta(hours=1)
        async with sessions() as session:
            session.add_all([
                MessageRow(tenant_id=DEMO_TENANT_ID, sender_id=VISITOR, channel="web",
                           direction="in", message_id="privacy-in", text="please forget me",
                           intent="nlu_fallback", confidence=0.4, outcome="fallback",
                           created_at=at, handled_at=at),
                MessageRow(tenant_id=DEMO_TENANT_ID, sender_id=VISITOR, channel="web",
                           direction="out", message_id="privacy-out", text="Noted.",
                           created_at=at + timedelta(seconds=1)),
                # Another visitor's, still there for the designer and the agent.
                MessageRow(tenant_id=DEMO_TENANT_ID, sender_id=f"{VISITOR}-2", channel="web",
                           direction="in", message_id="other-in", text="hello",
                           intent="greet", confidence=0.9, outcome="flow",
                           created_at=at, handled_at=at)])
            await session.commit()
    finally:
        await engine.dispose()
    owner_password = env_value(dev_env, "DEMO_OWNER_PASSWORD")
    assert owner_password, f"{dev_env}: no DEMO_OWNER_PASSWORD"
    return owner_password


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    require_chromium()
    root = tmp_path_factory.mktemp("owner-tabs")
    database_url = migrated_url("sqlite", root)
    password = secrets.token_urlsafe(12)
    owner_password = asyncio.run(prepare(database_url, root / "dev.env", password))
    with admin_process(root, database_url) as base:
        yield Served(base, owner_password, password, database_url)


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Browser]:
    expect.set_options(timeout=WAIT_MS)
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Page]:
    with watched_page(browser, WAIT_MS, permissions=["clipboard-read", "clipboard-write"],
                      base_url=served.base) as page:
        yield page


def accept_next_dialog(page: Page) -> list[str]:
    """Accepts the next confirm(); returns the list its message lands in."""
    said: list[str] = []

    def accept(dialog: Dialog) -> None:
        said.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    return said


def connect_twilio(page: Page) -> None:
    page.get_by_role("tab", name="Channels").click()
    # The widget's card hands the owner the script tag to paste, with the shop's key.
    web = page.locator('article[data-channel="web"]')
    tag = web.get_by_label("Script tag for your shop's pages")
    expect(tag).to_have_value(re.compile(
        r'^<script src="http://127\.0\.0\.1:\d+/channels/demo/web/widget\.js" '
        r'data-key="pk_[\w-]+" async></script>$'))
    twilio = page.locator('article[data-channel="twilio"]')
    expect(twilio.locator(".badge")).to_have_text("not connected")
    twilio.get_by_text("Connect Twilio").click()
    form = twilio.get_by_role("form", name="Twilio settings")
    form.get_by_label("Account SID").fill("XY123")
    form.get_by_label("Auth token").fill(AUTH_TOKEN)
    form.get_by_label("SMS numbers").fill("+1 555 000 1111")
    form.get_by_role("button", name="Connect").click()
    sid = form.get_by_label("Account SID")
    expect(sid).to_have_attribute("aria-invalid", "true")
    expect(sid).to_be_focused()
    error = form.locator(".field-error:visible")
    expect(error).to_have_count(1)
    expect(error).to_contain_text("Account SID from Twilio's console")
    assert str(error.get_attribute("id")) in (sid.get_attribute("aria-describedby") or "")

    sid.fill("AC0123456789")
    form.get_by_role("button", name="Connect").click()
    # Said in the card, where the person is, with the focus there (the panel's own status
    # line is above the visible part of the page once a card lower down is saved).
    twilio = page.locator('article[data-channel="twilio"]')
    saved = twilio.locator(".card-status")
    expect(saved).to_have_text("Twilio: saved, connected.")
    expect(saved).to_be_focused()
    expect(saved).to_be_in_viewport()
    expect(twilio.locator(".badge")).to_have_text("connected")
    expect(twilio.locator(".facts")).to_contain_text("+1 555 000 1111")
    expect(twilio.locator(".facts")).to_contain_text("Auth token (never shown)")
    twilio.get_by_text("Change the Twilio settings").click()
    expect(twilio.get_by_label("Auth token")).to_have_value("")
    assert AUTH_TOKEN not in page.content()

    said = accept_next_dialog(page)
    twilio.get_by_role("button", name="Disconnect Twilio").click()
    expect(twilio.locator(".card-status")).to_have_text("Twilio: disconnected.")
    expect(page.locator('article[data-channel="twilio"] .badge')).to_have_text("not connected")
    assert said and "Disconnect Twilio" in said[0]


def create_and_revoke_a_key(page: Page) -> None:
    page.get_by_role("tab", name="Developers").click()
    page.get_by_label("Label (what uses this key)").fill("order system")
    page.get_by_label("What the key may do").select_option("rest")
    page.get_by_role("button", name="Create a key").click()
    shown = page.locator("#keys-new").get_by_role("textbox")
    expect(shown).to_have_value(re.compile(r"^sb_live_[0-9a-f]+_[\w-]+$"))
    expect(shown).to_be_focused()
    expect(page.locator("#keys-new")).to_contain_text("shown only this once")
    secret = shown.input_value()
    page.locator("#keys-new").get_by_role("button", name="Copy").click()
    expect(page.locator("#keys-new").get_by_role("status")).to_have_text("Copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    row = page.locator("#keys-table tbody tr", has_text="order system")
    expect(row).to_contain_text("active")

    page.get_by_role("tab", name="Channels").click()  # away and back: shown once only
    page.get_by_role("tab", name="Developers").click()
    page.reload()
    expect(page.locator("#keys-table tbody tr", has_text="order system")).to_be_visible()
    expect(page.locator("#keys-new")).to_be_empty()
    assert secret not in page.content()

    said = accept_next_dialog(page)
    page.get_by_role("button", name="Revoke order system").click()
    expect(page.locator("#keys-status")).to_have_text("Revoked “order system”.")
    expect(page.locator("#keys-table tbody tr", has_text="order system")).to_contain_text("revoked")
    assert said and "cannot be undone" in said[0]


def add_a_webhook(page: Page) -> None:
    url = page.get_by_label("URL the events are sent to")
    url.fill("ftp://helpdesk.example/hook")
    page.get_by_label(re.compile("^satisfaction.given")).uncheck()
    page.get_by_role("button", name="Add the webhook").click()
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#webhooks-form .field-error:visible")).to_contain_text("https://")

    url.fill("http://127.0.0.1:9/switchboard-events")
    page.get_by_role("button", name="Add the webhook").click()
    expect(page.locator("#webhooks-new").get_by_role("textbox")).to_have_value(
        re.compile(r"^whsec_"))
    row = page.locator("#webhooks-table tbody tr", has_text="/switchboard-events")
    expect(row).to_contain_text("handoff.claimed, handoff.requested")
    expect(row).not_to_contain_text("satisfaction.given")
    row.get_by_role("button", name=re.compile("^Deliveries")).click()
    expect(page.locator("#webhooks-table")).to_contain_text("Nothing sent yet")


def read_the_audit_log(page: Page) -> None:
    page.get_by_role("tab", name="Audit log").click()
    rows = page.locator("#audit-table tbody tr")
    expect(rows.first).to_contain_text("webhook.create")  # newest first
    actions = [rows.nth(i).locator("td").nth(2).inner_text() for i in range(rows.count())]
    assert actions[:5] == ["webhook.create", "key.revoke", "key.create", "channel.remove",
                           "channel.credentials"], actions
    expect(rows.first).to_contain_text(f"user:{DEMO_OWNER_EMAIL}")
    expect(page.locator("#audit-table")).not_to_contain_text(AUTH_TOKEN)
    page.get_by_label("Kind of change").select_option(label="API keys")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(2)
    expect(page.locator("#audit-status")).to_have_text("2 entries.")
    # Details a line per field, given the width to read them (they were squeezed to a few
    # characters a line by the long ids beside them).
    created = rows.filter(has_text="key.create").locator("td.change li")
    expect(created).to_have_text(["name: order system", "role: rest"])
    box = created.first.bounding_box()
    assert box and box["width"] >= 200, box
    # Who: a part of the owner's email as an owner types it, not the log's "user:..." form.
    page.get_by_label("Kind of change").select_option(label="any change")
    page.get_by_label("Who", exact=True).fill("OWNER@demo")
    page.get_by_role("button", name="Show").click()
    expect(rows.first).to_contain_text("webhook.create")
    who = page.locator("#audit-table tbody td.actor")
    assert set(who.all_inner_texts()) == {f"user:{DEMO_OWNER_EMAIL}"}
    page.get_by_label("Who", exact=True).fill("nobody")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#audit-status")).to_have_text("No entry matches.")
    page.get_by_label("Who", exact=True).fill("")


def export_and_erase_a_visitor(page: Page) -> None:
    page.get_by_role("tab", name="Conversations").click()
    page.locator("#conversations-table tbody tr", has_text="Noted.").click()
    page.get_by_role("button", name="Export or erase this visitor's data").click()
    value = page.get_by_label("Visitor", exact=True)
    expect(value).to_be_focused()
    expect(value).to_have_value(re.compile(r"^c_"))
    page.get_by_role("button", name="Export", exact=True).click()
    status = page.locator("#privacy-status")
    expect(status).to_contain_text("Found 1 conversation, 2 messages")
    with page.expect_download() as download:
        page.get_by_role("link", name="Save the export (JSON)").click()
    assert "please forget me" in Path(download.value.path()).read_text()

    said = accept_next_dialog(page)
    page.get_by_role("button", name="Erase…").click()
    expect(status).to_contain_text("Erased: ")
    expect(status).to_contain_text("2 messages")
    assert said and "cannot be undone" in said[0]
    # The erased conversation leaves the list and its transcript closes, without a Search.
    expect(page.locator("#conversations-table tbody tr", has_text="Noted.")).to_have_count(0)
    expect(page.locator("#conversations-table tbody tr", has_text="hello")).to_have_count(1)
    expect(page.locator("#transcript")).to_be_hidden()
    page.get_by_role("button", name="Export", exact=True).click()
    expect(status).to_contain_text("Nothing found: nothing is stored about this visitor")


def page_through_texts(page: Page) -> None:
    page.get_by_role("tab", name="Texts").click()
    cards = page.locator("#texts-list article:visible")
    expect(page.locator("#texts-pager")).to_contain_text("Page 1 of")
    expect(cards).to_have_count(10)
    first = cards.first.get_attribute("data-name")
    page.locator("#texts-pager").get_by_role("button", name="Next").click()
    expect(page.locator("#texts-pager")).to_contain_text("Page 2 of")
    assert cards.first.get_attribute("data-name") != first
    page.get_by_label("Find a response").fill("utter_greet")
    expect(page.locator('article[data-name="utter_greet"]')).to_be_visible()
    expect(page.locator("#texts-pager")).to_be_empty()  # one page of matches


def see_people_join(page: Page, served: Served) -> None:
    """A tab shown again lists what changed meanwhile: someone who joined since People was
    last shown is listed (People once kept showing an invitee as invited after she joined)."""
    page.get_by_role("tab", name="People").click()
    expect(page.locator("#people-table tbody tr", has_text=DESIGNER)).to_be_visible()
    expect(page.locator("#people-table tbody tr", has_text=JOINED)).to_have_count(0)
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs a loop in this thread
        pool.submit(asyncio.run, add_member(served.database_url, JOINED)).result(30)
    page.get_by_role("tab", name="Channels").click()
    page.get_by_role("tab", name="People").click()
    expect(page.locator("#people-table tbody tr", has_text=JOINED)).to_contain_text("active")


def test_an_owner_manages_channels_keys_webhooks_audit_and_privacy_on_the_page(
        served: Served, page: Page) -> None:
    log_in(page, served.base, DEMO_OWNER_EMAIL, served.owner_password)
    see_people_join(page, served)
    connect_twilio(page)
    create_and_revoke_a_key(page)
    add_a_webhook(page)
    read_the_audit_log(page)
    export_and_erase_a_visitor(page)
    page_through_texts(page)
    fits_a_phone(page)


def fits_a_phone(page: Page) -> None:
    """At a phone's width each tab lays out within it (tables scroll inside their box): the
    tables' hidden column headings once widened Developers to 884 px (walkthrough)."""
    page.set_viewport_size({"width": 390, "height": 844})
    for tab in ("Channels", "Developers", "Audit log", "People", "Billing", "Texts"):
        page.get_by_role("tab", name=tab).click()
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (tab, width)
        if tab == "Audit log":  # each entry a block: its details get the phone's width
            details = page.locator("#audit-table td.change li").first
            expect(details).to_be_visible()
            box = details.bounding_box()
            assert box and box["width"] >= 250, box


@pytest.mark.parametrize(("email", "first_tab"), [(DESIGNER, "Texts"),
                                                  (AGENT, "Conversations")])
def test_designers_and_agents_see_none_of_the_owners_tabs(
        served: Served, page: Page, email: str, first_tab: str) -> None:
    log_in(page, served.base, email, served.password)
    expect(page.get_by_role("tab", name=first_tab)).to_have_attribute("aria-selected", "true")
    for tab in ("Channels", "Developers", "Audit log", "Settings", "Billing"):
        expect(page.get_by_role("tab", name=tab)).to_be_hidden()
    page.goto(f"{served.base}/app/#audit")  # a link to a tab the role may not use
    expect(page.locator("#panel-audit")).to_be_hidden()
    page.get_by_role("tab", name="Conversations").click()
    expect(page.locator("#conversations-table tbody tr").first).to_be_visible()
    page.locator("#conversations-table tbody tr").first.click()
    expect(page.locator("#transcript")).to_be_visible()
    expect(page.locator("#privacy")).to_be_hidden()
    expect(page.locator("#transcript-privacy")).to_be_hidden()
