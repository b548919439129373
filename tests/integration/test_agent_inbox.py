"""A person takes over a conversation on every channel, through the real stack.

For each channel (web widget, REST, SMS and WhatsApp through Twilio, WhatsApp through Meta's
Cloud API, email through a Mailgun route) a visitor asks for a person; the conversation shows
up queued, in the API, on the live stream (GET /api/v1/events) and in the inbox page
(/app/inbox, headless Chromium, the shop's owner working with keys only); the agent claims it
and replies in the page, and the reply reaches the visitor through that channel's fake in its
own wire format; the visitor answers, no bot message goes out while the agent owns the thread,
and the page shows the answer live; the agent resolves, the satisfaction question reaches the
visitor, their "5" is recorded, and the bot answers the next message itself. The same story
once more with the visitor in Chromium too, using the chat bubble on a shop's page. Also:
two agents claiming at once (exactly one wins, the other is told who); a second gateway process
taking the visitor's messages lets no bot message out either; an agent of another shop sees
neither the thread nor its live events.

Visitors are the providers' own webhooks, signed (devtools/simulate.py); replies go to the
local fakes of Twilio's and Meta's APIs and to a real SMTP server. The agent is the demo
shop's agent API key (DEMO_AGENT_KEY; DEMO_AGENT2_KEY for the race). One stack per storage
shape for the whole session (conftest.py); this module's tests take about 15 s per shape
(Chromium, a second gateway process and the other shop included), besides the stack's start.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import websockets
from playwright.sync_api import Browser, BrowserContext, Page, expect

from core.sender_ids import sender_id
from devtools import simulate
from devtools.bootstrap import DEMO_OWNER_EMAIL, env_value
from devtools.demo_shop import DEMO_NAME, DEMO_TENANT_ID, DEMO_WIDGET_KEY
from tests.browser import chromium
from tests.fakes.graph_server import GraphFake
from tests.fakes.twilio_server import TwilioFake
from tests.integration.mailbox import Mailbox
from tests.integration.stack import Stack
from tests.integration.test_channels import eventually, mail_body, new_number, rows
from tests.integration.test_widget_browser import Widget, serve_page

pytestmark = pytest.mark.integration

WAIT = 30.0  # one bot turn on a busy machine
ASK_FOR_PERSON = "I want to talk to a person"
ANNOUNCEMENT = re.compile(r"team|person|someone|agent", re.I)
RATING_QUESTION = re.compile(r"rate", re.I)
THANKS = re.compile(r"thank", re.I)
# The order-status flow: it asks for the order number, or (the number was said to the agent
# and the bot kept it from the conversation) for the order's email.
ORDER_FLOW = re.compile(r"order number|email address", re.I)


# -- the agent's side ------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveMessage:
    kind: str
    data: dict[str, Any]
    raw: str  # the data line as it came (checked for visitors' phone numbers and emails)


class LiveStream:
    """An agent's GET /api/v1/events, read in a thread as a browser's EventSource reads it."""

    def __init__(self, admin: str, key: str) -> None:
        self.events: list[LiveMessage] = []
        self.status: int | None = None
        self._cond = threading.Condition()
        self._client = httpx.Client(base_url=admin, headers={"Authorization": f"Bearer {key}"},
                                    timeout=httpx.Timeout(10.0, read=None))
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        with self._cond:  # connected (or refused) before anyone relies on it
            self._cond.wait_for(lambda: self.status is not None, timeout=WAIT)
        assert self.status == 200, f"the live stream answered {self.status}"

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/api/v1/events",
                                     headers={"Accept": "text/event-stream"}) as response:
                with self._cond:
                    self.status = response.status_code
                    self._cond.notify_all()
                kind, data = "message", []
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        kind = line.partition(":")[2].strip()
                    elif line.startswith("data:"):
                        data.append(line.partition(":")[2].strip())
                    elif not line and data:
                        raw = "\n".join(data)
                        with self._cond:
                            self.events.append(LiveMessage(kind, json.loads(raw), raw))
                            self._cond.notify_all()
                        kind, data = "message", []
        except (httpx.HTTPError, RuntimeError, ValueError):
            if not self._closed:
                raise
        finally:
            with self._cond:
                self.status = self.status or -1
                self._cond.notify_all()

    def about(self, conversation: str) -> list[LiveMessage]:
        with self._cond:
            return [e for e in self.events if e.data.get("conversation_id") == conversation]

    def wait_for(self, kind: str, conversation: str,
                 match: Callable[[dict[str, Any]], bool] = lambda data: True) -> LiveMessage:
        def found() -> LiveMessage | None:
            return next((e for e in self.events if e.kind == kind
                         and e.data.get("conversation_id") == conversation and match(e.data)),
                        None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout=WAIT):
                seen = [(e.kind, e.data.get("conversation_id")) for e in self.events]
                raise AssertionError(f"no live {kind} for {conversation}; seen {seen}")
            event = found()
        assert event is not None
        return event

    def close(self) -> None:
        self._closed = True
        self._client.close()


def text_is(text: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a live message.visitor event carrying exactly this text."""
    return lambda data: data.get("text") == text


