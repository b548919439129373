"""The agents' inbox page in headless Chromium, against a real admin process.

One `python -m admin_api serve` on SQLite (see `inbox`), started by test_pages_browser's
`admin_process`, with the demo shop, two agents (Ann, who uses the page, and Bo) and the
gateway's and Rasa's HTTP ends played by tests/admin_api/fake_gateway.py and
tests/fakes/rasa_server.py (GATEWAY_URL and RASA_URL point at them): what the admin service
hands the gateway is checked here, its delivery to the visitor is
tests/integration/test_agent_inbox.py's part. Live events come in the way the gateway and the
action server send them without Redis: `POST /internal/live` with the internal token.

Ann logs in, a visitor's escalation appears in the queue without a reload (with the unread count
in the page and the title, a beep and an announcement), she takes it with `c`, replies with `r`
(the reply reaches the gateway's route with her name), writes a note (never sent) and resolves
with `e`; a queue card shows what the visitor wrote, not the bot's "a person will take over";
a conversation Bo holds is read-only for her (no claim, reply, transfer or resolve, saying who
has it), also when Bo won a claim race, while an owner may still reply, transfer and resolve
it (not claim it: no Claim for them either); visitors' messages in
another conversation raise the unread count until she opens it (beeping until she mutes), and
she transfers that one to Bo, choosing among people only (no API keys). On a phone (390x844,
Chromium's mobile emulation) the page fits the screen's width.

Marked `integration`: it needs Chromium and a server process. About 15 s.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, Route, expect
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker

from admin_api import people
from admin_api.tables import UserRow
from core import handoffs
from core.conversations import MessageRow
from core.db import create_engine, session_factory, utcnow
from core.live import RELAY_PATH, LiveEvent
from core.settings import async_database_url
from devtools.demo_shop import DEMO_TENANT_ID, seed_demo
from tenants.api_keys import issue_key
from tests.admin_api.conftest import KEY, admin_settings
from tests.admin_api.fake_gateway import GatewayFake
from tests.admin_api.test_pages_browser import WAIT_MS, admin_process
from tests.browser import chromium, require_chromium, watched_page
from tests.databases import migrated_url
from tests.fakes.rasa_server import RasaFake

pytestmark = pytest.mark.integration

ANN = "ann.agent@demo.example"
OWNER = "olga.owner@demo.example"  # no name: listed by email
BOT_HANDOFF = "I've asked a person from our team to take over; they will reply here."
PASSWORD = "inbox test password 1"
T = TypeVar("T")

# Counts the beeps the page plays (an oscillator started): a test cannot listen.
COUNT_BEEPS = """
  window.beeps = 0;
  const Original = window.AudioContext;
  window.AudioContext = class extends Original {
    createOscillator() {
      const tone = super.createOscillator();
      const start = tone.start.bind(tone);
      tone.start = (...args) => { window.beeps += 1; return start(...args); };
      return tone;
    }
  };
