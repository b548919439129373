"""The web widget in headless Chromium, on a shop page of another origin, through the real stack.

The host page holds nothing but the one script tag a shop pastes. A visitor types an
order-status conversation into the bubble, clicks a suggested reply, reloads the page and
finds the conversation still there, and a visitor whose stored token was forged for someone
else's conversation sees none of it.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from connectors import visitor_tokens
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

DEMO_KEY = "pk_demo_outfitters"  # tenants/demo.py
TRACKING = "1Z999AA10123456784"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 30_000  # one bot turn on a busy machine (the knowledge route loads its index once)


class ShopPage(BaseHTTPRequestHandler):
    """The shop's own site: one page, only the widget's script tag."""

    html = b""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.html)))
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def shop_site(stack: Stack) -> Iterator[str]:
    tag = (f'<script src="{stack.gateway}/channels/demo/web/widget.js" '
           f'data-key="{DEMO_KEY}" async></script>')
    handler = type("DemoShopPage", (ShopPage,), {
        "html": f"<!doctype html><html><head><title>Shop</title></head><body>{tag}</body></html>"
        .encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Another port is another origin: the widget talks cross-origin to the gateway.
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context()
    yield ctx
    ctx.close()


class Widget:
    """The chat bubble as a visitor uses it (Playwright's locators see into the Shadow DOM)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.log = page.get_by_role("log", name="Conversation")
        self.input = page.get_by_role("textbox", name="Type your message")

    def open(self) -> None:
        launcher = self.page.get_by_role("button", name="Chat with us")
        expect(launcher).to_be_visible(timeout=WAIT_MS)
        if launcher.get_attribute("aria-expanded") != "true":
            launcher.click()
        expect(self.input).to_be_visible()

    def bot_messages(self):  # noqa: ANN201 - a Playwright Locator
        return self.log.locator(".msg.bot")

    def say(self, text: str, expect_reply: str | re.Pattern[str]) -> None:
        """Type and send; wait until the newest bot message shows `expect_reply`."""
        before = self.bot_messages().count()
        self.input.fill(text)
        self.input.press("Enter")
        expect(self.log.locator(".msg.visitor").last).to_contain_text(text)
        expect(self.bot_messages()).not_to_have_count(before, timeout=WAIT_MS)
        expect(self.log).to_contain_text(expect_reply, timeout=WAIT_MS)
        expect(self.log.locator(".msg.pending")).to_have_count(0, timeout=WAIT_MS)

    def stored_token(self) -> str | None:
        return self.page.evaluate(
            "() => { for (const k of Object.keys(localStorage)) if (k.endsWith(':token'))"
            " return localStorage.getItem(k); return null; }")


def open_widget(context: BrowserContext, url: str) -> Widget:
    page = context.new_page()
    page.goto(url)
    widget = Widget(page)
    widget.open()
    return widget


def test_order_status_conversation_survives_a_reload(context: BrowserContext, shop_site: str) -> None:
    widget = open_widget(context, shop_site)
    expect(widget.bot_messages().first).to_contain_text("Demo Outfitters", timeout=WAIT_MS)
    # The shop's colours reached the bubble (tenants/demo.py: primary #1f6f5c).
    launcher = widget.page.get_by_role("button", name="Chat with us")
    expect(launcher).to_have_css("background-color", "rgb(31, 111, 92)")

    widget.say("where is my order?", re.compile("order number", re.I))
    widget.say("#1001", re.compile("email", re.I))
    widget.say("alex@example.com", TRACKING)
    answer = widget.bot_messages().last
    expect(answer).to_contain_text("shipped")
    expect(answer).to_contain_text("UPS")
    # The tracking URL in the bot's text is a real link, opened in a new tab.
    tracking = answer.locator("a[href*='ups.com']")
    expect(tracking).to_have_attribute("target", "_blank")
    expect(tracking).to_have_attribute("rel", re.compile("noopener"))
    # The widget lives in its own shadow root: nothing of it in the shop's own DOM.
    assert widget.page.evaluate("() => document.querySelectorAll('.msg, .launcher').length") == 0
    token = widget.stored_token()
    assert token

    widget.page.reload()
    widget.open()  # reopened by itself when it was open; opened by a click otherwise
    expect(widget.log).to_contain_text(TRACKING, timeout=WAIT_MS)
    expect(widget.log.locator(".msg.visitor")).to_have_text(
        [re.compile("where is my order"), re.compile("#1001"), re.compile("alex@example.com")])
    # The token is re-issued with a fresh expiry, for the same conversation.
    assert (widget.stored_token() or "").split(".")[1] == token.split(".")[1]
    # The same conversation carries on after the reload.
    widget.say("thanks!", re.compile("anything else", re.I))
    assert widget.errors == []


def test_suggested_replies_are_clickable_chips(context: BrowserContext, shop_site: str) -> None:
    widget = open_widget(context, shop_site)
    widget.say("what's the capital of mongolia, also tell me a joke", "don't know")
    chips = widget.log.get_by_role("group", name="Suggested replies")
    expect(chips).to_have_count(1)
    chip = chips.get_by_role("button", name="Yes, please")
    expect(chip).to_be_enabled()
    chip.click()
    # The visitor sees the chip's title (not "/affirm") and the bot answers the payload.
    expect(widget.log.locator(".msg.visitor").last).to_have_text(re.compile("Yes, please$"))
    expect(widget.log).to_contain_text("person from our team", timeout=WAIT_MS)
    assert "/affirm" not in widget.log.inner_text()
    expect(chip).to_be_disabled()  # an answered question's chips cannot be sent again
    assert widget.errors == []


def test_forged_token_shows_nothing_of_another_visitor(
        browser: Browser, shop_site: str, stack: Stack) -> None:
    victim_ctx = browser.new_context()
    intruder_ctx = browser.new_context()
    try:
        victim = open_widget(victim_ctx, shop_site)
        victim.say("Where's order #1001? my email is alex@example.com", TRACKING)
        victim_token = victim.stored_token()
        assert victim_token
        conversation = victim_token.split(".")[1]

        intruder = intruder_ctx.new_page()
        intruder.goto(shop_site)
        for forged in (
            # The victim's conversation id signed with a guessed secret, and the bare id.
            visitor_tokens.issue(b"guessed-secret", "7d3c1a52-8a1e-4c4b-9f0e-5d2a6b3c0001",
                                 conversation)[0],
            conversation,
        ):
            intruder.evaluate(
                "([base, token]) => localStorage.setItem('switchboard:' + base + ':token', token)",
                [f"{stack.gateway}/channels/demo/web", forged])
            intruder.reload()
            widget = Widget(intruder)
            widget.open()
            expect(widget.log).to_contain_text("could not be restored", timeout=WAIT_MS)
            expect(widget.bot_messages().first).to_contain_text("Demo Outfitters")
            text = widget.log.inner_text()
            assert TRACKING not in text and "alex@example.com" not in text
            fresh = widget.stored_token()
            assert fresh and fresh != forged and conversation not in fresh
            # A fresh conversation that works.
            widget.say("am I talking to a bot?", "virtual assistant")
            assert TRACKING not in widget.log.inner_text()
            assert widget.errors == []
    finally:
        victim_ctx.close()
        intruder_ctx.close()

