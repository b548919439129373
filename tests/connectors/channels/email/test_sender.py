"""Outbound email against a real local SMTP server (aiosmtpd): one threaded reply per email.

`render` turns all the replies to one email into one mail (threading headers, a text part and
an HTML alternative); `deliver` makes one SMTP attempt and maps the server's answer to a
transient (retry) or permanent error for the outbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from connectors.channels import email
from connectors.channels.email.sender import SmtpSender
from connectors.outbound import OutboundContext, PermanentSendError, Reply, TransientSendError
from core.destinations import Destinations
from core.settings import Settings
from tests.connectors.channels.harness import shop
from tests.servers import free_port

TENANT = shop("demo", "t-demo", name="Demo Shop")
LOCAL = Destinations(allow_private=True)  # the SMTP servers here listen on loopback
PARENT = "<CAHs7k1Qz8r2nB+X0v4Jm9fXh3a6W2cK@mail.gmail.com>"
ANCESTOR = "<171740271203.4411.1234567890@shop.example>"


class KeepingHandler:
    """Keeps every envelope; refuses recipients starting with "refused", defers "busy"."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("refused"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.startswith("busy"):
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(e.original_content, policy=default) for e in self.envelopes]


@pytest.fixture
def smtp() -> Iterator[tuple[KeepingHandler, int]]:
    handler = KeepingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def context(port: int, to: str = "alex.miller@gmail.com", smtp: dict[str, Any] | None = None,
            **reply: str) -> OutboundContext:
    return OutboundContext(
        tenant=TENANT,
        credentials={
            "address": "support@shop.example", "inbound": "mailgun", "from_name": "Demo Shop Help",
            "smtp": {"host": "127.0.0.1", "port": port, "username": "", "password": "",
                     "starttls": False, **(smtp or {})},
        },
        to=to,
        reply_context={"to": "support@shop.example", "subject": "Re: Where is my order?",
                       "message_id": PARENT, "references": ANCESTOR, **reply},
    )


ONE = [Reply(question="Where is order #1001?", messages=(
    {"text": "Order #1001 shipped with UPS: https://www.ups.com/track?tracknum=1Z999 <today>"},))]
SEVERAL = [
    Reply("Where is order #1003?", ({"text": "Order #1003 was cancelled on 2 June."},)),
    Reply("Can I return shoes I bought in the sale?", (
        {"text": "Sale items can be returned within 30 days. Start a return?",
         "buttons": [{"title": "Yes, start a return", "payload": "/start_return"},
                     {"title": "No thanks", "payload": "/deny"}]},)),
    Reply("And do you ship to Canada?", ({"text": "Yes, we ship to Canada."},)),
]


def part(mail: EmailMessage, subtype: str) -> str:
    """The text of the mail's text/<subtype> body (it must have one)."""
    body = mail.get_body((subtype,))
    assert body is not None, f"the mail has no text/{subtype} part"
    return str(body.get_content())


async def send(sender: SmtpSender, ctx: OutboundContext, replies: list[Reply]) -> list[str]:
    """What the outbox does once nothing fails: render, then deliver each part."""
    return [await sender.deliver(ctx, part) for part in sender.render(ctx, replies)]


# --- render ----------------------------------------------------------------------------------


def assert_threaded_reply(mail: EmailMessage) -> None:
    """The reply to PARENT as the visitor's mail client must see it."""
    assert mail["Message-ID"].endswith("@shop.example>")
    assert mail["In-Reply-To"] == PARENT
    assert mail["References"].split() == [ANCESTOR, PARENT]
    assert mail["Subject"] == "Re: Where is my order?"  # no "Re: Re:"
    assert mail["From"] == "Demo Shop Help <support@shop.example>"
    assert mail["To"] == "alex.miller@gmail.com"
    assert mail["Date"]
    assert mail["Auto-Submitted"] == "auto-replied"


def test_render_builds_one_threaded_mail_with_both_parts() -> None:
    [mail] = SmtpSender(LOCAL).render(context(25), ONE)
    assert_threaded_reply(mail)
    assert mail.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]