"""


@dataclass
class Inbox:
    base: str
    database_url: str
    token: str
    gateway: GatewayFake
    ann_id: str = ""
    bo: handoffs.Agent = field(default_factory=lambda: handoffs.Agent("", ""))

    def db(self, work: Callable[[async_sessionmaker], Awaitable[T]]) -> T:
        """Run `work` on the database, in a thread of its own: Playwright's sync API keeps an
        event loop running in this one."""
        async def run() -> T:
            engine = create_engine(async_database_url(self.database_url))
            try:
                return await work(session_factory(engine))
            finally:
                await engine.dispose()
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()

    def visitor_writes(self, channel: str, number: str, text: str) -> str:
        """A visitor's message stored as the gateway stores it; returns the sender id."""
        sender = f"{DEMO_TENANT_ID}:{channel}:{number}"

        async def store(sessions: async_sessionmaker) -> None:
            async with sessions() as session:
                session.add(MessageRow(tenant_id=DEMO_TENANT_ID, sender_id=sender,
                                       channel=channel, direction="in",
                                       message_id=f"in-{uuid.uuid4().hex}", text=text,
                                       intent="human_handoff", confidence=0.95,
                                       outcome="handoff", created_at=utcnow(),
                                       handled_at=utcnow()))
                await session.commit()
        self.db(store)
        return sender

    def bot_says(self, sender: str, channel: str, text: str) -> None:
        """The bot's answer as the gateway records it (after the visitor's message)."""
        async def store(sessions: async_sessionmaker) -> None:
            async with sessions() as session:
                session.add(MessageRow(tenant_id=DEMO_TENANT_ID, sender_id=sender,
                                       channel=channel, direction="out", text=text,
                                       created_at=utcnow()))
                await session.commit()
        self.db(store)

    def escalate(self, sender: str, channel: str, text: str,
                 summary: dict[str, Any] | None = None) -> int:
        async def open_(sessions: async_sessionmaker) -> int:
            row, _ = await handoffs.open_handoff(
                sessions, tenant_id=DEMO_TENANT_ID, sender_id=sender, channel=channel,
                reason="visitor_asked", last_message=text, summary=summary)
            return row.id
        return self.db(open_)

    def live(self, kind: str, sender: str, **data: Any) -> None:
        """A live event as the gateway or the action server posts it (no Redis)."""
        event = LiveEvent(tenant_id=DEMO_TENANT_ID, kind=kind, sender_id=sender, data=data)
        answer = httpx.post(f"{self.base}{RELAY_PATH}", content=event.dumps(),
                            headers={"Authorization": f"Bearer {self.token}",
                                     "Content-Type": "application/json"})
        assert answer.status_code < 300, answer.text


async def make_agents(sessions: async_sessionmaker) -> tuple[str, handoffs.Agent]:
    await seed_demo(sessions)
    ids = []
    for email, name in ((ANN, "Ann Agent"), ("bo.agent@demo.example", "Bo Agent")):
        user = await people.set_password(sessions, email, PASSWORD, create=True)
        await people.ensure_member(sessions, DEMO_TENANT_ID, email, "agent")
        async with sessions() as session:
            await session.execute(update(UserRow).where(UserRow.id == user.id).values(name=name))
            await session.commit()
        ids.append(user.id)
    await people.set_password(sessions, OWNER, PASSWORD, create=True)
    await people.ensure_member(sessions, DEMO_TENANT_ID, OWNER, "owner")
    # An agent API key, as devtools.bootstrap makes: it takes conversations over the API, but
    # nobody watches the inbox for it.
    await issue_key(sessions, DEMO_TENANT_ID, "development agent (devtools.bootstrap)", "agent")
    return ids[0], handoffs.Agent(ids[1], "Bo Agent")


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inbox]:
    # On SQLite only, as test_pages_browser's pages: the inbox routes are checked on both
    # databases (tests/admin_api/test_inbox*.py), live events through Redis by
    # test_inbox_live.py, and the page on PostgreSQL + Redis with the real gateway by
    # tests/integration/test_agent_inbox.py.
    require_chromium()
    root = tmp_path_factory.mktemp("inbox")
    database_url = migrated_url("sqlite", root)
    token = admin_settings(root, database_url).internal_token.reveal()  # from KEY
    with GatewayFake() as gateway, RasaFake() as rasa, \
            admin_process(root, database_url, SWITCHBOARD_CREDENTIALS_KEY=KEY,
                          GATEWAY_URL=gateway.base_url, RASA_URL=rasa.base_url) as base:
        state = Inbox(base, database_url, token, gateway)
        state.ann_id, state.bo = state.db(make_agents)
        yield state


@pytest.fixture(scope="module")
def browser(inbox: Inbox) -> Iterator[Browser]:
    expect.set_options(timeout=WAIT_MS)
    with chromium() as browser:
        yield browser


def log_in(page: Page, inbox: Inbox, email: str) -> None:
    page.goto(f"{inbox.base}/app/inbox")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#live")).to_have_text("Live")


