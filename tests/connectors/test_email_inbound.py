"""Email webhooks: only signed mail for the shop's own address reaches the inbox, once parsed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sanic import Request, Sanic
from sanic.response import HTTPResponse, json as json_response

from connectors import email_inbound
from connectors.errors import ChannelNotConfigured, GatewayError, TenantNotFound
from connectors.messages import InboundMessage, Media
from tenants import Tenant

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ADDRESS = "support@shop.example"
SIGNING_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
SENDGRID_CT = "multipart/form-data; boundary=xYzZY"
TENANT = Tenant(id="t-demo", slug="demo", name="Demo Shop", greeting=None,
                return_window_days=30, order_backend="demo", credentials_encrypted=None)
_names = count()


class Inbox:
    def __init__(self) -> None:
        self.accepted: list[InboundMessage] = []
        self.ids: set[str | None] = set()

    async def accept(self, inbound: InboundMessage) -> bool:
        self.accepted.append(inbound)
        new = inbound.message_id not in self.ids
        self.ids.add(inbound.message_id)
        return new


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_key_b64(private: ec.EllipticCurvePrivateKey) -> str:
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def make_app(inbound: str, sendgrid_public_key: str = "") -> tuple[Sanic, Inbox]:
    app = Sanic(f"email_test_{next(_names)}")
    app.blueprint(email_inbound.bp)
    inbox = Inbox()
    credentials: dict[str, Any] = {
        "address": ADDRESS, "inbound": inbound, "mailgun_signing_key": SIGNING_KEY,
        "sendgrid_public_key": sendgrid_public_key,
    }

    async def resolve_tenant(slug: str) -> Tenant:
        if slug != "demo":
            raise TenantNotFound("no such shop")
        return TENANT

    async def channel_credentials(tenant: Tenant, section: str) -> dict[str, Any]:
        if section != "email":
            raise ChannelNotConfigured("no")
        return credentials

    app.ctx.resolve_tenant = resolve_tenant
    app.ctx.channel_credentials = channel_credentials
    app.ctx.inbox = inbox
    app.ctx.redis = None

    @app.exception(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> HTTPResponse:
        return json_response({"detail": exc.detail}, status=exc.status)

    return app, inbox


# --- Mailgun ---------------------------------------------------------------------------------


def mailgun_form(name: str, key: str = SIGNING_KEY, age: int = 0, token: str | None = None,
                 **overrides: str) -> dict[str, str]:
    form = json.loads((FIXTURES / "mailgun" / name).read_text(encoding="utf-8"))
    timestamp = str(int(time.time()) - age)
    token = token or hashlib.sha256(f"{name}{time.time_ns()}".encode()).hexdigest()[:50]
    form.update(timestamp=timestamp, token=token,
                signature=hmac.new(key.encode(), f"{timestamp}{token}".encode(),
                                   hashlib.sha256).hexdigest())
    form.update(overrides)
    return form


def post_mailgun(app: Sanic, form: dict[str, str], files: Any = None) -> tuple[int, Any]:
    _, response = app.test_client.post("/channels/demo/email/mailgun", data=form, files=files)
    return response.status, response.json


def test_mailgun_reply_reaches_the_inbox_stripped_and_threaded() -> None:
    app, inbox = make_app("mailgun")
    status, body = post_mailgun(app, mailgun_form("reply_with_history.json"))
    assert (status, body) == (200, {"status": "ok"})
    [inbound] = inbox.accepted
    assert inbound.channel == "email" and inbound.provider == "mailgun"
    assert inbound.user_key == "alex.miller@gmail.com"
    assert inbound.message_id == "<CAHs7k1Qz8r2nB+X0v4Jm9fXh3a6W2cK@mail.gmail.com>"
    assert inbound.text == ('Thanks for the tracking link. The parcel still shows "label created"'
                            " though. Could you check where order #1001 is?")
    assert "wrote" not in inbound.text and "Alex Miller" not in inbound.text
    assert inbound.questions == ()
    assert dict(inbound.reply_context) == {
        "to": ADDRESS,
        "subject": "Re: Where is my order?",
        "message_id": "<CAHs7k1Qz8r2nB+X0v4Jm9fXh3a6W2cK@mail.gmail.com>",
        "references": "<CAHs7k1P0a9mLx@mail.gmail.com> <171740271203.4411.1234567890@shop.example>",
    }


def test_mailgun_three_questions_become_three_turns() -> None:
    app, inbox = make_app("mailgun")
    assert post_mailgun(app, mailgun_form("three_questions.json"))[0] == 200
    [inbound] = inbox.accepted
    assert inbound.turns() == (
        "Where is order #1003? My email is priya.shah@outlook.com.",
        "Can I return shoes I bought in the sale?",
        "And do you ship to Canada?",
    )


def test_mailgun_html_only_mail_is_read_from_html_with_decoded_subject() -> None:
    app, inbox = make_app("mailgun")
    assert post_mailgun(app, mailgun_form("html_only.json"))[0] == 200
    [inbound] = inbox.accepted
    assert inbound.user_key == "juergen.mueller@web.de"
    assert inbound.reply_context["subject"] == "Rücksendung Jacke"
    assert inbound.text == ("ich möchte die blaue Jacke aus Bestellung #1002 zurückschicken. "
                            "Wie lange habe ich dafür Zeit?")
    assert "Grüße" not in inbound.text


def test_mailgun_attachment_only_mail_carries_media() -> None:
    app, inbox = make_app("mailgun")
    files = {"attachment-1": ("IMG_0412.jpeg", b"\xff\xd8\xff\xe0fakejpeg\xff\xd9", "image/jpeg")}
    status, body = post_mailgun(app, mailgun_form("attachment_only.json"), files=files)
    assert (status, body) == (200, {"status": "ok"})
    [inbound] = inbox.accepted
    assert inbound.text == ""
    assert inbound.media == (Media("attachment:IMG_0412.jpeg", "image/jpeg"),)
    assert inbound.rasa_metadata()["media"] == [
        {"url": "attachment:IMG_0412.jpeg", "content_type": "image/jpeg"}]


def test_mailgun_stored_attachment_urls_become_media() -> None:
    app, inbox = make_app("mailgun")
    urls = json.dumps([{"url": "https://storage.eu.mailgun.net/v3/domains/shop.example/messages/"
                               "AgEFx/attachments/0", "content-type": "application/pdf",
                        "name": "invoice.pdf", "size": 20345}])
    form = mailgun_form("attachment_only.json", attachments=urls, **{"attachment-count": "0"})
    assert post_mailgun(app, form)[0] == 200
    assert inbox.accepted[0].media[0].content_type == "application/pdf"
    assert inbox.accepted[0].media[0].url.startswith("https://storage.eu.mailgun.net/")


def test_mailgun_auto_reply_is_acknowledged_and_ignored() -> None:
    app, inbox = make_app("mailgun")
    status, body = post_mailgun(app, mailgun_form("auto_reply.json"))
    assert (status, body) == (200, {"status": "ignored"})
    assert inbox.accepted == []


def test_mailgun_empty_mail_is_ignored() -> None:
    app, inbox = make_app("mailgun")
    form = mailgun_form("attachment_only.json", **{"attachment-count": "0"})
    assert post_mailgun(app, form) == (200, {"status": "ignored"})
    assert inbox.accepted == []


def test_mailgun_duplicate_delivery_is_acknowledged_the_same_way() -> None:
    app, inbox = make_app("mailgun")
    assert post_mailgun(app, mailgun_form("three_questions.json")) == (200, {"status": "ok"})
    assert post_mailgun(app, mailgun_form("three_questions.json")) == (200, {"status": "ok"})
    assert len(inbox.ids) == 1


@pytest.mark.parametrize(
    "case", ["bad", "missing", "stale", "future", "wrong-key", "tampered-token"])
def test_mailgun_bad_signature_is_403_and_nothing_accepted(case: str) -> None:
    app, inbox = make_app("mailgun")
    form = {
        "bad": lambda: mailgun_form("three_questions.json", signature="0" * 64),
        "missing": lambda: {k: v for k, v in mailgun_form("three_questions.json").items()
                            if k != "signature"},
        "stale": lambda: mailgun_form("three_questions.json", age=301),
        "future": lambda: mailgun_form("three_questions.json", age=-400),
        "wrong-key": lambda: mailgun_form("three_questions.json", key="key-someone-else"),
        "tampered-token": lambda: {**mailgun_form("three_questions.json"), "token": "x" * 50},
    }[case]()
    status, body = post_mailgun(app, form)
    assert status == 403 and body["detail"]
    assert inbox.accepted == []


def test_mailgun_token_replayed_on_another_mail_is_403() -> None:
    app, inbox = make_app("mailgun")
    form = mailgun_form("reply_with_history.json")
    assert post_mailgun(app, form)[0] == 200
    forged = {**form, "body-plain": "Please refund order #1002 to this card", "stripped-text": ""}
    assert post_mailgun(app, forged)[0] == 403
    assert len(inbox.accepted) == 1


def test_mailgun_redelivery_of_the_same_mail_goes_on_to_the_dedupe() -> None:
    app, inbox = make_app("mailgun")
    form = mailgun_form("reply_with_history.json")
    assert post_mailgun(app, form)[0] == 200
    assert post_mailgun(app, form)[0] == 200  # Mailgun retried: the inbox drops it by Message-ID
    assert [m.message_id for m in inbox.accepted] == [inbox.accepted[0].message_id] * 2


@pytest.mark.asyncio
async def test_mailgun_replay_cache_uses_redis_when_configured() -> None:
    class FakeRedis:
        def __init__(self) -> None:
            self.keys: dict[str, tuple[str, int]] = {}

        async def set(self, key: str, value: str, nx: bool, ex: int) -> bool | None:
            assert nx and ex >= 300
            if key in self.keys:
                return None
            self.keys[key] = (value, ex)
            return True

        async def get(self, key: str) -> bytes | None:
            return self.keys[key][0].encode() if key in self.keys else None

    app, inbox = make_app("mailgun")
    app.ctx.redis = FakeRedis()
    form = mailgun_form("reply_with_history.json")
    forged = {**form, "body-plain": "Send me every order of sam@example.com"}
    _, first = await app.asgi_client.post("/channels/demo/email/mailgun", data=form)
    _, second = await app.asgi_client.post("/channels/demo/email/mailgun", data=forged)
    assert (first.status, second.status) == (200, 403)
    assert len(app.ctx.redis.keys) == 1 and form["token"] not in next(iter(app.ctx.redis.keys))


def test_mailgun_mail_for_another_address_is_403() -> None:
    app, inbox = make_app("mailgun")
    form = mailgun_form("three_questions.json", recipient="support@other-shop.example")
    assert post_mailgun(app, form)[0] == 403
    assert inbox.accepted == []


def test_mailgun_endpoint_refused_for_a_sendgrid_shop() -> None:
    app, inbox = make_app("sendgrid")
    assert post_mailgun(app, mailgun_form("three_questions.json"))[0] == 404
    assert inbox.accepted == []


def test_unknown_shop_is_404() -> None:
    app, _ = make_app("mailgun")
    _, response = app.test_client.post("/channels/nope/email/mailgun",
                                       data=mailgun_form("three_questions.json"))
    assert response.status == 404


# --- SendGrid --------------------------------------------------------------------------------


def sendgrid_body(name: str) -> bytes:
    return (FIXTURES / "sendgrid" / name).read_bytes()


def sign(private: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> str:
    return base64.b64encode(
        private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def post_sendgrid(app: Sanic, body: bytes, signature: str | None,
                  timestamp: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": SENDGRID_CT, "User-Agent": "Sendlib/1.0"}
    if signature is not None:
        headers["X-Twilio-Email-Event-Webhook-Signature"] = signature
    if timestamp is not None:
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = timestamp
    _, response = app.test_client.post("/channels/demo/email/sendgrid", content=body,
                                       headers=headers)
    return response.status, response.json


def signed_post(app: Sanic, key: ec.EllipticCurvePrivateKey, name: str) -> tuple[int, Any]:
    body = sendgrid_body(name)
    timestamp = str(int(time.time()))
    return post_sendgrid(app, body, sign(key, body, timestamp), timestamp)


def test_sendgrid_signed_reply_is_accepted_without_history(sendgrid_key: Any) -> None:
    app, inbox = make_app("sendgrid", public_key_b64(sendgrid_key))
    assert signed_post(app, sendgrid_key, "reply_with_history.multipart") == (200, {"status": "ok"})
    [inbound] = inbox.accepted
    assert inbound.provider == "sendgrid" and inbound.user_key == "sam.lee@icloud.com"
    assert inbound.text == "How long does the refund take once you receive the parcel?"
    assert inbound.message_id == "<8D2C4F1E-6B7A-4C3D-9E0F-1A2B3C4D5E6F@icloud.com>"
    assert inbound.reply_context["references"] == "<171740100000.1001.998877@shop.example>"
    assert inbound.reply_context["subject"] == "Re: Your return request"


def test_sendgrid_html_only_outlook_reply(sendgrid_key: Any) -> None:
    app, inbox = make_app("sendgrid", public_key_b64(sendgrid_key))
    assert signed_post(app, sendgrid_key, "html_only.multipart")[0] == 200
    [inbound] = inbox.accepted
    assert inbound.text == "Has order #1004 been paid? I was charged twice."


def test_sendgrid_three_questions_in_latin1(sendgrid_key: Any) -> None:
    app, inbox = make_app("sendgrid", public_key_b64(sendgrid_key))
    assert signed_post(app, sendgrid_key, "three_questions.multipart")[0] == 200
    [inbound] = inbox.accepted
    assert inbound.reply_context["subject"] == "Questions à propos de ma commande"
    assert inbound.turns() == (
        "Where is order #1005? It was refunded, I think.",
        "Can I still return the café mugs? They arrived broken.",
        "Do you ship to Québec?",
    )


def test_sendgrid_attachment_only_binary_body(sendgrid_key: Any) -> None:
    app, inbox = make_app("sendgrid", public_key_b64(sendgrid_key))
    assert signed_post(app, sendgrid_key, "attachment_only.multipart") == (200, {"status": "ok"})
    [inbound] = inbox.accepted
    assert inbound.text == ""
    assert inbound.media == (Media("attachment:IMG_0412.jpeg", "image/jpeg"),)


@pytest.mark.parametrize("case", ["missing", "no-timestamp", "garbage", "other-key", "tampered"])
def test_sendgrid_bad_signature_is_403(sendgrid_key: Any, case: str) -> None:
    app, inbox = make_app("sendgrid", public_key_b64(sendgrid_key))
    body = sendgrid_body("three_questions.multipart")
    ts = str(int(time.time()))
    good = sign(sendgrid_key, body, ts)
    signature, timestamp, sent = {
        "missing": (None, ts, body),
        "no-timestamp": (good, None, body),
        "garbage": ("not base64 at all!", ts, body),
        "other-key": (sign(ec.generate_private_key(ec.SECP256R1()), body, ts), ts, body),
        "tampered": (good, ts, body.replace(b"Do you ship", b"Send me free")),
    }[case]
    status, _ = post_sendgrid(app, sent, signature, timestamp)
    assert status == 403
    assert inbox.accepted == []


def test_sendgrid_shop_without_public_key_is_refused(sendgrid_key: Any) -> None:
    app, inbox = make_app("sendgrid", "")
    assert signed_post(app, sendgrid_key, "three_questions.multipart")[0] == 403
    assert inbox.accepted == []


def test_sendgrid_mail_for_another_address_is_403(sendgrid_key: Any) -> None:
    app, inbox = make_app("sendgrid", public_key_b64(sendgrid_key))
    body = sendgrid_body("three_questions.multipart").replace(
        b'{"to": ["support@shop.example"]', b'{"to": ["sales@shop.example"]').replace(
        b"\r\n\r\nsupport@shop.example\r\n", b"\r\n\r\nsales@shop.example\r\n")
    ts = str(int(time.time()))
    assert post_sendgrid(app, body, sign(sendgrid_key, body, ts), ts)[0] == 403
    assert inbox.accepted == []


def test_sendgrid_endpoint_refused_for_a_mailgun_shop(sendgrid_key: Any) -> None:
    app, inbox = make_app("mailgun", public_key_b64(sendgrid_key))
    assert signed_post(app, sendgrid_key, "three_questions.multipart")[0] == 404
    assert inbox.accepted == []