def test_render_puts_every_answer_in_one_mail() -> None:
    parts = SmtpSender(LOCAL).render(context(25, subject="A few questions", references=""), SEVERAL)
    assert len(parts) == 1
    assert parts[0]["Subject"] == "Re: A few questions"
    assert parts[0]["References"] == PARENT


def test_render_without_a_parent_starts_a_thread_named_after_the_shop() -> None:
    [mail] = SmtpSender(LOCAL).render(context(25, subject="", message_id="", references=""), ONE)
    assert mail["Subject"] == "Re: Demo Shop"
    assert mail["In-Reply-To"] is None and mail["References"] is None


@pytest.mark.parametrize(("subject", "expected"), [
    ("Where is my order?", "Re: Where is my order?"),
    ("RE: re: Fwd: Where is my order?", "Re: Where is my order?"),
    ("Your account is locked, log in at https://evil.example/login or www.evil.example now",
     "Re: Your account is locked, log in at or…"),
    ("Payment failed: write to billing@evil.example today", "Re: Payment failed: write to today"),
    ("one two three four five six seven eight nine ten", "Re: one two three four five six seven"
     " eight…"),
    ("x" * 200, "Re: " + "x" * 60 + "…"),
    ("Hello\r\nBcc: victim@example.com\u202e", "Re: Hello Bcc:"),
    ("https://evil.example", "Re: Demo Shop"),
])
def test_the_subject_repeats_only_a_bounded_clean_original(subject: str, expected: str) -> None:
    [mail] = SmtpSender(LOCAL).render(context(25, subject=subject), ONE)
    assert mail["Subject"] == expected


def test_nothing_to_say_renders_nothing() -> None:
    assert SmtpSender(LOCAL).render(context(25), [Reply("hi?", ())]) == []
    assert SmtpSender(LOCAL).render(context(25), []) == []


# --- deliver ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reply_is_threaded_on_the_wire(smtp: tuple[KeepingHandler, int]) -> None:
    handler, port = smtp
    ctx = context(port)
    await send(SmtpSender(LOCAL), ctx, ONE)
    [mail] = handler.messages()
    assert handler.envelopes[0].rcpt_tos == ["alex.miller@gmail.com"]
    assert_threaded_reply(mail)


@pytest.mark.asyncio
async def test_deliver_returns_our_message_id(smtp: tuple[KeepingHandler, int]) -> None:
    handler, port = smtp
    ctx = context(port)
    [part] = SmtpSender(LOCAL).render(ctx, ONE)
    message_id = await SmtpSender(LOCAL).deliver(ctx, part)
    [mail] = handler.messages()
    assert isinstance(message_id, str)  # the outbox records it and matches replies to it
    assert message_id == mail["Message-ID"] == part["Message-ID"]


@pytest.mark.asyncio
async def test_plain_and_html_alternatives_with_escaped_clickable_links(
        smtp: tuple[KeepingHandler, int]) -> None:
    handler, port = smtp
    await send(SmtpSender(LOCAL), context(port), ONE)
    [mail] = handler.messages()
    assert mail.get_content_type() == "multipart/alternative"
    text = part(mail, "plain")
    html = part(mail, "html")
    assert "Order #1001 shipped with UPS: https://www.ups.com/track?tracknum=1Z999 <today>" in text
    assert '<a href="https://www.ups.com/track?tracknum=1Z999">' in html
    assert "&lt;today&gt;" in html and "<today>" not in html
    assert "&gt; Where is order" not in html  # one question: no quote