@pytest.fixture
def page(browser: Browser, inbox: Inbox) -> Iterator[Page]:
    """Ann's inbox in a fresh context, logged in; at the end, no script error and nothing the
    page's Content-Security-Policy refused."""
    with watched_page(browser, WAIT_MS, init_script=COUNT_BEEPS, timezone_id="UTC") as page:
        log_in(page, inbox, ANN)
        yield page


def option(page: Page, visitor: str) -> Any:
    return page.get_by_role("option").filter(has_text=visitor)


def test_the_inbox_login_offers_a_password_reset(browser: Browser, inbox: Inbox) -> None:
    with watched_page(browser, WAIT_MS) as page:
        page.goto(f"{inbox.base}/app/inbox")
        page.get_by_label("Email", exact=True).fill(ANN)
        page.get_by_role("link", name="Forgot your password?").click()
        expect(page.get_by_label("Your account's email")).to_have_value(ANN)
        page.get_by_role("button", name="Email me a link").click()
        expect(page.locator("#forgot-status")).to_contain_text("If an account exists")


def test_the_inbox_carries_a_strict_policy(inbox: Inbox) -> None:
    for path in ("/app/inbox", "/app/inbox.js", "/app/inbox.css"):
        response = httpx.get(f"{inbox.base}{path}")
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"


def test_an_escalation_arrives_live_and_is_claimed_answered_noted_and_resolved(
        inbox: Inbox, page: Page) -> None:
    expect(page.locator("#queue-status")).to_have_text("No conversation is waiting.")
    text = "I want to talk to a person about order 1001"
    sender = inbox.visitor_writes("sms", "+15550001111", text)
    inbox.bot_says(sender, "sms", BOT_HANDOFF)
    inbox.escalate(sender, "sms", text, {"intent": "order_status", "order_number": "1001"})
    inbox.live("handoff.requested", sender, channel="sms", reason="visitor_asked")

    waiting = option(page, "…1111")
    # The card's main line is what the visitor wrote, not the bot's "a person will reply"
    # (the conversation's last message), and it is not repeated in the summary.
    expect(waiting.locator(".last")).to_have_text(text)
    expect(waiting).not_to_contain_text("asked a person")
    expect(waiting).not_to_contain_text("said:")
    expect(waiting).to_contain_text("order 1001")
    expect(waiting).to_contain_text("Waiting for an agent")
    expect(page.locator("#unread")).to_have_text("1 unread")
    expect(page).to_have_title("(1) Inbox · Switchboard")
    expect(page.locator("#announce")).to_contain_text("New conversation waiting")
    assert page.evaluate("window.beeps") >= 1

    page.keyboard.press("j")  # the first (and only) conversation
    expect(waiting).to_have_attribute("aria-selected", "true")
    expect(page.locator("#thread-title")).to_have_text("SMS · …1111")
    expect(page.locator("#transcript .from-visitor")).to_contain_text(text)
    expect(page.locator("#unread")).to_be_hidden()
    expect(page).to_have_title("Inbox · Switchboard")

    page.keyboard.press("c")
    expect(page.locator("#thread-status")).to_have_text("You have this conversation now.")
    expect(waiting).to_contain_text("Yours")
    assigned = page.request.get(f"{inbox.base}/api/v1/conversations",
                                params={"state": "assigned"}).json()["items"]
    assert [i["handoff"]["assignee"]["name"] for i in assigned] == ["Ann Agent"]

    page.keyboard.press("r")
    expect(page.get_by_label("Reply to the visitor")).to_be_focused()
    reply = "Hello, this is Ann. Let me look at order 1001 for you."
    page.keyboard.type(reply)
    page.keyboard.press("Control+Enter")
    expect(page.locator("#thread-status")).to_contain_text("Reply sent")
    expect(page.locator("#transcript .from-agent")).to_contain_text(reply)
    expect(page.locator("#transcript .from-agent .meta")).to_contain_text("Ann Agent")
    sent = inbox.gateway.bodies(token=inbox.token)
    assert [m["text"] for b in sent for m in b["messages"]] == [reply]
    assert sent[0]["author"]["name"] == "Ann Agent" and sent[0]["sender_id"] == sender

    page.keyboard.press("Escape")  # leave the box: keys work again
    page.keyboard.press("n")
    expect(page.get_by_label("Internal note")).to_be_focused()
    page.keyboard.type("Customer is upset, check the courier.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#transcript .note")).to_contain_text("check the courier")
    expect(page.locator("#transcript .note .meta")).to_contain_text("Internal note")
    assert "courier" not in json.dumps(inbox.gateway.bodies())

    # The visitor writes again, live: the card shows their new words (the last message),
    # and still after Ann's next reply (the last message again hers).
    again = "It was supposed to arrive on Monday."
    inbox.visitor_writes("sms", "+15550001111", again)
    inbox.live("message.visitor", sender, channel="sms", text=again)
    expect(waiting.locator(".last")).to_have_text(again)
    page.get_by_label("Reply to the visitor").fill("Thank you, I'm looking into it.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#transcript .from-agent").last).to_contain_text("looking into it")
    expect(waiting.locator(".last")).to_have_text(again)
    # After a reload too: the queue's API says what the visitor wrote last (the page heard
    # nothing live since), not the handoff's older message.
    page.reload()
    expect(page.locator("#live")).to_have_text("Live")
    expect(waiting.locator(".last")).to_have_text(again)
    expect(waiting).not_to_contain_text("looking into it")

    page.keyboard.press("Escape")
    page.keyboard.press("e")
    expect(page.locator("#thread-status")).to_contain_text("Resolved")
    expect(waiting).to_have_count(0)
    expect(page.locator("#queue-status")).to_have_text("No conversation is waiting.")
    resolved = page.request.get(f"{inbox.base}/api/v1/conversations",
                                params={"state": "resolved"}).json()["items"]
    assert [i["visitor"] for i in resolved] == ["…1111"]