@pytest.fixture(scope="module")
def agent(stack: Stack) -> Iterator[httpx.Client]:
    with stack.admin_client("agent") as client:
        yield client


@pytest.fixture(scope="module")
def live(stack: Stack) -> Iterator[LiveStream]:
    """The demo shop's agent with the inbox open for the whole module."""
    stream = LiveStream(stack.admin, stack.admin_key("agent"))
    yield stream
    stream.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def open_inbox(stack: Stack, browser: Browser) -> tuple[BrowserContext, Page]:
    """The shop's owner logged in to the inbox page (/app/inbox), its live stream open."""
    expect.set_options(timeout=WAIT * 1000)
    context = browser.new_context(timezone_id="UTC")
    page = context.new_page()
    page.goto(f"{stack.admin}/app/inbox")
    page.get_by_label("Email", exact=True).fill(DEMO_OWNER_EMAIL)
    password = env_value(stack.var_dir / "dev.env", "DEMO_OWNER_PASSWORD")
    page.get_by_label("Password", exact=True).fill(password or "")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#live")).to_have_text("Live")
    return context, page


@pytest.fixture(scope="module")
def desk(stack: Stack, browser: Browser) -> Iterator[Page]:
    """The inbox page the agent works in for every channel's story."""
    context, page = open_inbox(stack, browser)
    yield page
    context.close()


def reply_in_page(desk: Page, text: str) -> None:
    """r focuses the reply box; Ctrl+Enter sends; Escape leaves the box for the next key.
    The box shows once the thread has loaded (after a claim it loads again: on a busy machine
    an "r" before that did nothing, and the text's letters worked as the page's keys)."""
    box = desk.locator("#reply-text")
    expect(box).to_be_visible()
    desk.keyboard.press("r")
    expect(box).to_be_focused()
    desk.keyboard.type(text)
    desk.keyboard.press("Control+Enter")
    expect(desk.locator("#thread-status")).to_contain_text("Reply sent")
    desk.keyboard.press("Escape")


def conversation_of(stack: Stack, visitor: ChannelVisitor) -> str:
    return stack.conversation_id(DEMO_TENANT_ID, visitor.sender_id)


# -- visitors, one kind per channel ----------------------------------------------------------
class ChannelVisitor:
    """A visitor on one channel: `say` delivers a message the way that channel does, and
    `received` lists the texts that reached the visitor through it, in order."""

    channel = ""
    address = ""  # the visitor's phone number or email: must never reach the live stream

    @property
    def sender_id(self) -> str:
        raise NotImplementedError

    def say(self, text: str) -> list[str]:
        """Deliver; returns the bot messages the channel answered with in the same exchange
        (REST and widget; provider channels answer later, through the provider)."""
        raise NotImplementedError

    def received(self) -> list[str]:
        raise NotImplementedError

    def wait_reply(self, after: int, pattern: re.Pattern[str] | str) -> str:
        """The first text after the first `after` ones that matches `pattern`."""
        regex = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        return str(eventually(
            lambda: next((t for t in self.received()[after:] if regex.search(t)), None),
            timeout=WAIT, what=f"{self.channel} reply matching {regex.pattern!r}"))

    def check_agent_reply(self, text: str, agent_name: str) -> None:
        """The agent's reply went out in this channel's own wire format."""


