"""Whether the provider vouched for an email's sender (DMARC, or SPF and DKIM aligned), read at
the edge into ParsedEmail.authenticated and carried to Rasa: the bot talks about orders by
email only then. Built from the captured Mailgun and SendGrid payloads in tests/fixtures/email."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.channels.email.parsing import aligned, parse_mailgun, parse_sendgrid
from connectors.channels.email.routes import to_inbound
from connectors.messages import InboundMessage
from tests.connectors.channels.harness import shop

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "email"
SHOP = {"address": "support@shop.example"}


def mailgun(*extra: tuple[str, str], sender: str | None = None) -> dict[str, str]:
    """three_questions.json (From priya.shah@outlook.com) with `extra` headers on top, as
    Mailgun lists them: newest first."""
    form: dict[str, str] = json.loads((FIXTURES / "mailgun" / "three_questions.json").read_text())
    headers = [list(pair) for pair in extra] + json.loads(form["message-headers"])
    form["message-headers"] = json.dumps(headers)
    if sender is not None:
        form["sender"] = sender
    return form


SPF_PASS = ("X-Mailgun-Spf", "Pass")
DKIM_PASS = ("X-Mailgun-Dkim-Check-Result", "Pass")
OUTLOOK_SIGNED = ("DKIM-Signature", "v=1; a=rsa-sha256; d=outlook.com; s=selector1; bh=x; b=y")


@pytest.mark.parametrize(("headers", "expected"), [
    ((), False),  # no verdict at all
    ((SPF_PASS, DKIM_PASS, OUTLOOK_SIGNED), True),
    ((SPF_PASS, OUTLOOK_SIGNED), False),  # DKIM not checked
    ((("X-Mailgun-Spf", "SoftFail"), DKIM_PASS, OUTLOOK_SIGNED), False),
    ((SPF_PASS, DKIM_PASS), False),  # the passing signature is not the From domain's
    ((SPF_PASS, DKIM_PASS, OUTLOOK_SIGNED, ("X-Mailgun-Spf", "Fail")), False),  # a forged Pass
    ((("ARC-Authentication-Results", "i=1; mx.mailgun.org; dkim=pass header.d=outlook.com; "
       "spf=pass smtp.mailfrom=outlook.com; dmarc=pass (p=REJECT) header.from=outlook.com"),),
     True),
    ((("Authentication-Results", "mxa.mailgun.org; dmarc=fail (p=REJECT) "
       "header.from=outlook.com"), SPF_PASS, DKIM_PASS, OUTLOOK_SIGNED), False),
    # A sender's own Authentication-Results (not the provider's) is not read.
    ((("Authentication-Results", "mx.evil.example; dmarc=pass header.from=outlook.com"),),
     False),
    # The provider's newest verdict decides, not one the sender put further down.
    ((("Authentication-Results", "mxa.mailgun.org; dmarc=fail header.from=outlook.com"),
      ("Authentication-Results", "mxa.mailgun.org; dmarc=pass header.from=outlook.com")),
     False),
    # DMARC passed, but for another domain than the From.
    ((("Authentication-Results", "mxa.mailgun.org; dmarc=pass header.from=evil.example"),),
     False),
])
def test_mailgun_verdict(headers: tuple[tuple[str, str], ...], expected: bool) -> None:
    form = mailgun(*headers, sender="bounces+x@outlook.com")
    assert parse_mailgun(form, {}).authenticated is expected


def test_mailgun_spf_of_another_envelope_domain_is_not_aligned() -> None:
    form = mailgun(SPF_PASS, DKIM_PASS, OUTLOOK_SIGNED, sender="attacker@evil.example")
    assert parse_mailgun(form, {}).authenticated is False


def sendgrid(name: str, **replace: str) -> tuple[bytes, str]:
    body = (FIXTURES / "sendgrid" / f"{name}.multipart").read_bytes()
    for old, new in replace.items():
        body = body.replace(old.encode(), new.encode())
    return body, "multipart/form-data; boundary=xYzZY"


def test_sendgrid_spf_and_dkim_aligned_pass() -> None:
    assert parse_sendgrid(*sendgrid("three_questions")).authenticated is True


@pytest.mark.parametrize("change", [
    {"{@orange.example : pass}": "{@orange.example : fail}"},
    {"{@orange.example : pass}": "{@sendgrid.net : pass}"},  # signed by someone else
    {"\r\npass\r\n--xYzZY--": "\r\nsoftfail\r\n--xYzZY--"},  # SPF
    {'"from": "renee.dubois@orange.example"': '"from": "bounce@evil.example"'},  # envelope
])
def test_sendgrid_without_both_aligned_passes_is_not_authenticated(
        change: dict[str, str]) -> None:
    body, content_type = sendgrid("three_questions", **change)
    assert body != sendgrid("three_questions")[0], "the fixture changed"
    assert parse_sendgrid(body, content_type).authenticated is False


def test_alignment_is_relaxed_but_conservative() -> None:
    assert aligned("mail.example.com", "example.com")
    assert aligned("example.com", "eu.example.com")
    assert not aligned("example.com.evil.example", "example.com")
    assert not aligned("com", "example.com") and not aligned("", "example.com")


def inbound(form: dict[str, Any]) -> InboundMessage:
    message = to_inbound(shop(), "email", SHOP, parse_mailgun(form, {}))
    assert message is not None
    return message


def test_the_verdict_travels_to_rasa_and_survives_recovery() -> None:
    trusted = inbound(mailgun(SPF_PASS, DKIM_PASS, OUTLOOK_SIGNED, sender="x@outlook.com"))
    spoofed = inbound(mailgun())
    assert trusted.rasa_metadata()["sender_authenticated"] is True
    assert spoofed.rasa_metadata()["sender_authenticated"] is False
    assert spoofed.rasa_metadata()["client_address"] == "priya.shah@outlook.com"
    again = InboundMessage.from_stored(trusted.tenant, trusted.sender_id, trusted.text,
                                       trusted.message_id, trusted.stored_payload())
    assert again.sender_authenticated is True and again.client_metadata == {}