def test_visitors_messages_raise_the_unread_count_and_a_taken_conversation_names_its_agent(
        inbox: Inbox, page: Page) -> None:
    held = inbox.visitor_writes("whatsapp", "+15550002222", "hello?")
    handoff_id = inbox.escalate(held, "whatsapp", "hello?")
    inbox.db(lambda sessions: handoffs.claim(sessions, DEMO_TENANT_ID, handoff_id, inbox.bo))
    waiting = inbox.visitor_writes("web", "visitor-inbox-3", "is anyone there?")
    inbox.escalate(waiting, "web", "is anyone there?", {"question": "do you ship to Mars?"})
    page.reload()  # the queue as it is now (no event was sent for these)
    expect(option(page, "…2222")).to_contain_text("Taken by Bo Agent")
    web = page.get_by_role("option").filter(has_text="Web chat")
    expect(web).to_contain_text("unanswered: “do you ship to Mars?”")

    option(page, "…2222").click()
    read_only_for(page, "Bo Agent")
    page.keyboard.press("c")  # nothing to claim: it stays Bo's, the page says nothing new
    page.keyboard.press("e")
    expect(page.locator("#thread-status")).to_have_text("")
    expect(option(page, "…2222")).to_contain_text("Taken by Bo Agent")

    inbox.live("message.visitor", waiting, channel="web", text="is anyone there?")
    expect(page.locator("#unread")).to_have_text("1 unread")
    assert page.evaluate("window.beeps") == 1
    page.keyboard.press("m")  # muted: the next message is seen, not heard
    expect(page.get_by_role("button", name="Mute")).to_have_attribute("aria-pressed", "true")
    inbox.live("message.visitor", waiting, channel="web", text="hello??")
    expect(page.locator("#unread")).to_have_text("2 unread")
    expect(page).to_have_title("(2) Inbox · Switchboard")
    expect(web.locator(".new")).to_have_text("2 new")
    expect(page.locator("#announce")).to_contain_text("hello??")
    assert page.evaluate("window.beeps") == 1

    web.click()
    expect(page.locator("#unread")).to_be_hidden()
    expect(page.locator("#thread-title")).to_contain_text("Web chat")

    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keys")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Keys")).to_be_hidden()

    page.keyboard.press("t")
    expect(page.get_by_label("Transfer to")).to_be_focused()
    # People only, by name (an owner without one by email); the agent API key is no one to
    # hand a visitor to.
    choices = page.get_by_label("Transfer to").locator("option")
    expect(choices).to_have_text(["Choose…", "Ann Agent (you)", "Bo Agent", f"{OWNER} (owner)"])
    page.get_by_label("Transfer to").select_option(label="Bo Agent")
    page.get_by_role("button", name="Transfer", exact=True).click()
    expect(page.locator("#thread-status")).to_have_text("Transferred to Bo Agent.")
    expect(web).to_contain_text("Taken by Bo Agent")


