"""The owner page in headless Chromium, against a real admin process.

`python -m admin_api serve` runs as a subprocess on a migrated SQLite database (see `served`)
with the demo shop and its owner
(owner@demo.example and DEMO_OWNER_PASSWORD, made by `make run`'s bootstrap) and no SMTP
server (so an invitation's answer carries its link). Debian's /usr/bin/chromium drives the
pages the way an owner does: logging in (a wrong password is shown as an error; the session
cookie is HttpOnly), changing a setting that is still there after a reload, a script's unsafe
request without the CSRF header refused while the page's own succeed, a text changed and
restored, a document uploaded, followed to its end as a job and deleted, a text written into
the knowledge base, the analytics of a day of conversations as a chart, the conversations
filtered and one transcript read, an owner inviting a person who chooses a password on
the invitation page and logs in with it, and an owner who forgot the password asking for a link
(mailed: that test's admin process has an SMTP server) and choosing a new one on /reset.

Marked `integration`: it needs Chromium, which `make test` installs (never a browser
download), and a server process of its own.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import time as clock
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from core.conversations import MessageRow
from core.db import create_engine, session_factory
from core.settings import async_database_url
from devtools.bootstrap import DEMO_OWNER_EMAIL, demo_people, env_value
from devtools.demo_shop import DEMO_TENANT_ID, seed_demo
from tenants.crypto import CredentialsBox
from tests.browser import chromium, require_chromium, watched_page
from tests.databases import migrated_url
from tests.integration.mailbox import Mailbox
from tests.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OWNER = DEMO_OWNER_EMAIL  # owner@demo.example, what `make run` prints
WAIT_MS = 10_000


@dataclass(frozen=True)
class Served:
    base: str
    owner_password: str


def today() -> date:
    return datetime.now(UTC).date()


# A day of the demo shop's web conversations: visitors' messages with what the bot made of
# them, and the bot's replies (the analytics tab's figures and chart).
TODAY_TURNS = [("where is my order 1001?", "order_status", "flow"),
               ("I want to return my jacket", "start_return", "flow"),
               ("do you sell gift cards?", "nlu_fallback", "fallback")]


async def prepare(database_url: str, dev_env: Path) -> str:
    """The demo shop and its owner as `make run` makes them (devtools.bootstrap writes
    DEMO_OWNER_PASSWORD to the dev env file), and three conversations of today; returns the
    owner's password as the file holds it."""
    url = async_database_url(database_url)
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        await seed_demo(sessions)
        await demo_people(url, dev_env)
        noon = datetime.combine(today(), time(12), UTC)
        async with sessions() as session:
            for n, (text, intent, outcome) in enumerate(TODAY_TURNS):
                sender = f"{DEMO_TENANT_ID}:web:visitor-{n}"
                at = noon - timedelta(minutes=10 * n)
                session.add_all([
                    MessageRow(tenant_id=DEMO_TENANT_ID, sender_id=sender, channel="web",
                               direction="in", message_id=f"in-{n}", text=text, intent=intent,
                               confidence=0.9, outcome=outcome, created_at=at, handled_at=at),
                    MessageRow(tenant_id=DEMO_TENANT_ID, sender_id=sender, channel="web",
                               direction="out", message_id=f"out-{n}", text="One moment.",
                               created_at=at + timedelta(seconds=1))])
            await session.commit()
    finally:
        await engine.dispose()
    password = env_value(dev_env, "DEMO_OWNER_PASSWORD")
    assert password, f"{dev_env}: no DEMO_OWNER_PASSWORD"
    return password