class RestVisitor(ChannelVisitor):
    """A shop's server on the REST channel: messages pushed later (an agent's, the rating
    question) are read from the poll endpoint with the shop's REST key."""

    channel = "rest"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.sender = f"visitor-{secrets.token_hex(5)}"
        self.polled: list[dict[str, Any]] = []

    @property
    def sender_id(self) -> str:
        return sender_id(DEMO_TENANT_ID, "rest", self.sender)

    def say(self, text: str) -> list[str]:
        answer = httpx.post(f"{self.stack.gateway}/channels/demo/rest/webhook",
                            json={"sender": self.sender, "message": text},
                            headers=self.stack.rest_headers(), timeout=WAIT)
        assert answer.status_code == 200, answer.text
        return [str(r.get("text") or "") for r in answer.json()]

    def poll(self) -> list[dict[str, Any]]:
        """Everything the shop sent this visitor, as the poll endpoint lists it."""
        answer = httpx.get(f"{self.stack.gateway}/channels/demo/rest/messages",
                           params={"sender": self.sender, "after": 0},
                           headers=self.stack.rest_headers(), timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        self.polled = body if isinstance(body, list) else (body.get("messages")
                                                           or body.get("items") or [])
        return self.polled

    def received(self) -> list[str]:
        return [str(m.get("text") or "") for m in self.poll()]

    def check_agent_reply(self, text: str, agent_name: str) -> None:
        message = next(m for m in self.polled if m.get("text") == text)
        assert message.get("recipient_id", self.sender) == self.sender
        assert (message.get("agent") or {}).get("name") == agent_name, message


class WebVisitor(ChannelVisitor):
    """The widget's WebSocket, held open in a thread of its own: an agent's reply arrives
    pushed, without the visitor writing."""

    channel = "web"

    def __init__(self, stack: Stack) -> None:
        self.frames: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        url = (stack.gateway.replace("http", "ws")
               + f"/channels/demo/web/socket?key={DEMO_WIDGET_KEY}")
        self._ws = self._run(self._connect(url))
        self._run(self._ws.send(json.dumps({"type": "hello", "token": None})))
        session = json.loads(self._run(self._ws.recv()))
        assert session["type"] == "session", session
        self.conversation = session["token"].split(".")[1]  # v1.<conversation>.<expiry>.<mac>
        asyncio.run_coroutine_threadsafe(self._read(), self._loop)

    @staticmethod
    async def _connect(url: str) -> Any:
        return await websockets.connect(url, open_timeout=WAIT)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(WAIT)

    async def _read(self) -> None:
        async for raw in self._ws:
            with self._cond:
                self.frames.append(json.loads(raw))
                self._cond.notify_all()

    @property
    def sender_id(self) -> str:
        return sender_id(DEMO_TENANT_ID, "web", self.conversation)

    def say(self, text: str) -> list[str]:
        client_id = secrets.token_hex(6)
        with self._cond:
            start = len(self.frames)
        self._run(self._ws.send(json.dumps({"type": "message", "text": text, "id": client_id})))

        def done() -> bool:
            return any(f["type"] == "done" and f.get("id") == client_id
                       for f in self.frames[start:])

        with self._cond:
            assert self._cond.wait_for(done, timeout=WAIT), f"no answer to {text!r}"
            turn = self.frames[start:]
        assert not [f for f in turn if f["type"] == "error"], turn
        return [str(f.get("text") or "") for f in turn if f["type"] == "bot"]

    def received(self) -> list[str]:
        with self._cond:
            return [str(f["text"]) for f in self.frames
                    if f.get("text") and f["type"] not in ("session", "error", "visitor")]

    def check_agent_reply(self, text: str, agent_name: str) -> None:
        with self._cond:
            frame = next(f for f in self.frames if f.get("text") == text)
        assert agent_name in json.dumps(frame), frame  # the widget shows who answers

    def close(self) -> None:
        self._run(self._ws.close())
        self._loop.call_soon_threadsafe(self._loop.stop)


class TwilioVisitor(ChannelVisitor):
    """SMS or WhatsApp through Twilio: form webhooks in, the Messages API out."""

    def __init__(self, stack: Stack, twilio: TwilioFake, whatsapp: bool) -> None:
        self.stack, self.twilio, self.whatsapp = stack, twilio, whatsapp
        self.channel = "whatsapp" if whatsapp else "sms"
        self.address = new_number()
        self.creds = stack.demo_credentials()["twilio"]

    @property
    def sender_id(self) -> str:
        return sender_id(DEMO_TENANT_ID, self.channel, self.address)

    def say(self, text: str) -> list[str]:
        request = simulate.twilio_message(self.stack.gateway, "demo", self.creds, self.address,
                                          text, whatsapp=self.whatsapp)
        answer = httpx.post(request.url, content=request.body, headers=request.headers,
                            timeout=10)
        assert answer.status_code == 200, answer.text
        return []

    def received(self) -> list[str]:
        return [m.body or "" for m in self.twilio.messages_to(self.address)]

    def check_agent_reply(self, text: str, agent_name: str) -> None:
        [sent] = [m for m in self.twilio.messages_to(self.address) if m.body == text]
        if self.whatsapp:
            assert (sent.from_, sent.to) == ("whatsapp:" + self.creds["whatsapp_numbers"][0],
                                             "whatsapp:" + self.address)
        else:
            assert (sent.from_, sent.to) == (self.creds["sms_numbers"][0], self.address)


class MetaVisitor(ChannelVisitor):
    """WhatsApp through Meta's Cloud API: signed JSON webhooks in, Graph API sends out."""

    channel = "whatsapp"

    def __init__(self, stack: Stack, graph: GraphFake) -> None:
        self.stack, self.graph = stack, graph
        self.address = new_number()
        self.creds = stack.demo_credentials()["meta_whatsapp"]

    @property
    def sender_id(self) -> str:
        return sender_id(DEMO_TENANT_ID, "whatsapp", self.address)

    def say(self, text: str) -> list[str]:
        request = simulate.meta_message(self.stack.gateway, "demo", self.creds, self.address,
                                        text)
        answer = httpx.post(request.url, content=request.body, headers=request.headers,
                            timeout=10)
        assert answer.status_code == 200, answer.text
        return []

    def sent(self) -> list[Any]:
        return [s for s in self.graph.sent if s.body.get("to") == self.address.lstrip("+")]

    def received(self) -> list[str]:
        return [s.text if s.text is not None else json.dumps(s.body) for s in self.sent()]

    def check_agent_reply(self, text: str, agent_name: str) -> None:
        [sent] = [s for s in self.sent() if s.text == text]
        assert sent.phone_number_id == self.creds["phone_number_id"]
        assert sent.body["messaging_product"] == "whatsapp" and sent.body["type"] == "text"


class EmailVisitor(ChannelVisitor):
    """Email through a Mailgun route; every mail of the visitor answers the shop's last one
    (In-Reply-To/References), as a mail client does."""

    channel = "email"

    def __init__(self, stack: Stack, mailbox: Mailbox) -> None:
        self.stack, self.mailbox = stack, mailbox
        self.address = f"shopper-{secrets.token_hex(4)}@example.net"
        self.creds = stack.demo_credentials()["email"]
        self.thread: list[str] = []  # Message-IDs, ours and the shop's, oldest first
        self.last_sent = ""

    @property
    def sender_id(self) -> str:
        return sender_id(DEMO_TENANT_ID, "email", self.address)

    def say(self, text: str) -> list[str]:
        mails = self.mailbox.to(self.address)
        for mail in mails:
            if mail["Message-ID"] not in self.thread:
                self.thread.append(mail["Message-ID"])
        request = simulate.mailgun_message(
            self.stack.gateway, "demo", self.creds, self.address,
            "Re: Help please" if self.thread else "Help please", text,
            in_reply_to=self.thread[-1] if self.thread else "",
            references=" ".join(self.thread))
        self.thread.append(request.message_id)
        self.last_sent = request.message_id
        answer = httpx.post(request.url, content=request.body, headers=request.headers,
                            timeout=10)
        assert answer.status_code == 200, answer.text
        return []

    def mails(self) -> list[EmailMessage]:
        return self.mailbox.to(self.address)

    def received(self) -> list[str]:
        return [mail_body(m, "plain") for m in self.mails()]

    def check_agent_reply(self, text: str, agent_name: str) -> None:
        [mail] = [m for m in self.mails() if text in mail_body(m, "plain")]
        assert mail["In-Reply-To"] == self.last_sent  # threaded under the visitor's last mail
        assert self.last_sent in mail["References"].split()
        assert mail["Subject"].startswith("Re: ")
        assert self.creds["address"] in str(mail["From"])
        assert text in mail_body(mail, "html")


CHANNELS = ["web", "rest", "sms", "twilio-whatsapp", "meta-whatsapp", "email"]


@pytest.fixture
def channel_visitor(request: pytest.FixtureRequest, stack: Stack, twilio_api: TwilioFake,
                    graph_api: GraphFake, mailbox: Mailbox) -> Iterator[ChannelVisitor]:
    kind = request.param
    visitor: ChannelVisitor
    if kind == "web":
        visitor = WebVisitor(stack)
    elif kind == "rest":
        visitor = RestVisitor(stack)
    elif kind in ("sms", "twilio-whatsapp"):
        visitor = TwilioVisitor(stack, twilio_api, whatsapp=kind != "sms")
    elif kind == "meta-whatsapp":
        visitor = MetaVisitor(stack, graph_api)
    else:
        visitor = EmailVisitor(stack, mailbox)
    yield visitor
    if isinstance(visitor, WebVisitor):
        visitor.close()


def handoff_row(stack: Stack, visitor: ChannelVisitor) -> Any:
    found = rows(stack, "SELECT status, rating, assignee_name FROM handoff_requests "
                        "WHERE sender_id = :s ORDER BY id DESC", s=visitor.sender_id)
    return found[0] if found else None


def escalate(stack: Stack, visitor: ChannelVisitor, live: LiveStream) -> str:
    """The visitor asks for a person and is told one will answer; returns the conversation's
    id once the agents' live stream announced it."""
    answered = visitor.say(ASK_FOR_PERSON)
    if visitor.channel in ("rest", "web"):
        assert any(ANNOUNCEMENT.search(t) for t in answered), answered
    else:
        visitor.wait_reply(0, ANNOUNCEMENT)
    conversation = conversation_of(stack, visitor)
    live.wait_for("handoff.requested", conversation)
    return conversation


# -- the whole story, on every channel -------------------------------------------------------
@pytest.mark.parametrize("channel_visitor", CHANNELS, indirect=True)
def test_an_agent_takes_over_and_hands_back(stack: Stack, channel_visitor: ChannelVisitor,
                                            agent: httpx.Client, live: LiveStream,
                                            desk: Page) -> None:
    """The agent works in the inbox page (Chromium, keys only); the API and the live stream
    check what the page did."""
    visitor = channel_visitor
    conversation = escalate(stack, visitor, live)

    # Queued for the agents, with what the bot knows; it appears in the page without a reload.
    queue = agent.get("/conversations", params={"state": "queued", "page_size": 200})
    assert queue.status_code == 200, queue.text
    [item] = [c for c in queue.json()["items"] if c["id"] == conversation]
    assert item["channel"] == visitor.channel
    assert item["handoff"]["status"] == "queued" and item["handoff"]["assignee"] is None
    waiting = desk.locator(f'[role="option"][data-id="{conversation}"]')
    expect(waiting).to_contain_text("Waiting for an agent")
    waiting.click()
    desk.keyboard.press("c")
    expect(desk.locator("#thread-status")).to_have_text("You have this conversation now.")
    live.wait_for("handoff.claimed", conversation)
    me = agent.get(f"/conversations/{conversation}").json()["handoffs"][-1]["assignee"]
    assert me["name"] == DEMO_OWNER_EMAIL  # the inbox's name for a person who gave none

    # The agent's reply reaches the visitor through their own channel, signed by the shop:
    # a person without a name is never shown to visitors by their email.
    before = len(visitor.received())
    hello = f"Hi, this is the team ({secrets.token_hex(3)}). How can I help?"
    reply_in_page(desk, hello)
    visitor.wait_reply(before, hello)
    visitor.check_agent_reply(hello, DEMO_NAME)
    note = f"Customer sounds upset, offer a refund ({secrets.token_hex(3)})"
    noted = agent.post(f"/conversations/{conversation}/notes", json={"text": note})
    assert noted.status_code == 201, noted.text

    # The visitor answers: the agent sees it live, the bot says nothing.
    mark = len(visitor.received())
    answer = f"My parcel arrived damaged, order 1001 ({secrets.token_hex(3)})"
    assert visitor.say(answer) == []  # REST and widget: no bot message in the answer
    seen = live.wait_for("message.visitor", conversation, text_is(answer))
    assert seen.data.get("channel") in (visitor.channel, None)
    expect(desk.locator("#transcript .from-visitor").last).to_contain_text(answer)
    sorry = f"Sorry about that! A new pair is on its way ({secrets.token_hex(3)})."
    reply_in_page(desk, sorry)
    visitor.wait_reply(mark, sorry)
    # Between the claim and now the visitor got the agent's two messages and nothing else:
    # neither a bot answer to their message nor the internal note.
    got = visitor.received()[before:]
    if visitor.channel == "email":  # a mail's text part may add a greeting and a signature
        assert len(got) == 2 and hello in got[0] and sorry in got[1], got
    else:
        assert got == [hello, sorry]

    transcript = agent.get(f"/conversations/{conversation}")
    assert transcript.status_code == 200, transcript.text
    whole = json.dumps(transcript.json())
    assert hello in whole and sorry in whole and answer in whole and note in whole
    assert transcript.json()["notes"][-1]["text"] == note

    # Resolved: the bot asks for a rating, takes the "5", and answers again itself.
    mark = len(visitor.received())
    desk.keyboard.press("e")
    expect(desk.locator("#thread-status")).to_contain_text("Resolved")
    live.wait_for("handoff.resolved", conversation)
    visitor.wait_reply(mark, RATING_QUESTION)
    mark = len(visitor.received())
    thanked = visitor.say("5")
    if visitor.channel in ("rest", "web"):
        assert any(THANKS.search(t) for t in thanked), thanked
    else:
        visitor.wait_reply(mark, THANKS)
    live.wait_for("satisfaction.given", conversation, lambda d: d.get("rating") == 5)
    status, rating, assignee = handoff_row(stack, visitor)
    assert (status, rating, assignee) == ("resolved", 5, me["name"])
    mark = len(visitor.received())
    asked = visitor.say("where is my order?")
    if visitor.channel in ("rest", "web"):
        assert any(ORDER_FLOW.search(t) for t in asked), asked
    else:
        visitor.wait_reply(mark, ORDER_FLOW)

    # The stream named the conversation by its opaque id only: no phone number, no email.
    for kind in ("message.agent", "note.added"):
        live.wait_for(kind, conversation)
    events = live.about(conversation)
    if visitor.address:
        assert not [e for e in events if visitor.address.lstrip("+") in e.raw]
    assert not [e for e in events if visitor.sender_id in e.raw]


# -- two agents at once, and another shop --------------------------------------------------
def test_two_agents_claiming_at_once_exactly_one_wins(stack: Stack, live: LiveStream) -> None:
    visitor = RestVisitor(stack)
    conversation = escalate(stack, visitor, live)
    keys = (stack.admin_key("agent"), stack.admin_key("agent2"))
    barrier = threading.Barrier(len(keys))
    answers: dict[str, httpx.Response] = {}

    def claim(key: str) -> None:
        with httpx.Client(base_url=f"{stack.admin}/api/v1", timeout=WAIT,
                          headers={"Authorization": f"Bearer {key}"}) as client:
            barrier.wait()
            answers[key] = client.post(f"/conversations/{conversation}/claim")

    threads = [threading.Thread(target=claim, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers.values()) == [200, 409], \
        [a.text for a in answers.values()]
    [won] = [a.json() for a in answers.values() if a.status_code == 200]
    [lost] = [a.json() for a in answers.values() if a.status_code == 409]
    assert lost["detail"] and lost["assignee"] == {"id": won["assignee"]["id"],
                                                   "name": won["assignee"]["name"]}
    assert handoff_row(stack, visitor)[2] == won["assignee"]["name"]
    claimed = live.wait_for("handoff.claimed", conversation)
    assert won["assignee"]["id"] in claimed.raw
    assert [e.kind for e in live.about(conversation)].count("handoff.claimed") == 1
    winner = next(k for k, a in answers.items() if a.status_code == 200)
    with httpx.Client(base_url=f"{stack.admin}/api/v1", timeout=WAIT,
                      headers={"Authorization": f"Bearer {winner}"}) as client:
        assert client.post(f"/conversations/{conversation}/resolve").status_code == 200


def test_no_bot_message_while_owned_when_another_gateway_takes_the_message(
        stack: Stack, twilio_api: TwilioFake, agent: httpx.Client, live: LiveStream) -> None:
    """Two gateway processes behind one URL: whichever takes the visitor's message, the
    person's ownership is read from the database, so neither lets the bot answer."""
    visitor = TwilioVisitor(stack, twilio_api, whatsapp=False)
    conversation = escalate(stack, visitor, live)
    assert agent.post(f"/conversations/{conversation}/claim").status_code == 200
    second = stack.start_second_gateway()
    try:
        before = len(visitor.received())
        for n, base in enumerate((second, stack.gateway, second)):
            text = f"are you still there? ({n}, {secrets.token_hex(3)})"
            request = simulate.twilio_message(stack.gateway, "demo", visitor.creds,
                                              visitor.address, text)
            answer = httpx.post(request.url.replace(stack.gateway, base), content=request.body,
                                headers=request.headers, timeout=10)
            assert answer.status_code == 200, answer.text
            live.wait_for("message.visitor", conversation, text_is(text))
        done = f"Yes, sorry for the wait ({secrets.token_hex(3)})."
        assert agent.post(f"/conversations/{conversation}/messages",
                          json={"text": done}).status_code == 202
        visitor.wait_reply(before, done)
        assert visitor.received()[before:] == [done]  # the agent's, and no bot message
    finally:
        stack.stop_process("gateway2")
        agent.post(f"/conversations/{conversation}/resolve")


class CallbackRecorder(ThreadingHTTPServer):
    """A shop's own server receiving the REST channel's callbacks (answers 200)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CallbackHandler)
        self.calls: list[tuple[dict[str, str], bytes]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/switchboard"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.calls]


class CallbackHandler(BaseHTTPRequestHandler):
    server: CallbackRecorder

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.calls.append((dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass


def test_a_rest_shop_gets_the_agents_reply_and_the_rating_question_on_its_callback(
        stack: Stack) -> None:
    """A REST shop with a callback URL: what a person writes later (and the rating question)
    is POSTed to it, signed with the shop's secret; the poll endpoint lists it too."""
    recorder = CallbackRecorder()
    slug = f"restful-{secrets.token_hex(3)}"
    secret = secrets.token_urlsafe(24)
    tenant_id = stack.add_shop_like_demo(slug, f"pk_{slug.replace('-', '_')}")
    stack.set_credentials(tenant_id, {**stack.demo_credentials(), "rest": {
        "callback_url": recorder.url, "signing_secret": secret}})
    rest_key = stack.issue_rest_key(slug)
    agent_key = stack.issue_admin_key(slug, "agent")
    stream = LiveStream(stack.admin, agent_key)
    agent = httpx.Client(base_url=f"{stack.admin}/api/v1", timeout=WAIT,
                         headers={"Authorization": f"Bearer {agent_key}"})
    try:
        def say(text: str) -> list[dict[str, Any]]:
            answer = httpx.post(f"{stack.gateway}/channels/{slug}/rest/webhook",
                                json={"sender": "order-system-42", "message": text},
                                headers={"Authorization": f"Bearer {rest_key}"}, timeout=WAIT)
            assert answer.status_code == 200, answer.text
            return list(answer.json())

        assert any(ANNOUNCEMENT.search(r.get("text", "")) for r in say(ASK_FOR_PERSON))
        conversation = stack.conversation_id(tenant_id,
                                             sender_id(tenant_id, "rest", "order-system-42"))
        stream.wait_for("handoff.requested", conversation)
        assert agent.post(f"/conversations/{conversation}/claim").status_code == 200
        hello = f"Hello, a person here ({secrets.token_hex(3)})."
        assert agent.post(f"/conversations/{conversation}/messages",
                          json={"text": hello}).status_code == 202
        eventually(lambda: recorder.calls, what="the callback")
        headers, body = recorder.calls[0]
        timestamp = headers["X-Switchboard-Timestamp"]
        expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        assert headers["X-Switchboard-Signature"] == f"sha256={expected}"
        sent = json.loads(body)
        assert (sent["recipient_id"], sent["text"]) == ("order-system-42", hello)
        assert sent["agent"]["name"]
        assert say("ok, thanks") == []  # a person owns it: no bot message in the answer

        assert agent.post(f"/conversations/{conversation}/resolve").status_code == 200
        question = eventually(lambda: [b for b in recorder.bodies()
                                       if RATING_QUESTION.search(b["text"])], what="question")
        assert question[0]["agent"] is None  # the bot asks
        assert [b["payload"] for b in question[0]["buttons"]] == ["1", "2", "3", "4", "5"]
        polled = httpx.get(f"{stack.gateway}/channels/{slug}/rest/messages",
                           params={"sender": "order-system-42", "after": 0},
                           headers={"Authorization": f"Bearer {rest_key}"}, timeout=10)
        assert polled.status_code == 200 and hello in polled.text
        assert any(THANKS.search(r.get("text", "")) for r in say("5"))
    finally:
        stream.close()
        agent.close()
        recorder.shutdown()
        recorder.server_close()


@dataclass
class OtherShop:
    slug: str
    tenant_id: str
    rest_key: str
    agent: httpx.Client
    live: LiveStream


@pytest.fixture(scope="module")
def other_shop(stack: Stack) -> Iterator[OtherShop]:
    """Another shop on the same deployment, with its agent's inbox open."""
    slug = f"elsewhere-{secrets.token_hex(3)}"
    tenant_id = stack.add_shop_like_demo(slug, f"pk_{slug.replace('-', '_')}")
    key = stack.issue_admin_key(slug, "agent")
    with httpx.Client(base_url=f"{stack.admin}/api/v1", timeout=WAIT,
                      headers={"Authorization": f"Bearer {key}"}) as client:
        stream = LiveStream(stack.admin, key)
        yield OtherShop(slug, tenant_id, stack.issue_rest_key(slug), client, stream)
        stream.close()


def test_another_shops_agent_sees_neither_the_thread_nor_its_events(
        stack: Stack, agent: httpx.Client, live: LiveStream, other_shop: OtherShop) -> None:
    visitor = RestVisitor(stack)
    conversation = escalate(stack, visitor, live)
    assert agent.post(f"/conversations/{conversation}/claim").status_code == 200
    assert agent.post(f"/conversations/{conversation}/messages",
                      json={"text": "Hello from the demo shop"}).status_code == 202
    visitor.say("thanks, but it is still broken")
    live.wait_for("message.visitor", conversation)

    theirs = other_shop.agent
    assert theirs.get(f"/conversations/{conversation}").status_code == 404
    for action, body in (("claim", None), ("messages", {"text": "hi"}), ("notes", {"text": "x"}),
                         ("resolve", None)):
        answer = theirs.post(f"/conversations/{conversation}/{action}", json=body)
        assert answer.status_code == 404, (action, answer.text)
        assert answer.json()["detail"]
    for state in ("queued", "assigned"):
        listed = theirs.get("/conversations", params={"state": state})
        assert listed.status_code == 200
        assert conversation not in [c["id"] for c in listed.json()["items"]]

    # Their own visitor's escalation reaches them (the stream works) and not the demo agent.
    response = httpx.post(f"{stack.gateway}/channels/{other_shop.slug}/rest/webhook",
                          json={"sender": "their-visitor", "message": ASK_FOR_PERSON},
                          headers={"Authorization": f"Bearer {other_shop.rest_key}"},
                          timeout=WAIT)
    assert response.status_code == 200, response.text
    their_conversation = stack.conversation_id(
        other_shop.tenant_id, sender_id(other_shop.tenant_id, "rest", "their-visitor"))
    other_shop.live.wait_for("handoff.requested", their_conversation)
    assert other_shop.live.about(conversation) == []
    assert all(e.data.get("conversation_id") == their_conversation
               for e in other_shop.live.events), [e.kind for e in other_shop.live.events]
    assert live.about(their_conversation) == []
    assert agent.get(f"/conversations/{their_conversation}").status_code == 404
    assert agent.post(f"/conversations/{conversation}/resolve").status_code == 200


def test_a_sender_id_cannot_walk_into_another_shops_conversation(
        stack: Stack, other_shop: OtherShop) -> None:
    """Another shop's REST sender written as a path ("x/../../../conversations/<demo>:rest:
    <visitor>"): its agent's reply and resume go to that shop's own conversation, and the demo
    visitor's tracker in Rasa never sees them (security walk, finding 1)."""
    victim = RestVisitor(stack)
    victim.say("hi")
    sneaky = f"x/../../../conversations/{victim.sender_id}"
    response = httpx.post(f"{stack.gateway}/channels/{other_shop.slug}/rest/webhook",
                          json={"sender": sneaky, "message": ASK_FOR_PERSON},
                          headers={"Authorization": f"Bearer {other_shop.rest_key}"},
                          timeout=WAIT)
    assert response.status_code == 200, response.text
    theirs = stack.conversation_id(other_shop.tenant_id,
                                   sender_id(other_shop.tenant_id, "rest", sneaky))
    other_shop.live.wait_for("handoff.requested", theirs)
    injected = f"INJECTED {secrets.token_hex(3)}"
    assert other_shop.agent.post(f"/conversations/{theirs}/claim").status_code == 200
    assert other_shop.agent.post(f"/conversations/{theirs}/messages",
                                 json={"text": injected}).status_code == 202
    assert other_shop.agent.post(f"/conversations/{theirs}/resolve").status_code == 200

    def tracker(sender: str) -> dict[str, Any]:
        answer = httpx.get(f"{stack.rasa}/conversations/{sender}/tracker",
                           headers=stack.rasa_headers(), timeout=WAIT)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    transcript = httpx.get(f"{stack.admin}/api/v1/conversations/{theirs}", timeout=WAIT,
                           headers=other_shop.agent.headers).json()
    assert injected in json.dumps(transcript)  # sent to their own visitor, and recorded
    events = tracker(victim.sender_id)["events"]
    assert injected not in json.dumps(events)
    assert not any(e["event"] == "resume" for e in events)


# -- the widget and the inbox page, both in Chromium ----------------------------------------
def test_a_widget_visitor_and_an_agent_in_the_inbox_page(stack: Stack, browser: Browser,
                                                         agent: httpx.Client) -> None:
    """The visitor uses the chat bubble on the shop's site; the shop's owner answers from the
    inbox page (/app/inbox), keys only: c claims, r replies, e resolves."""
    expect.set_options(timeout=WAIT * 1000)
    tag = (f'<script src="{stack.gateway}/channels/demo/web/widget.js" '
           f'data-key="{DEMO_WIDGET_KEY}" async></script>')
    site, url = serve_page(f"<!doctype html><html><head><title>Shop</title></head>"
                           f"<body>{tag}</body></html>")
    shop = browser.new_context()
    desk, inbox = open_inbox(stack, browser)
    try:

        page = shop.new_page()
        page.goto(url)
        widget = Widget(page)
        widget.open()
        widget.say(ASK_FOR_PERSON, ANNOUNCEMENT)
        token = widget.stored_token()
        assert token
        conversation = stack.conversation_id(
            DEMO_TENANT_ID, sender_id(DEMO_TENANT_ID, "web", token.split(".")[1]))

        # The escalation appears in the agent's queue without a reload.
        waiting = inbox.locator(f'[role="option"][data-id="{conversation}"]')
        expect(waiting).to_contain_text("Waiting for an agent")
        waiting.click()
        inbox.keyboard.press("c")
        expect(inbox.locator("#thread-status")).to_have_text("You have this conversation now.")

        inbox.keyboard.press("r")
        reply = f"Hello, I'm from the team ({secrets.token_hex(3)}). What happened?"
        inbox.keyboard.type(reply)
        inbox.keyboard.press("Control+Enter")
        expect(inbox.locator("#thread-status")).to_contain_text("Reply sent")

        # The reply appears in the bubble at once, signed by the person who wrote it.
        from_agent = widget.log.locator(".msg.agent").last
        expect(from_agent).to_contain_text(reply)
        handoff = agent.get(f"/conversations/{conversation}").json()["handoffs"][-1]
        assert handoff["status"] == "assigned" and handoff["assignee"]["name"]
        # The demo owner gave no name: the visitor reads the shop's, never their email.
        expect(from_agent.locator(".who")).to_contain_text(DEMO_NAME)
        expect(from_agent.locator(".who")).not_to_contain_text(DEMO_OWNER_EMAIL)

        # The visitor answers: the agent's page shows it live, and the bot stays silent.
        bot_messages = widget.bot_messages().count()
        answer = f"The zip of my jacket broke ({secrets.token_hex(3)})"
        widget.input.fill(answer)
        widget.input.press("Enter")
        expect(widget.log.locator(".msg.visitor").last).to_contain_text(answer)
        expect(widget.log.locator(".msg.pending")).to_have_count(0)
        expect(inbox.locator("#transcript .from-visitor").last).to_contain_text(answer)
        expect(widget.bot_messages()).to_have_count(bot_messages)

        inbox.keyboard.press("Escape")
        inbox.keyboard.press("e")
        expect(inbox.locator("#thread-status")).to_contain_text("Resolved")

        # Handed back: the rating question with its buttons, the visitor's 5, the bot again.
        expect(widget.log).to_contain_text(RATING_QUESTION)
        widget.log.get_by_role("button", name="5", exact=True).last.click()
        expect(widget.log).to_contain_text(THANKS)
        assert eventually(lambda: rows(stack, "SELECT rating FROM handoff_requests WHERE "
                                              "sender_id = :s AND rating IS NOT NULL",
                                       s=sender_id(DEMO_TENANT_ID, "web", token.split(".")[1])),
                          what="the rating") == [(5,)]
        widget.say("where is my order?", ORDER_FLOW)
        assert not widget.errors
    finally:
        shop.close()
        desk.close()
        site.shutdown()
