"""SMS, WhatsApp (Twilio and Meta) and email through the real gateway, Rasa and action server.

Provider webhooks are built and signed the way the providers do it (devtools/simulate.py);
replies go out to local fakes of Twilio's and Meta's sending APIs and to a real SMTP server.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from devtools import simulate
from tests.databases import sync_engine
from tests.fakes.anthropic_server import AnthropicFake
from tests.fakes.graph_server import GraphFake, status_webhook
from tests.fakes.twilio_server import TwilioFake
from tests.integration.mailbox import Mailbox
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

TRACKING = "1Z999AA10123456784"


def new_number() -> str:
    return "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))


def eventually(probe: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or probe}")


def rows(stack: Stack, sql: str, **params: Any) -> list[Any]:
    engine = sync_engine(stack.database)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def mail_body(mail: EmailMessage, subtype: str) -> str:
    """The text of the mail's text/<subtype> part (get_body gives None when there is none)."""
    part = mail.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part in {mail['Subject']!r}"
    content: str = part.get_content()
    return content


class Texter:
    """A visitor on SMS or Twilio's WhatsApp: each message is a signed Twilio webhook."""

    def __init__(self, stack: Stack, twilio: TwilioFake, whatsapp: bool = False) -> None:
        self.stack, self.twilio, self.whatsapp = stack, twilio, whatsapp
        self.number = new_number()
        self.creds = stack.demo_credentials()["twilio"]

    def request(self, body: str, **kw: Any) -> simulate.SignedRequest:
        return simulate.twilio_message(self.stack.gateway, "demo", self.creds, self.number, body,
                                       whatsapp=self.whatsapp, **kw)

    def post(self, request: simulate.SignedRequest, base: str | None = None) -> httpx.Response:
        url = request.url.replace(self.stack.gateway, base) if base else request.url
        return httpx.post(url, content=request.body, headers=request.headers, timeout=10)

    def say(self, body: str, **kw: Any) -> str:
        """Send; return the text of the reply that comes back through the Messages API."""
        before = len(self.twilio.messages_to(self.number))
        response = self.post(self.request(body, **kw))
        assert response.status_code == 200, response.text
        assert response.text.strip().endswith("</Response>")  # empty TwiML: reply comes later
        eventually(lambda: self.twilio.messages_to(self.number)[before:],
                   what=f"reply to {body!r}")
        time.sleep(0.3)  # a long reply may be split over several messages
        return "\n".join(m.body or "" for m in self.twilio.messages_to(self.number)[before:])


@pytest.fixture
def texter(stack: Stack, twilio_api: TwilioFake) -> Texter:
    return Texter(stack, twilio_api)


def test_order_status_over_sms(texter: Texter) -> None:
    assert "order number" in texter.say("where is my order?").lower()
    assert "email" in texter.say("1001").lower()
    answer = texter.say("alex@example.com")
    assert "UPS" in answer and TRACKING in answer
    sent = texter.twilio.messages_to(texter.number)
    assert all(m.from_ == "+15005550006" and m.to == texter.number for m in sent)


def test_bad_signature_is_refused_and_nothing_is_recorded(stack: Stack, texter: Texter) -> None:
    request = texter.request("where is my order?")
    forged = simulate.SignedRequest(request.url, request.body.replace(b"order", b"parcel"),
                                    request.headers, request.message_id)
    response = texter.post(forged)
    assert response.status_code == 403 and response.json()["detail"]
    unsigned = {k: v for k, v in request.headers.items() if k != "X-Twilio-Signature"}
    assert httpx.post(request.url, content=request.body, headers=unsigned).status_code == 403
    time.sleep(1.0)
    assert rows(stack, "SELECT id FROM messages WHERE sender_id LIKE :s",
                s=f"%:sms:{texter.number}") == []
    assert texter.twilio.messages_to(texter.number) == []


def test_message_to_another_shops_number_is_refused(stack: Stack, texter: Texter) -> None:
    request = simulate.twilio_message(stack.gateway, "demo", {**texter.creds,
                                      "sms_numbers": ["+15009998888"]}, texter.number, "hi")
    assert texter.post(request).status_code == 403


