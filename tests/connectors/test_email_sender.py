"""Outbound email against a real local SMTP server (aiosmtpd): one threaded reply per email."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any, Iterator

import pytest
from aiosmtpd.controller import Controller

from connectors.email_sender import SmtpSender
from connectors.outbound import Answer, OutboundContext, PermanentSendError, TransientSendError
from tenants import Tenant
from tests.integration.stack import free_port

TENANT = Tenant(id="t-demo", slug="demo", name="Demo Shop", greeting=None,
                return_window_days=30, order_backend="demo", credentials_encrypted=None)
PARENT = "<CAHs7k1Qz8r2nB+X0v4Jm9fXh3a6W2cK@mail.gmail.com>"
ANCESTOR = "<171740271203.4411.1234567890@shop.example>"


class KeepingHandler:
    """Keeps every envelope; refuses recipients starting with "refused", defers "busy"."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("refused"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if address.startswith("busy"):
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(e.original_content, policy=default)  # type: ignore[misc]
                for e in self.envelopes]


@pytest.fixture
def smtp() -> Iterator[tuple[KeepingHandler, int]]:
    handler = KeepingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def context(port: int, to: str = "alex.miller@gmail.com", **reply: str) -> OutboundContext:
    return OutboundContext(
        tenant=TENANT,
        credentials={
            "address": "support@shop.example", "inbound": "mailgun", "from_name": "Demo Shop Help",
            "smtp": {"host": "127.0.0.1", "port": port, "username": "", "password": "",
                     "starttls": False},
        },
        to=to,
        reply_context={"to": "support@shop.example", "subject": "Re: Where is my order?",
                       "message_id": PARENT, "references": ANCESTOR, **reply},
    )


ONE = [Answer(question="Where is order #1001?", messages=(
    {"text": "Order #1001 shipped with UPS: https://www.ups.com/track?tracknum=1Z999 <today>"},))]


@pytest.mark.asyncio
async def test_reply_is_threaded_and_our_message_id_returned(smtp: Any) -> None:
    handler, port = smtp
    ids = await SmtpSender().send(context(port), ONE)
    [mail] = handler.messages()
    assert handler.envelopes[0].rcpt_tos == ["alex.miller@gmail.com"]
    assert ids == [mail["Message-ID"]]
    assert mail["Message-ID"].endswith("@shop.example>")
    assert mail["In-Reply-To"] == PARENT
    assert mail["References"].split() == [ANCESTOR, PARENT]
    assert mail["Subject"] == "Re: Where is my order?"  # no "Re: Re:"
    assert mail["From"] == "Demo Shop Help <support@shop.example>"
    assert mail["To"] == "alex.miller@gmail.com"
    assert mail["Date"]
    assert mail["Auto-Submitted"] == "auto-replied"


@pytest.mark.asyncio
async def test_plain_and_html_alternatives_with_escaped_clickable_links(smtp: Any) -> None:
    handler, port = smtp
    await SmtpSender().send(context(port), ONE)
    [mail] = handler.messages()
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Order #1001 shipped with UPS: https://www.ups.com/track?tracknum=1Z999 <today>" in text
    assert '<a href="https://www.ups.com/track?tracknum=1Z999">' in html
    assert "&lt;today&gt;" in html and "<today>" not in html
    assert "&gt; Where is order" not in html  # one question: no quote


@pytest.mark.asyncio
async def test_several_answers_in_one_mail_each_after_its_quoted_question(smtp: Any) -> None:
    handler, port = smtp
    answers = [
        Answer("Where is order #1003?", ({"text": "Order #1003 was cancelled on 2 June."},)),
        Answer("Can I return shoes I bought in the sale?", (
            {"text": "Sale items can be returned within 30 days. Start a return?",
             "buttons": [{"title": "Yes, start a return", "payload": "/start_return"},
                         {"title": "No thanks", "payload": "/deny"}]},)),
        Answer("And do you ship to Canada?", ({"text": "Yes, we ship to Canada."},)),
    ]
    ids = await SmtpSender().send(context(port, subject="A few questions", references=""), answers)
    assert len(ids) == 1 and len(handler.envelopes) == 1
    [mail] = handler.messages()
    assert mail["Subject"] == "Re: A few questions"
    assert mail["References"] == PARENT
    text = mail.get_body(("plain",)).get_content()
    order = [text.index(s) for s in (
        "> Where is order #1003?", "Order #1003 was cancelled",
        "> Can I return shoes", "Sale items can be returned", "1. Yes, start a return",
        "2. No thanks", "> And do you ship to Canada?", "Yes, we ship to Canada.")]
    assert order == sorted(order)
    html = mail.get_body(("html",)).get_content()
    assert html.count("<blockquote") == 3
    assert "<ol><li>Yes, start a return</li><li>No thanks</li></ol>" in html


@pytest.mark.asyncio
async def test_refused_recipient_is_permanent_with_the_smtp_code(smtp: Any) -> None:
    handler, port = smtp
    with pytest.raises(PermanentSendError) as caught:
        await SmtpSender().send(context(port, to="refused@shop.example"), ONE)
    assert caught.value.code == "550"
    assert handler.envelopes == []


@pytest.mark.asyncio
async def test_greylisting_4xx_is_transient(smtp: Any) -> None:
    _, port = smtp
    with pytest.raises(TransientSendError) as caught:
        await SmtpSender().send(context(port, to="busy@shop.example"), ONE)
    assert caught.value.code == "451"


@pytest.mark.asyncio
async def test_server_down_is_transient() -> None:
    with pytest.raises(TransientSendError):
        await SmtpSender(timeout=2).send(context(free_port()), ONE)


@pytest.mark.asyncio
async def test_authentication_failure_is_permanent() -> None:
    from aiosmtpd.smtp import AuthResult

    handler = KeepingHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, auth_require_tls=False,
        authenticator=lambda *args: AuthResult(success=False, handled=False))
    controller.start()
    try:
        ctx = context(port)
        ctx.credentials["smtp"].update(username="support@shop.example", password="wrong")
        with pytest.raises(PermanentSendError) as caught:
            await SmtpSender().send(ctx, ONE)
        assert caught.value.code == "535"
        assert handler.envelopes == []
    finally:
        controller.stop()


@pytest.mark.asyncio
async def test_nothing_to_say_sends_nothing(smtp: Any) -> None:
    handler, port = smtp
    assert await SmtpSender().send(context(port), [Answer("hi?", ())]) == []
    assert handler.envelopes == []