@contextmanager
def admin_process(root: Path, database_url: str, **extra_env: str) -> Iterator[str]:
    """`python -m admin_api serve` on `database_url` (files under `root`); yields its base
    URL once /health answers and stops it at the end. `extra_env` adds to (or overrides) its
    environment (the inbox test points GATEWAY_URL and RASA_URL at a recorder)."""
    port = free_port()
    # A clean environment: nothing of the developer's (SMTP_URL, REDIS_URL, ...) leaks in.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(root), "LANG": "C.UTF-8",
           "DATABASE_URL": database_url, "SWITCHBOARD_VAR_DIR": str(root / "var"),
           "ADMIN_HOST": "127.0.0.1", "ADMIN_PORT": str(port), "ADMIN_METRICS_PORT": "0",
           "RASA_TOKEN": secrets.token_urlsafe(24),
           "SWITCHBOARD_CREDENTIALS_KEY": CredentialsBox.generate_key(),
           "COOKIE_SECURE": "false", "LOG_LEVEL": "WARNING",
           # Shops' servers in these tests (a webhook's) are on loopback.
           "ALLOW_PRIVATE_DESTINATIONS": "true",
           # Loaded by the one upload that needs it (the lazy path), not at every start:
           # ~2 s of CPU and ~250 MB for each of these processes otherwise.
           "KNOWLEDGE_WARM": "false",
           **extra_env}
    log = (root / "admin.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "admin_api", "serve"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = clock.monotonic() + 60
        while True:
            assert process.poll() is None, (root / "admin.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert clock.monotonic() < deadline, "the admin service did not answer in 60 s"
            clock.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def demo_served(root: Path, seed: Callable[[str], Coroutine[Any, Any, None]] | None = None,
                **extra_env: str) -> Iterator[Served]:
    """The demo shop (`prepare`) on SQLite under `root`, `seed` run on its database first,
    served by `admin_process` (`extra_env` to it)."""
    require_chromium()
    database_url = migrated_url("sqlite", root)
    password = asyncio.run(prepare(database_url, root / "dev.env"))
    if seed is not None:
        asyncio.run(seed(database_url))
    with admin_process(root, database_url, **extra_env) as base:
        yield Served(base, password)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # The pages on SQLite only (`make run`'s storage): what they show and change goes through
    # the API routes, which tests/admin_api/ checks on both databases (and with Redis), and the
    # production shape's pages are driven by tests/integration/test_agent_inbox.py.
    with demo_served(tmp_path_factory.mktemp("pages")) as served:
        yield served


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Browser]:
    expect.set_options(timeout=WAIT_MS)
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh, watched page (tests/browser.py); analytics days are the browser's: UTC."""
    with watched_page(browser, WAIT_MS, timezone_id="UTC") as page:
        yield page


def log_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def csrf_of(page: Page) -> str:
    token = page.evaluate("() => sessionStorage.getItem('switchboard.csrf')")
    assert token, "the page kept no CSRF token after logging in"
    return str(token)


def test_pages_carry_a_strict_policy(served: Served) -> None:
    for path in ("/app/", "/invite", "/reset", "/app/reset.js", "/app/app.js", "/app/api.js",
                 "/app/app.css", "/docs", "/docs/swagger-ui-bundle.js"):
        response = httpx.get(f"{served.base}{path}")
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert httpx.get(f"{served.base}/").headers["location"] == "/app/"
    assert httpx.get(f"{served.base}/app/../app.py").status_code == 404
    assert httpx.get(f"{served.base}/app/index.htm").status_code == 404


def test_the_api_reference_renders_from_this_origin_alone(served: Served, page: Page) -> None:
    """/docs is Swagger UI over /openapi.json, its files served by the admin process (the
    page's policy would refuse a CDN's, and an offline machine could not load them)."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{served.base}/docs")
    expect(page.get_by_role("heading", name=re.compile("Switchboard admin API"))).to_be_visible()
    expect(page.get_by_text("/api/v1/settings", exact=True).first).to_be_visible()
    assert requested and all(url.startswith(served.base) for url in requested), requested


def test_login_sets_an_httponly_cookie_and_a_wrong_password_is_an_error(
        served: Served, page: Page) -> None:
    log_in(page, served.base, OWNER, "not the password at all")
    expect(page.get_by_role("alert")).to_contain_text("wrong email or password")
    expect(page.get_by_role("tab", name="Settings")).to_be_hidden()

    page.get_by_label("Password", exact=True).fill(served.owner_password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("tab", name="Settings")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#who")).to_contain_text(OWNER)
    expect(page.get_by_role("link", name="Agents' inbox")).to_have_attribute("href", "/app/inbox")
    cookie = next(c for c in page.context.cookies() if c["name"] == "sb_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert "sb_session" not in page.evaluate("() => document.cookie")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "sb_session" and c["value"]]


def test_a_settings_change_persists(served: Served, page: Page) -> None:
    log_in(page, served.base, OWNER, served.owner_password)
    greeting = page.get_by_label("Greeting")
    expect(greeting).to_be_editable()
    text = f"Hi from the owner page {secrets.token_hex(3)}: how can we help?"
    greeting.fill(text)
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_text("Saved: Greeting.")

    page.reload()  # the session survives a reload; the value comes back from the API
    expect(page.get_by_label("Greeting")).to_have_value(text)
    answer = page.request.get(f"{served.base}/api/v1/settings")
    assert answer.ok and answer.json()["greeting"] == text

    page.get_by_label("Return window days").fill("-3")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_class("message error")


def test_an_unsafe_request_without_the_csrf_header_is_refused(served: Served, page: Page) -> None:
    log_in(page, served.base, OWNER, served.owner_password)
    expect(page.get_by_role("tab", name="Settings")).to_be_visible()
    patch = """async (headers) => {
        const response = await fetch('/api/v1/settings', {method: 'PATCH', headers: {
            'Content-Type': 'application/json', ...headers}, body: JSON.stringify(
            {greeting: 'changed by a script'})});
        return response.status;
    }"""
    assert page.evaluate(patch, {}) == 403
    assert page.evaluate(patch, {"X-CSRF-Token": "x" * 43}) == 403
    assert page.evaluate(patch, {"X-CSRF-Token": csrf_of(page)}) == 200
    # Reads need no token.
    assert page.evaluate("async () => (await fetch('/api/v1/settings')).status") == 200


def test_a_text_is_changed_and_restored(served: Served, page: Page) -> None:
    log_in(page, served.base, OWNER, served.owner_password)
    page.get_by_role("tab", name="Texts").click()
    page.get_by_label("Find a response").fill("utter_greet")
    card = page.locator('article[data-name="utter_greet"]')
    expect(card).to_be_visible()
    expect(card.locator(".badge")).to_have_text("default")
    card.get_by_label("Variant 1").fill("Welcome to the demo shop! Ask me anything.")
    card.get_by_role("button", name="Save").click()
    expect(card.get_by_role("status")).to_contain_text("Saved")
    answer = page.request.get(f"{served.base}/api/v1/responses", params={"page_size": 200})
    greet = next(i for i in answer.json()["items"] if i["name"] == "utter_greet")
    assert greet["override"][0]["text"] == "Welcome to the demo shop! Ask me anything."
    page.reload()  # the Settings tab's greeting now says the changed text wins over it
    page.get_by_role("tab", name="Settings").click()
    expect(page.locator("#setting-greeting-hint")).to_contain_text("Texts tab's utter_greet")
    page.get_by_role("tab", name="Texts").click()
    page.get_by_label("Find a response").fill("utter_greet")
    card = page.locator('article[data-name="utter_greet"]')

    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Restore default").click()
    card = page.locator('article[data-name="utter_greet"]')
    expect(card.locator(".badge")).to_have_text("default")
    answer = page.request.get(f"{served.base}/api/v1/responses", params={"page_size": 200})
    assert next(i for i in answer.json()["items"] if i["name"] == "utter_greet")["override"] is None


def test_the_invitation_page_sets_a_password_and_the_new_person_logs_in(
        served: Served, page: Page, browser: Browser) -> None:
    log_in(page, served.base, OWNER, served.owner_password)
    page.get_by_role("tab", name="People").click()
    email = f"designer-{secrets.token_hex(3)}@demo.example"
    page.get_by_label("Email to invite").fill(email)
    page.get_by_label("Role").select_option("designer")
    page.get_by_role("button", name="Invite").click()
    expect(page.locator("#people-status")).to_contain_text(f"Invitation for {email} made")
    link = page.get_by_label("One-time link").input_value()
    assert link.startswith(f"{served.base}/invite?token=")
    pending = page.locator("#people-table tbody tr", has_text=email)
    expect(pending).to_contain_text("invited")

    guest = browser.new_context().new_page()
    guest.set_default_timeout(WAIT_MS)
    guest.goto(link)
    assert "token" not in guest.url  # taken out of the address bar and the history
    expect(guest.locator("#invite-offer")).to_contain_text(
        f"invites {email} to join as a conversation designer")
    # The owner passed this link on: the page does not say whether the email has an account
    # (the API does not tell the link's holder); the person says so.
    guest.get_by_label("Yes, I have an account").check()
    expect(guest.get_by_label("Your Switchboard password")).to_be_visible()
    expect(guest.get_by_label("Your name")).to_be_hidden()
    guest.get_by_label("No, I am new to Switchboard").check()
    password = secrets.token_urlsafe(12)
    guest.get_by_label("Your name").fill("Dana Designer")
    guest.get_by_label("Password (at least 10 characters)").fill(password)
    guest.get_by_label("Password again").fill(password)
    guest.get_by_role("button", name="Join the shop").click()
    expect(guest.get_by_role("alert")).to_have_text("Welcome: your account is ready.")
    guest.context.close()

    again = browser.new_context().new_page()
    again.goto(link)  # said at once, before anyone types a password
    expect(again.get_by_role("alert")).to_contain_text("used already")
    expect(again.get_by_role("button", name="Join the shop")).to_be_hidden()
    expect(again.get_by_role("link", name="Log in")).to_be_visible()
    again.context.close()

    fresh = browser.new_context().new_page()
    fresh.set_default_timeout(WAIT_MS)
    log_in(fresh, served.base, email, password)
    expect(fresh.get_by_role("tab", name="Texts")).to_have_attribute("aria-selected", "true")
    expect(fresh.get_by_role("tab", name="Settings")).to_be_hidden()
    expect(fresh.locator("#who")).to_contain_text("Dana Designer")
    expect(fresh.get_by_role("tab", name="People")).to_be_hidden()
    expect(fresh.get_by_role("link", name="Agents' inbox")).to_be_hidden()  # a designer
    fresh.context.close()

    page.reload()
    page.get_by_role("tab", name="People").click()
    expect(page.locator("#people-table tbody tr", has_text=email)).to_contain_text("active")


def test_a_forgotten_password_is_reset_from_the_mailed_link(
        browser: Browser, tmp_path: Path) -> None:
    """Forgot → mail → reset page → logged in, on an admin process of its own that sends mail
    (the module's has no SMTP server, so that an invitation answers its link)."""
    database_url = migrated_url("sqlite", tmp_path)
    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this one
        thread.submit(asyncio.run, prepare(database_url, tmp_path / "dev.env")).result()
    with Mailbox(free_port()) as mailbox, admin_process(
            tmp_path, database_url, SMTP_URL=f"smtp://127.0.0.1:{mailbox.port}") as base, \
            watched_page(browser, WAIT_MS) as page:
        page.goto(f"{base}/")
        page.get_by_role("link", name="Forgot your password?").click()
        page.get_by_label("Your account's email").fill(OWNER)
        page.get_by_role("button", name="Email me a link").click()
        expect(page.locator("#forgot-status")).to_contain_text(
            "If an account exists for that address, we sent a link")
        mail = mailbox.wait_for(lambda message: OWNER in str(message["To"]))
        found = re.search(r"/reset\?token=([\w-]+)", mail.get_content())
        assert found, mail.get_content()

        page.goto(f"{base}{found.group()}")  # the mail's origin is ADMIN_URL, not this port
        assert "token" not in page.url  # taken out of the address bar and the history
        expect(page.locator("#reset-for")).to_contain_text(OWNER)
        password = secrets.token_urlsafe(12)
        page.get_by_label("New password (at least 10 characters)").fill(password)
        page.get_by_label("New password again").fill(password)
        page.get_by_role("button", name="Set the new password").click()
        expect(page.get_by_role("alert")).to_have_text(
            "Your password is changed and you are logged in.")
        page.get_by_role("link", name="open your shop's page").click()
        expect(page.get_by_role("tab", name="Settings")).to_have_attribute("aria-selected",
                                                                           "true")
        expect(page.locator("#who")).to_contain_text(OWNER)


def test_a_document_is_uploaded_indexed_and_deleted(
        served: Served, page: Page, tmp_path: Path) -> None:
    document = tmp_path / "gift-wrapping.md"
    document.write_text("# Gift wrapping\n\nEvery order can be gift wrapped for 4 euros: choose "
                        "it at checkout, and add a card with your own message.\n")
    log_in(page, served.base, OWNER, served.owner_password)
    page.get_by_role("tab", name="Knowledge").click()
    page.get_by_label("Add or replace a document").set_input_files(str(document))
    page.get_by_role("button", name="Upload").click()
    status = page.locator("#knowledge-status")
    expect(status).to_contain_text("Indexed", timeout=120_000)  # the embedder loads once
    row = page.locator("#knowledge-table tbody tr", has_text="gift-wrapping.md")
    expect(row.locator("td").first).to_contain_text("Gift wrapping")  # its title, then file
    chunks = int(row.locator("td").nth(2).inner_text())
    assert chunks >= 1

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete Gift wrapping").click()
    expect(status).to_have_text("Deleted Gift wrapping.", timeout=60_000)
    expect(page.locator("#knowledge-table tbody tr", has_text="gift-wrapping.md")).to_have_count(0)

    page.get_by_text("Or write a text").click()
    page.get_by_label("Title").fill("Loyalty points")
    page.get_by_label("Text (Markdown or plain)").fill(
        "Every euro spent earns one loyalty point; 100 points take 5 euros off an order.")
    page.get_by_role("button", name="Add the text").click()
    expect(status).to_contain_text("Indexed", timeout=60_000)
    expect(page.locator("#knowledge-table tbody tr", has_text="Loyalty points")).to_be_visible()


def test_analytics_show_the_days_in_a_chart(served: Served, page: Page) -> None:
    log_in(page, served.base, OWNER, served.owner_password)
    page.get_by_role("tab", name="Analytics").click()
    totals = page.locator("#analytics-totals")
    expect(totals.locator("div", has=page.locator("dt", has_text="Conversations"))
           .locator("dd")).to_have_text(str(len(TODAY_TURNS)), timeout=60_000)
    chart = page.get_by_role("img", name="Conversations per day")
    expect(chart).to_be_visible()
    bar = chart.locator(f'rect[data-day="{today().isoformat()}"]')
    expect(bar).to_have_attribute("data-value", str(len(TODAY_TURNS)))
    assert float(bar.get_attribute("height") or 0) > 0
    yesterday = chart.locator(f'rect[data-day="{(today() - timedelta(days=1)).isoformat()}"]')
    expect(yesterday).to_have_attribute("data-value", "0")
    # Intents by their label for people; the name designers train stays in the tooltip.
    intent = page.locator("#analytics-intents span", has_text="Order status")
    expect(intent).to_have_attribute("title", "order_status")
    # Grouping embeds the questions: the encoder loads the first time (a second, more on a
    # busy machine), while the figures are shown.
    expect(page.locator("#analytics-unanswered")).to_contain_text("gift cards", timeout=120_000)


def test_conversations_are_listed_filtered_and_read(served: Served, page: Page) -> None:
    log_in(page, served.base, OWNER, served.owner_password)
    page.get_by_role("tab", name="Conversations").click()
    rows = page.locator("#conversations-table tbody tr")
    expect(rows).to_have_count(len(TODAY_TURNS))
    page.get_by_label("Outcome").select_option("fallback")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("One moment.")  # the last message

    rows.first.click()
    turns = page.locator("#transcript-turns")
    expect(page.locator("#transcript-title")).to_be_focused()
    expect(turns.locator(".turn.in")).to_contain_text("do you sell gift cards?")
    expect(turns.locator(".turn.in .meta")).to_contain_text("intent nlu_fallback")
    expect(turns.locator(".turn.in .meta")).to_contain_text("outcome fallback")
    expect(turns.locator(".turn.out")).to_contain_text("One moment.")


def test_billing_off_says_this_deployment_does_not_charge(served: Served, page: Page) -> None:
    """No STRIPE_API_KEY here: the Billing tab says so in one sentence and shows no plans
    (tests/admin_api/test_billing_page_browser.py has billing on)."""
    log_in(page, served.base, OWNER, served.owner_password)
    page.get_by_role("tab", name="Billing").click()
    expect(page.locator("#billing-off")).to_have_text(
        re.compile(r"This deployment does not charge"))
    expect(page.locator("#billing-on")).to_be_hidden()
    assert page.url.endswith("/app/#billing")  # the open tab is in the address
