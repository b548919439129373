"""The web widget in headless Chromium, on a shop page of another origin, through the real stack.

The host page holds nothing but the one script tag a shop pastes. A visitor types an
order-status conversation into the bubble, clicks a suggested reply, reloads the page and
finds the conversation still there, and a visitor whose stored token was forged for someone
else's conversation sees none of it.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FloatRect,
    Locator,
    Page,
    Route,
    ViewportSize,
    expect,
)

from connectors.channels.web import tokens as visitor_tokens
from devtools.demo_shop import DEMO_WIDGET_KEY
from tests.browser import chromium
from tests.fakes.anthropic_server import AnthropicFake
from tests.integration.stack import Stack

# The widget's page and its conversation: no storage shape changes them (conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.one_shape]

DEMO_KEY = DEMO_WIDGET_KEY
TRACKING = "1Z999AA10123456784"
JACKET_URL = "https://demo-outfitters.example/products/classic-denim-jacket"
JACKET_IMAGE = "https://demo-outfitters.example/images/products/classic-denim-jacket.jpg"
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


class CuttableLink:
    """A TCP forwarder to the gateway whose connections can all be cut, like a dropped network."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with self.lock:
                    self.open.discard(s)
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self) -> int:
        """Drop every connection now; returns how many sockets were cut."""
        with self.lock:
            victims, self.open = self.open, set()
        for s in victims:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        return len(victims)

    def close(self) -> None:
        self.listener.close()
        self.cut()