THREAD = re.compile(r".*/api/v1/conversations/[^/?]+[?].*")  # one conversation's messages


class HeldThread:
    """Holds back the page's request for a conversation's messages until `release`."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.held: list[Route] = []
        page.route(THREAD, self.hold)

    def hold(self, route: Route) -> None:
        self.held.append(route)

    def wait(self) -> None:
        """Until the page has asked for it."""
        for _ in range(WAIT_MS // 50):
            if self.held:
                return
            self.page.wait_for_timeout(50)
        raise AssertionError("the page never asked for the conversation")

    def release(self) -> None:
        for route in self.held:
            route.continue_()
        self.page.unroute(THREAD, self.hold)


def test_keys_pressed_while_a_conversation_loads_wait_for_it(inbox: Inbox, page: Page) -> None:
    """An agent who picks a conversation and at once presses "r" and types: the reply box gets
    the text once the conversation shows, and the text's letters ("t", "c", "e") do not
    transfer, claim or resolve it meanwhile. Escape drops what waits."""
    sender = inbox.visitor_writes("sms", "+15550003333", "where is my parcel?")
    inbox.escalate(sender, "sms", "where is my parcel?")
    page.reload()
    loading = HeldThread(page)
    option(page, "…3333").click()
    loading.wait()
    page.keyboard.press("r")
    text = "Let me check that, one second."
    page.keyboard.type(text)
    loading.release()

    box = page.get_by_label("Reply to the visitor")
    expect(box).to_be_focused()
    expect(box).to_have_value(text)
    expect(page.locator("#thread-status")).to_have_text("")
    expect(option(page, "…3333")).to_contain_text("Waiting for an agent")

    box.fill("")
    page.goto(f"{inbox.base}/app/inbox")  # none selected
    loading = HeldThread(page)
    option(page, "…3333").click()
    loading.wait()
    page.keyboard.press("r")
    page.keyboard.type("never mind")
    page.keyboard.press("Escape")
    loading.release()
    expect(page.locator("#thread-title")).to_have_text("SMS · …3333")
    expect(box).to_be_visible()
    expect(box).to_have_value("")
    expect(box).not_to_be_focused()


def read_only_for(page: Page, holder: str) -> None:
    """The open conversation is `holder`'s: it reads, takes notes, and says who has it."""
    expect(page.locator("#held")).to_have_text(
        f"{holder} has this conversation: you can read it and add internal notes. To reply, "
        f"ask {holder} or an owner to transfer it to you.")
    for name in ("Claim", "Transfer", "Resolve"):
        expect(page.get_by_role("button", name=name, exact=False)).to_have_count(0)
    expect(page.get_by_label("Reply to the visitor")).to_be_hidden()
    expect(page.get_by_label("Internal note")).to_be_visible()