def test_same_message_on_two_gateways_at_once_is_answered_once(
        stack: Stack, texter: Texter) -> None:
    second = stack.start_second_gateway()
    try:
        request = texter.request("where is my order?")
        answers: list[int] = []
        barrier = threading.Barrier(4)

        def deliver(base: str | None) -> None:
            barrier.wait()
            answers.append(texter.post(request, base).status_code)

        threads = [threading.Thread(target=deliver, args=(b,))
                   for b in (None, second, None, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == [200, 200, 200, 200]
        eventually(lambda: texter.twilio.messages_to(texter.number), what="the reply")
        time.sleep(2.0)  # time for a second (wrong) reply to show up
        assert len(texter.twilio.messages_to(texter.number)) == 1
        stored = rows(stack, "SELECT id FROM messages WHERE message_id = :m AND direction = 'in'",
                      m=request.message_id)
        assert len(stored) == 1
    finally:
        stack.stop_process("gateway2")


def test_numbered_choices_on_whatsapp_and_a_reply_by_number(
        stack: Stack, twilio_api: TwilioFake) -> None:
    visitor = Texter(stack, twilio_api, whatsapp=True)
    offer = visitor.say("what's the capital of mongolia?")
    assert "1. Yes, please" in offer and "2. No, thanks" in offer
    assert all(m.to == f"whatsapp:{visitor.number}" and m.from_ == "whatsapp:+14155238886"
               for m in twilio_api.messages_to(visitor.number))
    assert "team" in visitor.say("1").lower()


def test_media_without_text_gets_a_sensible_answer(stack: Stack, twilio_api: TwilioFake) -> None:
    visitor = Texter(stack, twilio_api, whatsapp=True)
    media = [("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
              "image/jpeg")]
    reply = visitor.say("", media=media)
    assert "only read text" in reply
    stored = rows(stack, "SELECT payload FROM messages WHERE sender_id LIKE :s AND direction='in'",
                  s=f"%:whatsapp:{visitor.number}")
    assert media[0][0] in str(stored[0][0])


JACKET = "The Classic Denim Jacket comes in XS to XXL."
# Claude cites the catalogue row, so text channels also get the product's page under the answer.
JACKET_TEXT = f"{JACKET}\n\nhttps://demo-outfitters.example/products/classic-denim-jacket"


@pytest.fixture
def jacket_answer(anthropic_api: AnthropicFake) -> Any:
    """Claude (the fake) answers the jacket question with a cited sentence."""
    before = anthropic_api.responder
    anthropic_api.responder = lambda body: f"{JACKET} [1]"
    yield
    anthropic_api.responder = before


def test_slow_bot_is_acknowledged_at_once_and_answers_later(
        texter: Texter, anthropic_api: AnthropicFake, jacket_answer: None) -> None:
    anthropic_api.hang_next(4.0)  # the LLM takes 4 s
    response = texter.post(texter.request("which sizes is the classic denim jacket made in?"))
    assert response.status_code == 200
    assert texter.twilio.messages_to(texter.number) == []  # acknowledged before the answer
    reply = eventually(lambda: texter.twilio.messages_to(texter.number), what="late reply")
    assert reply[0].body == JACKET_TEXT


def test_delivery_status_callbacks_are_recorded(stack: Stack, texter: Texter) -> None:
    texter.say("hi")
    sid = texter.twilio.messages_to(texter.number)[0].sid
    status = eventually(lambda: [r for r in rows(
        stack, "SELECT status FROM deliveries WHERE provider_message_id = :sid", sid=sid)
        if r[0] == "delivered"], what="delivered status")
    assert status


def test_whatsapp_cloud_api_handshake_conversation_and_statuses(
        stack: Stack, graph_api: GraphFake, jacket_answer: None) -> None:
    creds = stack.demo_credentials()["meta_whatsapp"]
    url = f"{stack.gateway}/channels/demo/whatsapp/webhook"
    ok = httpx.get(url, params={"hub.mode": "subscribe", "hub.verify_token": creds["verify_token"],
                                "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert httpx.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "guess",
                                  "hub.challenge": "1"}).status_code == 403

    number = new_number()
    request = simulate.meta_message(stack.gateway, "demo", creds, number,
                                    "which sizes is the classic denim jacket made in?")
    response = httpx.post(request.url, content=request.body, headers=request.headers)
    assert response.status_code == 200
    sent = eventually(lambda: [s for s in graph_api.sent if s.body["to"] == number.lstrip("+")],
                      what="WhatsApp reply")
    assert sent[0].text == JACKET_TEXT
    # A repeat of the same wamid (Meta delivers at least once) gets no second answer.
    assert httpx.post(request.url, content=request.body, headers=request.headers).status_code == 200

    body, headers = status_webhook(creds["app_secret"], creds["phone_number_id"], sent[0].wamid,
                                   "delivered", recipient_id=number.lstrip("+"))
    assert httpx.post(url, content=body, headers=headers).status_code == 200
    eventually(lambda: rows(stack, "SELECT status FROM deliveries WHERE provider_message_id = :w "
                                   "AND status = 'delivered'", w=sent[0].wamid), what="status")
    time.sleep(1.0)
    assert len([s for s in graph_api.sent if s.body["to"] == number.lstrip("+")]) == 1


def test_email_with_two_questions_gets_one_threaded_reply(stack: Stack, mailbox: Mailbox) -> None:
    creds = stack.demo_credentials()["email"]
    visitor = f"shopper-{secrets.token_hex(4)}@example.net"
    first = simulate.mailgun_message(
        stack.gateway, "demo", creds, visitor, "Shipping and payment",
        "Hi there,\n\nDo you deliver to Canada? And can I pay with PayPal?\n\nThanks,\nRobin")
    assert httpx.post(first.url, content=first.body, headers=first.headers).status_code == 200
    reply = mailbox.wait_for(lambda m: visitor in str(m["To"]))
    assert reply["In-Reply-To"] == first.message_id
    assert reply["References"].split() == [first.message_id]
    assert reply["Subject"] == "Re: Shipping and payment"
    plain = mail_body(reply, "plain")
    html = mail_body(reply, "html")
    # Both answered, in order, under a numbered heading: the questions are not quoted back.
    assert plain.index("Your question 1 of 2:") < plain.index("ship")
    assert plain.index("Your question 2 of 2:") < plain.index("PayPal") and "<" in html
    assert "Do you deliver to Canada?" not in plain and "Canada?" not in html
    assert len(mailbox.to(visitor)) == 1  # both questions in one mail

    # The visitor answers our mail; quoted history must not reach the bot, threading goes on.
    ours = reply["Message-ID"]
    second = simulate.mailgun_message(
        stack.gateway, "demo", creds, visitor, "Re: Shipping and payment",
        "Where is order #1001? My email is alex@example.com\n\n"
        f"On Mon, 23 Nov 2026 at 10:00, Demo Outfitters <{creds['address']}> wrote:\n"
        "> Do you ship to Canada?\n> Yes, we ship to Canada.\n",
        in_reply_to=ours, references=f"{first.message_id} {ours}")
    assert httpx.post(second.url, content=second.body, headers=second.headers).status_code == 200
    follow_up = mailbox.wait_for(
        lambda m: visitor in str(m["To"]) and m["In-Reply-To"] == second.message_id)
    assert follow_up["References"].split() == [first.message_id, ours, second.message_id]
    assert TRACKING in mail_body(follow_up, "plain")
    stored = rows(stack, "SELECT text FROM messages WHERE message_id = :m", m=second.message_id)
    assert "wrote:" not in stored[0][0] and "ship to Canada" not in stored[0][0]


def test_spoofed_email_gets_no_order_details_and_relays_nothing(
        stack: Stack, mailbox: Mailbox) -> None:
    """Anyone can write someone else's address in From: a mail the provider did not vouch for
    (no DMARC / aligned SPF and DKIM pass) learns nothing about an order, and the shop's reply
    to that address carries none of the sender's words (no quotes, a bounded clean subject)."""
    creds = stack.demo_credentials()["email"]
    victim = f"victim-{secrets.token_hex(4)}@example.net"
    mail = simulate.mailgun_message(
        stack.gateway, "demo", creds, victim,
        "Your account is locked: log in at https://evil.example/login today or lose your orders",
        "Your account is locked, log in at https://evil.example/login now.\n\n"
        "Where is order #1001? My email is alex@example.com\n\nDo you deliver to Canada?",
        authenticated=False)
    assert httpx.post(mail.url, content=mail.body, headers=mail.headers).status_code == 200
    reply = mailbox.wait_for(lambda m: victim in str(m["To"]))
    plain, html = mail_body(reply, "plain"), mail_body(reply, "html")
    assert TRACKING not in plain and "UPS" not in plain and "Running shoes" not in plain
    assert "website" in plain  # where to verify instead
    assert "Your question 2 of 2:" in plain and "ship" in plain  # still answered
    for part in (reply["Subject"], plain, html):
        assert "evil.example" not in part and "account is locked, log in" not in part
    assert reply["Subject"].startswith("Re: Your account is locked")
    assert len(reply["Subject"]) <= len("Re: ") + 61
    assert reply["In-Reply-To"] == mail.message_id  # still threaded


def test_vouched_sender_is_not_asked_for_the_email_it_writes_from(
        stack: Stack, mailbox: Mailbox) -> None:
    """The provider vouched for the From (DMARC): that address is the order's email, so the
    order is checked at once; an order not under it is said plainly, once."""
    creds = stack.demo_credentials()["email"]

    def ask(sender: str, body: str, subject: str = "My order") -> str:
        mail = simulate.mailgun_message(stack.gateway, "demo", creds, sender, subject, body)
        assert httpx.post(mail.url, content=mail.body, headers=mail.headers).status_code == 200
        reply = mailbox.wait_for(lambda m: sender in str(m["To"])
                                 and m["In-Reply-To"] == mail.message_id)
        return mail_body(reply, "plain")

    said = ask("sam@example.com", "Hi, where is my order 1002? Thanks, Sam")
    assert "Order #1002" in said and "delivered" in said
    assert "what email address did you use" not in said

    stranger = f"shopper-{secrets.token_hex(4)}@example.net"
    said = ask(stranger, "Hi, where is my order 1002?")
    assert "couldn't find order #1002 under the email address you're writing from" in said
    assert "what email address did you use" not in said and "delivered" not in said
    said = ask(stranger, "I'm not sure, let me check", subject="Re: My order")
    assert "writing from" not in said and "delivered" not in said  # not tried again
    said = ask(stranger, "sam@example.com", subject="Re: My order")
    assert "Order #1002" in said and "delivered" in said


def test_provider_outage_is_retried_and_the_reply_still_arrives(
        stack: Stack, texter: Texter) -> None:
    texter.twilio.fail_next(503, times=2, match=lambda r: r.path.endswith("/Messages.json"))
    assert texter.say("hi").strip()
    sid = texter.twilio.messages_to(texter.number)[0].sid
    [(attempts,)] = rows(stack, "SELECT attempts FROM deliveries WHERE provider_message_id = :s",
                         s=sid)
    assert attempts == 3