@pytest.mark.asyncio
async def test_several_answers_in_one_mail_in_order_without_quoting_the_questions(
        smtp: tuple[KeepingHandler, int]) -> None:
    handler, port = smtp
    ids = await send(SmtpSender(LOCAL), context(port, subject="A few questions", references=""),
                     SEVERAL)
    assert len(ids) == 1 and len(handler.envelopes) == 1
    [mail] = handler.messages()
    assert mail["Subject"] == "Re: A few questions"
    assert mail["References"] == PARENT
    text = part(mail, "plain")
    order = [text.index(s) for s in (
        "Your question 1 of 3:", "Order #1003 was cancelled",
        "Your question 2 of 3:", "Sale items can be returned", "1. Yes, start a return",
        "2. No thanks", "Your question 3 of 3:", "Yes, we ship to Canada.")]
    assert order == sorted(order)
    html = part(mail, "html")
    # The visitor's words are not sent back (a spoofed From would make us relay them).
    for question in ("Where is order #1003?", "Can I return shoes", "And do you ship"):
        assert question not in text and question not in html
    assert "<blockquote" not in html
    assert "<ol><li>Yes, start a return</li><li>No thanks</li></ol>" in html


@pytest.mark.asyncio
async def test_refused_recipient_is_permanent_with_the_smtp_code(
        smtp: tuple[KeepingHandler, int]) -> None:
    handler, port = smtp
    with pytest.raises(PermanentSendError) as caught:
        await send(SmtpSender(LOCAL), context(port, to="refused@shop.example"), ONE)
    assert caught.value.code == "550"
    assert handler.envelopes == []


@pytest.mark.asyncio
async def test_greylisting_4xx_is_transient(smtp: tuple[KeepingHandler, int]) -> None:
    handler, port = smtp
    with pytest.raises(TransientSendError) as caught:
        await send(SmtpSender(LOCAL), context(port, to="busy@shop.example"), ONE)
    assert caught.value.code == "451"
    assert handler.envelopes == []


@pytest.mark.asyncio
async def test_an_smtp_host_resolving_to_a_private_address_is_refused_when_connecting(
        smtp: tuple[KeepingHandler, int]) -> None:
    handler, port = smtp
    with pytest.raises(PermanentSendError, match="private network address"):
        await send(SmtpSender(), context(port, smtp={"host": "localhost"}), ONE)  # production
    assert handler.envelopes == []


@pytest.mark.asyncio
async def test_server_down_is_transient() -> None:
    with pytest.raises(TransientSendError):
        await send(SmtpSender(LOCAL, timeout=2), context(free_port()), ONE)


@pytest.mark.asyncio
async def test_authentication_failure_is_permanent() -> None:
    handler = KeepingHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, auth_require_tls=False,
        authenticator=lambda *args: AuthResult(success=False, handled=False))
    controller.start()
    try:
        ctx = context(port, smtp={"username": "support@shop.example", "password": "wrong"})
        with pytest.raises(PermanentSendError) as caught:
            await send(SmtpSender(LOCAL), ctx, ONE)
        assert caught.value.code == "535"
        assert handler.envelopes == []
    finally:
        controller.stop()


@pytest.mark.asyncio
async def test_a_shop_without_an_smtp_host_is_permanent() -> None:
    ctx = context(25, smtp={"host": ""})
    [part] = SmtpSender(LOCAL).render(ctx, ONE)
    with pytest.raises(PermanentSendError):
        await SmtpSender(LOCAL).deliver(ctx, part)


@pytest.mark.asyncio
async def test_the_registry_builds_the_smtp_sender() -> None:
    assert email.CHANNEL.sender is not None
    async with httpx.AsyncClient() as http:
        settings = Settings.from_env({"SWITCHBOARD_CREDENTIALS_KEY": "k", "RASA_TOKEN": "t"})
        sender = email.CHANNEL.sender(http, settings)
    assert isinstance(sender, SmtpSender)


@pytest.mark.asyncio
async def test_a_port_stored_before_ports_were_checked_is_permanent_not_a_crash() -> None:
    ctx = context(25, smtp={"port": "abc"})
    [part] = SmtpSender(LOCAL).render(ctx, ONE)
    with pytest.raises(PermanentSendError, match="SMTP port"):
        await SmtpSender(LOCAL).deliver(ctx, part)