def test_who_lost_a_claim_race_reads_and_an_owner_keeps_acting(
        browser: Browser, inbox: Inbox, page: Page) -> None:
    sender = inbox.visitor_writes("sms", "+15550004444", "my card was charged twice")
    handoff_id = inbox.escalate(sender, "sms", "my card was charged twice")
    page.reload()
    option(page, "…4444").click()
    expect(page.get_by_role("button", name="Claim")).to_be_visible()
    expect(page.get_by_label("Reply to the visitor")).to_be_visible()
    # Bo is faster, and no event tells Ann's page before she presses Claim.
    inbox.db(lambda sessions: handoffs.claim(sessions, DEMO_TENANT_ID, handoff_id, inbox.bo))
    page.get_by_role("button", name="Claim").click()
    expect(page.locator("#thread-status")).to_have_text(
        "Already taken: Bo Agent has this conversation.")
    read_only_for(page, "Bo Agent")
    page.get_by_label("Internal note").fill("Refund case, Bo.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#transcript .note")).to_contain_text("Refund case, Bo.")

    # An owner may reply, transfer and resolve any conversation, but not claim one someone
    # else holds (the API answers 409): no Claim on their page, and `c` does nothing.
    with watched_page(browser, WAIT_MS, timezone_id="UTC") as owner:
        log_in(owner, inbox, OWNER)
        option(owner, "…4444").click()
        expect(owner.locator("#thread-facts")).to_contain_text("Taken by Bo Agent")
        expect(owner.locator("#held")).to_be_hidden()
        for name in ("Transfer", "Resolve"):
            expect(owner.get_by_role("button", name=name, exact=False).first).to_be_visible()
        expect(owner.get_by_role("button", name="Claim", exact=False)).to_have_count(0)
        asked: list[str] = []
        owner.on("request", lambda request: asked.append(f"{request.method} {request.url}"))
        owner.keyboard.press("c")
        owner.get_by_label("Reply to the visitor").fill("This is the shop owner: refunded.")
        owner.get_by_role("button", name="Send reply").click()
        expect(owner.locator("#thread-status")).to_contain_text("Reply sent")
        assert not [line for line in asked if line.endswith("/claim")], asked


PHONE = {"width": 390, "height": 844}


def test_the_inbox_fits_a_phone(browser: Browser, inbox: Inbox) -> None:
    """Chromium's mobile emulation (as tests/integration/test_widget_browser.py's phone): the
    queue and the open thread, with a long unbroken word, within the screen's width (the
    walkthrough measured 476 px)."""
    long = "https://shop.example/orders/1001/tracking?carrier=dhl&number=" + "9" * 40
    sender = inbox.visitor_writes("sms", "+15550005555", f"where is it? {long}")
    inbox.escalate(sender, "sms", f"where is it? {long}",
                   {"intent": "order_status", "order_number": "1001", "question": long})
    with watched_page(browser, WAIT_MS, viewport=PHONE, is_mobile=True, has_touch=True,
                      timezone_id="UTC") as phone:
        log_in(phone, inbox, ANN)
        card = option(phone, "…5555")
        expect(card).to_be_visible()
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], ("queue", width)
        card.click()
        expect(phone.get_by_label("Reply to the visitor")).to_be_visible()
        expect(phone.locator("#transcript .from-visitor")).to_contain_text("where is it?")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], ("thread", width)
        for part in ("#thread-actions", "#composer", "#queue"):
            box = phone.locator(part).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (part, box)


def test_logging_out_or_leaving_with_a_note_being_written_asks_first(
        inbox: Inbox, page: Page) -> None:
    sender = inbox.visitor_writes("sms", "+15550006666", "can someone call me?")
    inbox.escalate(sender, "sms", "can someone call me?")
    page.reload()
    option(page, "…6666").click()
    note = page.get_by_label("Internal note")
    note.fill("Called back, no answer: try again at 3")

    asked: list[str] = []

    def keep(dialog: Dialog) -> None:  # the question asked, answered "stay"
        asked.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.once("dialog", keep)
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#app")).to_be_visible()  # kept: still logged in, the note kept
    expect(note).to_have_value("Called back, no answer: try again at 3")
    assert len(asked) == 1 and asked[0].startswith("confirm: "), asked
    assert "a note not added" in asked[0], asked

    # Closing the tab (or reloading) asks too: the browser's own question.
    page.once("dialog", keep)
    page.close(run_before_unload=True)
    for _ in range(50):
        if len(asked) == 2:
            break
        page.wait_for_timeout(100)
    assert asked[1:] == ["beforeunload: "] and not page.is_closed(), asked

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Email", exact=True)).to_be_visible()