def serve_page(html: str) -> tuple[ThreadingHTTPServer, str]:
    handler = type("Page", (ShopPage,), {"html": html.encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


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

    def bot_messages(self) -> Locator:
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


def test_order_status_conversation_survives_a_reload(
        context: BrowserContext, shop_site: str) -> None:
    widget = open_widget(context, shop_site)
    expect(widget.bot_messages().first).to_contain_text("Demo Outfitters", timeout=WAIT_MS)
    # The shop's colours reached the bubble (devtools/demo_shop.py: primary #1f6f5c).
    launcher = widget.page.get_by_role("button", name="Chat with us")
    expect(launcher).to_have_css("background-color", "rgb(31, 111, 92)")

    widget.say("where is my order?", re.compile("order number", re.I))
    widget.say("#1001", re.compile("email", re.I))
    widget.say("alex@example.com", TRACKING)
    # The status, then how to track it (two messages: actions/order_status.py).
    expect(widget.bot_messages().nth(-2)).to_contain_text("shipped")
    answer = widget.bot_messages().last
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



def test_knowledge_answers_show_their_sources_as_links(
        context: BrowserContext, shop_site: str) -> None:
    widget = open_widget(context, shop_site)
    widget.say("how long do I have to return something?", "30 days")
    sources = widget.bot_messages().last.locator(".sources")
    expect(sources).to_contain_text("Sources:")
    first = sources.get_by_role("link").first
    expect(first).to_have_attribute("href", re.compile(r"^https?://"))
    expect(first).to_have_attribute("target", "_blank")
    assert widget.errors == []


def png_pixel() -> bytes:
    """A valid 1x1 PNG: what the shop's image server answers in the test below."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x1f\x6f\x5c")
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def test_a_product_question_shows_a_card_with_picture_price_and_link(
        context: BrowserContext, shop_site: str, anthropic_api: AnthropicFake) -> None:
    """Without an answer from Claude (as without a key under `make run`) the widget shows the
    product in words and a card: the catalogue's picture, name, price and a link to its page."""
    question = "which sizes does the classic denim jacket come in?"
    # The API fails for this question (the first try and both retries): the action answers
    # extractively, as it does without ANTHROPIC_API_KEY.
    anthropic_api.fail_next(500, times=3, match=lambda r: question.encode() in r.body)
    pictures: list[str] = []

    def shop_image(route: Route) -> None:
        pictures.append(route.request.url)
        route.fulfill(status=200, content_type="image/png", body=png_pixel())

    context.route("https://demo-outfitters.example/images/**", shop_image)
    widget = open_widget(context, shop_site)
    widget.say(question, "comes in sizes XS, S, M, L, XL and XXL")

    answer = widget.bot_messages().last
    expect(answer).to_contain_text("It costs €89.00 and comes in Indigo or Washed Black.")
    card = answer.get_by_role("group", name="Classic Denim Jacket")
    expect(card).to_contain_text("€89.00")
    expect(card).to_contain_text("Sizes XS, S, M, L, XL and XXL")
    picture = card.get_by_role("img", name="Classic Denim Jacket")
    expect(picture).to_have_attribute("src", JACKET_IMAGE)
    expect(picture).to_be_visible()
    expect(picture).to_have_js_property("complete", True)
    assert picture.evaluate("img => img.naturalWidth") == 1  # it loaded from the shop's server
    assert pictures == [JACKET_IMAGE]
    product_page = card.get_by_role("link", name="View Classic Denim Jacket")
    expect(product_page).to_have_text("View product")
    expect(product_page).to_have_attribute("href", JACKET_URL)
    expect(product_page).to_have_attribute("target", "_blank")
    # The source stays under the answer.
    expect(answer.locator(".sources")).to_contain_text("Classic Denim Jacket")
    assert "Sku:" not in answer.inner_text() and "JKT-DENIM-XS" not in answer.inner_text()
    assert widget.errors == []


def test_the_widget_reconnects_after_a_dropped_connection(
        context: BrowserContext, stack: Stack) -> None:
    link = CuttableLink(stack.gateway_port)
    gateway = f"http://127.0.0.1:{link.port}"
    server, url = serve_page(
        f'<!doctype html><body><script src="{gateway}/channels/demo/web/widget.js" '
        f'data-key="{DEMO_KEY}" async></script></body>')
    try:
        widget = open_widget(context, url)
        widget.say("where is my order?", re.compile("order number", re.I))
        assert link.cut() > 0
        # Typed while the connection is down: kept, sent once the widget is back.
        widget.input.fill("#1001")
        widget.input.press("Enter")
        expect(widget.log).to_contain_text(re.compile("email", re.I), timeout=WAIT_MS)
        expect(widget.log.locator(".msg.pending")).to_have_count(0, timeout=WAIT_MS)
        widget.say("alex@example.com", TRACKING)
        # Cut again while idle: the status says so, then the conversation simply goes on.
        link.cut()
        widget.say("thanks!", re.compile("anything else", re.I))
        expect(widget.page.get_by_role("status")).to_have_text("")
        assert widget.errors == []
    finally:
        server.shutdown()
        link.close()


def test_the_widget_is_usable_from_the_keyboard(context: BrowserContext, shop_site: str) -> None:
    page = context.new_page()
    page.goto(shop_site)
    widget = Widget(page)
    launcher = page.get_by_role("button", name="Chat with us")
    expect(launcher).to_be_visible(timeout=WAIT_MS)
    page.keyboard.press("Tab")
    expect(launcher).to_be_focused()
    page.keyboard.press("Enter")
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(widget.input).to_be_focused()
    page.keyboard.type("what's the capital of mongolia, also tell me a joke")
    page.keyboard.press("Enter")
    no_thanks = widget.log.get_by_role("button", name="No, thanks")
    expect(no_thanks).to_be_visible(timeout=WAIT_MS)
    # The chips are reachable with Tab from the conversation and pressed with Enter.
    no_thanks.focus()
    page.keyboard.press("Enter")
    expect(widget.log.locator(".msg.visitor").last).to_have_text(re.compile("No, thanks$"))
    expect(widget.log.locator(".msg.pending")).to_have_count(0, timeout=WAIT_MS)
    expect(widget.input).to_be_focused()  # ready for the next message
    page.keyboard.press("Escape")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(launcher).to_be_focused()
    assert widget.errors == []


PHONE: ViewportSize = {"width": 390, "height": 844}  # a common phone's CSS viewport


def box(locator: Locator) -> FloatRect:
    found = locator.bounding_box()
    assert found is not None, "not laid out"
    return found


def test_on_a_phone_the_demo_page_fits_and_the_panel_opens_full_screen(
        browser: Browser, stack: Stack) -> None:
    """Chromium's mobile emulation: nothing wider than the screen, the launcher in reach, the
    open panel over the whole screen with its input in sight, and a conversation works."""
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                device_scale_factor=3)
    try:
        page = phone.new_page()
        page.goto(f"{stack.gateway}/channels/demo/web/demo")
        widget = Widget(page)
        launcher = page.get_by_role("button", name="Chat with us")
        expect(launcher).to_be_visible(timeout=WAIT_MS)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        spot = box(launcher)
        assert spot["x"] >= 0 and spot["x"] + spot["width"] <= PHONE["width"]
        assert spot["y"] >= 0 and spot["y"] + spot["height"] <= PHONE["height"]

        launcher.tap()
        expect(widget.input).to_be_visible()
        panel = page.get_by_role("dialog")
        assert box(panel) == {"x": 0, "y": 0, **PHONE}
        field = box(widget.input)
        assert 0 <= field["y"] and field["y"] + field["height"] <= PHONE["height"]
        expect(widget.bot_messages().first).to_contain_text("Demo Outfitters", timeout=WAIT_MS)
        widget.say("where is my order?", re.compile("order number", re.I))

        # The visible area shrinks (as when the keyboard opens): the panel follows it.
        page.set_viewport_size({"width": PHONE["width"], "height": 500})
        expect(panel).to_have_js_property("offsetHeight", 500)
        field = box(widget.input)
        assert field["y"] + field["height"] <= 500
        assert widget.errors == []
    finally:
        phone.close()


def test_on_a_desktop_the_panel_stays_a_card_beside_the_launcher(
        context: BrowserContext, shop_site: str) -> None:
    widget = open_widget(context, shop_site)
    card = box(widget.page.get_by_role("dialog"))
    assert card["width"] == 360 and card["x"] > 0
