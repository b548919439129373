"""Email webhooks: only signed mail for the shop's own address reaches the inbox, once parsed.

Through the shared channel harness: the email channel's real routes under their real URLs, the
gateway's real error answers, the real replay guard; the inbox records what it is handed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from redis.asyncio import Redis
from sanic import Request

from connectors.channels import email
from connectors.messages import InboundMessage, Media
from connectors.replay import ReplayGuard
from tests.conftest import services
from tests.connectors.channels.harness import ChannelHarness, FakeInbox, shop

ADDRESS = "support@shop.example"
SIGNING_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
SENDGRID_CT = "multipart/form-data; boundary=xYzZY"
TENANT = shop("demo", "t-demo", name="Demo Shop")


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_key_b64(private: ec.EllipticCurvePrivateKey) -> str:
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def section(service: str, sendgrid_public_key: str = "", /,
            **changes: Any) -> dict[str, Any]:
    """A complete email section (it must pass the channel's check, or the shop is 404);
    `changes` set fields, None removes one."""
    values: dict[str, Any] = {
        "address": ADDRESS, "inbound": service, "mailgun_signing_key": SIGNING_KEY,
        "sendgrid_public_key": sendgrid_public_key,
        "smtp": {"host": "smtp.shop.example", "port": 587},
    }
    return {key: value for key, value in {**values, **changes}.items() if value is not None}


def harness(service: str, sendgrid_public_key: str = "", /, *,
            replay: ReplayGuard | None = None, **changes: Any) -> ChannelHarness:
    return ChannelHarness(email.CHANNEL, "email", section(service, sendgrid_public_key, **changes),
                          tenant=TENANT, inbox=FakeInbox(), replay=replay)


def offered(h: ChannelHarness) -> list[InboundMessage]:
    """Every message the route offered the inbox, the repeats it dropped included."""
    return h.inbox.offered


# --- Mailgun ---------------------------------------------------------------------------------


def mailgun_form(h: ChannelHarness, name: str, key: str = SIGNING_KEY, age: int = 0,
                 token: str | None = None, fields: dict[str, str] | None = None,
                 **overrides: str) -> dict[str, str]:
    """A captured Mailgun post, freshly signed; `fields`/`overrides` replace its fields after
    signing (`fields` for names that are not Python identifiers)."""
    form: dict[str, str] = h.fixture_json(f"mailgun/{name}")
    timestamp = str(int(time.time()) - age)
    token = token or hashlib.sha256(f"{name}{time.time_ns()}".encode()).hexdigest()[:50]
    form.update(timestamp=timestamp, token=token,
                signature=hmac.new(key.encode(), f"{timestamp}{token}".encode(),
                                   hashlib.sha256).hexdigest())
    form.update(fields or {}, **overrides)
    return form


async def post_mailgun(h: ChannelHarness, form: dict[str, str], files: Any = None,
                       slug: str | None = None) -> tuple[int, Any]:
    # Encoded as Mailgun posts it: urlencoded, or multipart when attachments come along.
    encoded = httpx.Request("POST", "http://gateway.test", data=form, files=files)
    response = await h.post(h.url("mailgun", slug), encoded.read(),
                            {"Content-Type": encoded.headers["Content-Type"]})
    return response.status, response.json


@pytest.mark.asyncio
async def test_mailgun_reply_reaches_the_inbox_stripped_and_threaded() -> None:
    h = harness("mailgun")
    status, body = await post_mailgun(h, mailgun_form(h, "reply_with_history.json"))
    assert (status, body) == (200, {"status": "ok"})
    [inbound] = h.inbox.accepted
    assert inbound.tenant == TENANT
    assert inbound.channel == "email" and inbound.provider == "email"
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


CARD = "4111 1111 1111 1111"
MASKED = "**** **** **** 1111"


@pytest.mark.asyncio
async def test_a_card_number_in_the_subject_is_masked_before_it_is_kept_or_answered() -> None:
    """The body's card number was masked, the subject's was stored with the message, shown in
    the transcript, handed to Rasa and quoted back in the reply's subject."""
    h = harness("mailgun")
    luhn_id = "<4012888888881881@mail.gmail.com>"  # an id that looks like a card stays whole
    form = mailgun_form(h, "reply_with_history.json", subject=f"Charged twice on {CARD}",
                        fields={"Message-Id": luhn_id, "message-headers": "[]"})
    assert await post_mailgun(h, form) == (200, {"status": "ok"})
    [inbound] = h.inbox.accepted
    assert inbound.reply_context["subject"] == f"Charged twice on {MASKED}"
    assert inbound.stored_payload()["reply_context"]["subject"] == f"Charged twice on {MASKED}"
    assert "4111" not in json.dumps([inbound.stored_payload(), inbound.rasa_metadata()])
    assert inbound.recipient().reply_context["subject"] == f"Charged twice on {MASKED}"
    assert inbound.message_id == luhn_id == inbound.reply_context["message_id"]


@pytest.mark.asyncio
async def test_mailgun_three_questions_become_three_turns() -> None:
    h = harness("mailgun")
    assert (await post_mailgun(h, mailgun_form(h, "three_questions.json")))[0] == 200
    [inbound] = h.inbox.accepted
    assert inbound.turns() == (
        "Where is order #1003? My email is priya.shah@outlook.com.",
        "Can I return shoes I bought in the sale?",
        "And do you ship to Canada?",
    )


@pytest.mark.asyncio
async def test_mailgun_html_only_mail_is_read_from_html_with_decoded_subject() -> None:
    h = harness("mailgun")
    assert (await post_mailgun(h, mailgun_form(h, "html_only.json")))[0] == 200
    [inbound] = h.inbox.accepted
    assert inbound.user_key == "juergen.mueller@web.de"
    assert inbound.reply_context["subject"] == "Rücksendung Jacke"
    assert inbound.text == ("ich möchte die blaue Jacke aus Bestellung #1002 zurückschicken. "
                            "Wie lange habe ich dafür Zeit?")
    assert "Grüße" not in inbound.text


@pytest.mark.asyncio
async def test_mailgun_attachment_only_mail_carries_media() -> None:
    h = harness("mailgun")
    files = {"attachment-1": ("IMG_0412.jpeg", b"\xff\xd8\xff\xe0fakejpeg\xff\xd9", "image/jpeg")}
    status, body = await post_mailgun(h, mailgun_form(h, "attachment_only.json"), files=files)
    assert (status, body) == (200, {"status": "ok"})
    [inbound] = h.inbox.accepted
    assert inbound.text == ""
    assert inbound.media == (Media("attachment:IMG_0412.jpeg", "image/jpeg"),)
    assert inbound.rasa_metadata()["media"] == [
        {"url": "attachment:IMG_0412.jpeg", "content_type": "image/jpeg"}]


@pytest.mark.asyncio
async def test_mailgun_stored_attachment_urls_become_media() -> None:
    h = harness("mailgun")
    urls = json.dumps([{"url": "https://storage.eu.mailgun.net/v3/domains/shop.example/messages/"
                               "AgEFx/attachments/0", "content-type": "application/pdf",
                        "name": "invoice.pdf", "size": 20345}])
    form = mailgun_form(h, "attachment_only.json", attachments=urls,
                        fields={"attachment-count": "0"})
    assert (await post_mailgun(h, form))[0] == 200
    assert h.inbox.accepted[0].media[0].content_type == "application/pdf"
    assert h.inbox.accepted[0].media[0].url.startswith("https://storage.eu.mailgun.net/")


@pytest.mark.asyncio
async def test_mailgun_auto_reply_is_acknowledged_and_ignored() -> None:
    h = harness("mailgun")
    status, body = await post_mailgun(h, mailgun_form(h, "auto_reply.json"))
    assert (status, body) == (200, {"status": "ignored"})
    assert offered(h) == []


@pytest.mark.asyncio
async def test_mailgun_mail_from_our_own_address_is_ignored() -> None:
    h = harness("mailgun")  # a bounce of our own reply, or a loop through a forwarder
    form = mailgun_form(h, "three_questions.json", fields={"from": f"Demo Shop <{ADDRESS}>"})
    assert await post_mailgun(h, form) == (200, {"status": "ignored"})
    assert offered(h) == []


@pytest.mark.asyncio
async def test_mailgun_empty_mail_is_ignored() -> None:
    h = harness("mailgun")
    form = mailgun_form(h, "attachment_only.json", fields={"attachment-count": "0"})
    assert await post_mailgun(h, form) == (200, {"status": "ignored"})
    assert offered(h) == []


@pytest.mark.asyncio
async def test_mailgun_duplicate_delivery_is_acknowledged_the_same_way() -> None:
    h = harness("mailgun")
    assert await post_mailgun(h, mailgun_form(h, "three_questions.json")) == (200, {"status": "ok"})
    assert await post_mailgun(h, mailgun_form(h, "three_questions.json")) == (200, {"status": "ok"})
    assert len(offered(h)) == 2 and len(h.inbox.accepted) == 1  # the inbox dropped the repeat


@pytest.mark.parametrize(
    "case", ["bad", "missing", "stale", "future", "wrong-key", "tampered-token"])
@pytest.mark.asyncio
async def test_mailgun_bad_signature_is_403_and_nothing_accepted(case: str) -> None:
    h = harness("mailgun")
    form = {
        "bad": lambda: mailgun_form(h, "three_questions.json", signature="0" * 64),
        "missing": lambda: {k: v for k, v in mailgun_form(h, "three_questions.json").items()
                            if k != "signature"},
        "stale": lambda: mailgun_form(h, "three_questions.json", age=301),
        "future": lambda: mailgun_form(h, "three_questions.json", age=-400),
        "wrong-key": lambda: mailgun_form(h, "three_questions.json", key="key-someone-else"),
        "tampered-token": lambda: {**mailgun_form(h, "three_questions.json"), "token": "x" * 50},
    }[case]()
    status, body = await post_mailgun(h, form)
    assert status == 403 and body["detail"]
    assert offered(h) == []


@pytest.mark.asyncio
async def test_mailgun_token_replayed_on_another_mail_is_403() -> None:
    h = harness("mailgun")
    form = mailgun_form(h, "reply_with_history.json")
    assert (await post_mailgun(h, form))[0] == 200
    forged = {**form, "body-plain": "Please refund order #1002 to this card", "stripped-text": ""}
    status, body = await post_mailgun(h, forged)
    assert status == 403 and "already used" in body["detail"]
    assert len(offered(h)) == 1


@pytest.mark.asyncio
async def test_mailgun_redelivery_of_the_same_mail_goes_on_to_the_dedupe() -> None:
    h = harness("mailgun")
    form = mailgun_form(h, "reply_with_history.json")
    assert (await post_mailgun(h, form))[0] == 200
    assert (await post_mailgun(h, form))[0] == 200  # Mailgun retried: the inbox drops it
    assert [m.message_id for m in offered(h)] == [offered(h)[0].message_id] * 2
    assert len(h.inbox.accepted) == 1


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[Redis]:
    url = services()["redis_url"]
    if not url:
        pytest.skip("Redis not configured (TEST_REDIS_URL, e.g. redis://127.0.0.1:6379/6)")
    client = Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_mailgun_tokens_are_remembered_in_redis_when_configured(redis: Redis) -> None:
    # Two gateway processes: the forged copy reaches the other one, which asks Redis.
    h = harness("mailgun", replay=ReplayGuard(redis))
    other = harness("mailgun", replay=ReplayGuard(redis))
    form = mailgun_form(h, "reply_with_history.json", token=uuid.uuid4().hex)
    forged = {**form, "body-plain": "Send me every order of sam@example.com"}
    assert (await post_mailgun(h, form))[0] == 200
    assert (await post_mailgun(other, forged))[0] == 403
    assert (await post_mailgun(other, form))[0] == 200  # a redelivery, to the dedupe
    assert await redis.keys(f"*{form['token']}*") == []  # the token itself is not a key
    assert 300 <= await redis.ttl(
        "switchboard:replay:" + hashlib.sha256(f"mailgun:{form['token']}".encode()).hexdigest()
    ) <= 600
    assert len(offered(h)) == 1 and len(offered(other)) == 1


@pytest.mark.asyncio
async def test_mailgun_mail_for_another_address_is_403() -> None:
    h = harness("mailgun")
    form = mailgun_form(h, "three_questions.json", recipient="support@other-shop.example")
    status, body = await post_mailgun(h, form)
    assert status == 403 and "support address" in body["detail"]
    assert offered(h) == []


@pytest.mark.asyncio
async def test_mailgun_malformed_mail_is_406_so_mailgun_does_not_retry() -> None:
    h = harness("mailgun")
    form = mailgun_form(h, "three_questions.json", fields={"from": "", "From": "", "sender": ""})
    form["message-headers"] = "[]"
    status, body = await post_mailgun(h, form)
    assert status == 406 and "sender" in body["detail"]
    assert offered(h) == []


# JSON fields of a provider's form nested past the parser's depth: a RecursionError, which
# was a 500 that the provider retried for hours.
TOO_DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.asyncio
@pytest.mark.parametrize("field", ["message-headers", "attachments"])
@pytest.mark.parametrize("value", [TOO_DEEP, '{"a":' * 100_000 + "1" + "}" * 100_000],
                         ids=["arrays", "objects"])
async def test_mailgun_json_field_nested_too_deep_is_read_as_absent(field: str,
                                                                    value: str) -> None:
    h = harness("mailgun")
    form = mailgun_form(h, "reply_with_history.json", fields={field: value})
    assert await post_mailgun(h, form) == (200, {"status": "ok"})
    [inbound] = h.inbox.accepted  # still answered, from the form's own fields
    assert inbound.user_key == "alex.miller@gmail.com"
    assert inbound.message_id == "<CAHs7k1Qz8r2nB+X0v4Jm9fXh3a6W2cK@mail.gmail.com>"
    assert inbound.media == ()
    assert inbound.sender_authenticated is False  # no provider verdict could be read


@pytest.mark.asyncio
async def test_mailgun_endpoint_refused_for_a_sendgrid_shop(
        sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    h = harness("sendgrid", public_key_b64(sendgrid_key))
    status, body = await post_mailgun(h, mailgun_form(h, "three_questions.json"))
    assert status == 404 and "mailgun" in body["detail"]
    assert offered(h) == []


@pytest.mark.asyncio
async def test_mailgun_shop_without_signing_key_is_not_set_up() -> None:
    h = harness("mailgun", mailgun_signing_key=None)
    status, body = await post_mailgun(h, mailgun_form(h, "three_questions.json"))
    assert status == 404 and "not set up" in body["detail"]
    assert offered(h) == []


@pytest.mark.asyncio
async def test_unknown_shop_is_404() -> None:
    h = harness("mailgun")
    status, body = await post_mailgun(h, mailgun_form(h, "three_questions.json"), slug="nope")
    assert status == 404 and "nope" in body["detail"]
    assert offered(h) == []


@pytest.mark.parametrize("missing", [None, "address", "inbound", "smtp"])
@pytest.mark.asyncio
async def test_shop_without_complete_email_credentials_is_404_on_both_endpoints(
        missing: str | None, sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    credentials = None if missing is None else section("mailgun", **{missing: None})
    h = ChannelHarness(email.CHANNEL, "email", credentials, tenant=TENANT, inbox=FakeInbox())
    status, body = await post_mailgun(h, mailgun_form(h, "three_questions.json"))
    assert status == 404 and "not set up" in body["detail"]
    assert (await signed_post(h, sendgrid_key, "three_questions.multipart"))[0] == 404
    assert offered(h) == []


@pytest.mark.parametrize("attachments", [False, True], ids=["urlencoded", "multipart"])
@pytest.mark.asyncio
async def test_mailgun_form_is_parsed_only_once_the_signature_holds(
        attachments: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    get_form = Request.get_form

    def spy(request: Request, *args: Any, **kwargs: Any) -> Any:
        parsed.append(request.path)
        return get_form(request, *args, **kwargs)

    monkeypatch.setattr(Request, "get_form", spy)
    h = harness("mailgun")
    files = {"attachment-1": ("a.jpg", b"\xff\xd8", "image/jpeg")} if attachments else None
    forged = mailgun_form(h, "three_questions.json", signature="0" * 64)
    assert (await post_mailgun(h, forged, files=files))[0] == 403
    assert parsed == [] and offered(h) == []
    assert (await post_mailgun(h, mailgun_form(h, "three_questions.json"), files=files))[0] == 200
    assert len(parsed) == 1 and len(offered(h)) == 1


@pytest.mark.asyncio
async def test_mailgun_message_id_too_long_to_store_is_hashed_and_still_answered() -> None:
    h = harness("mailgun")
    long_id = "<" + "x" * 300 + "@mail.example.net>"
    headers = json.dumps([["Message-Id", long_id], ["From", "alex@example.com"]])
    form = mailgun_form(h, "three_questions.json",
                        fields={"Message-Id": long_id, "message-headers": headers})
    assert (await post_mailgun(h, form))[0] == 200
    [inbound] = h.inbox.accepted
    digest = hashlib.sha256(long_id.encode()).hexdigest()
    assert inbound.message_id == f"<{digest}@long-id.switchboard.invalid>"
    assert inbound.reply_context["message_id"] == long_id  # the reply threads on the original
    again = mailgun_form(h, "three_questions.json",
                         fields={"Message-Id": long_id, "message-headers": headers})
    assert (await post_mailgun(h, again))[0] == 200 and len(h.inbox.accepted) == 1


@pytest.mark.asyncio
async def test_mailgun_sender_too_long_to_store_is_406_and_nothing_accepted() -> None:
    h = harness("mailgun")
    sender = "a" * 250 + "@example.com"
    form = mailgun_form(h, "three_questions.json", fields={"from": sender, "sender": sender})
    status, body = await post_mailgun(h, form)
    assert status == 406 and "sender" in body["detail"] and offered(h) == []


# --- SendGrid --------------------------------------------------------------------------------


def sendgrid_body(h: ChannelHarness, name: str) -> bytes:
    return h.fixture_path(f"sendgrid/{name}").read_bytes()


def sign(private: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> str:
    return base64.b64encode(
        private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


async def post_sendgrid(h: ChannelHarness, body: bytes, signature: str | None,
                        timestamp: str | None, content_type: str = SENDGRID_CT
                        ) -> tuple[int, Any]:
    headers = {"Content-Type": content_type, "User-Agent": "Sendlib/1.0"}
    if signature is not None:
        headers["X-Twilio-Email-Event-Webhook-Signature"] = signature
    if timestamp is not None:
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = timestamp
    response = await h.post(h.url("sendgrid"), body, headers)
    return response.status, response.json


async def signed_post(h: ChannelHarness, key: ec.EllipticCurvePrivateKey,
                      name: str) -> tuple[int, Any]:
    body = sendgrid_body(h, name)
    timestamp = str(int(time.time()))
    return await post_sendgrid(h, body, sign(key, body, timestamp), timestamp)


@pytest.mark.asyncio
async def test_sendgrid_signed_reply_is_accepted_without_history(
        sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    h = harness("sendgrid", public_key_b64(sendgrid_key))
    assert await signed_post(h, sendgrid_key, "reply_with_history.multipart") == (
        200, {"status": "ok"})
    [inbound] = h.inbox.accepted
    assert inbound.provider == "email" and inbound.user_key == "sam.lee@icloud.com"
    assert inbound.text == "How long does the refund take once you receive the parcel?"
    assert inbound.message_id == "<8D2C4F1E-6B7A-4C3D-9E0F-1A2B3C4D5E6F@icloud.com>"
    assert inbound.reply_context["references"] == "<171740100000.1001.998877@shop.example>"
    assert inbound.reply_context["subject"] == "Re: Your return request"


@pytest.mark.asyncio
async def test_sendgrid_html_only_outlook_reply(sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    h = harness("sendgrid", public_key_b64(sendgrid_key))
    assert (await signed_post(h, sendgrid_key, "html_only.multipart"))[0] == 200
    [inbound] = h.inbox.accepted
    assert inbound.text == "Has order #1004 been paid? I was charged twice."


@pytest.mark.asyncio
async def test_sendgrid_three_questions_in_latin1(
        sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    h = harness("sendgrid", public_key_b64(sendgrid_key))
    assert (await signed_post(h, sendgrid_key, "three_questions.multipart"))[0] == 200
    [inbound] = h.inbox.accepted
    assert inbound.reply_context["subject"] == "Questions à propos de ma commande"
    assert inbound.turns() == (
        "Where is order #1005? It was refunded, I think.",
        "Can I still return the café mugs? They arrived broken.",
        "Do you ship to Québec?",
    )


@pytest.mark.asyncio
async def test_sendgrid_attachment_only_binary_body(
        sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    h = harness("sendgrid", public_key_b64(sendgrid_key))
    assert await signed_post(h, sendgrid_key, "attachment_only.multipart") == (
        200, {"status": "ok"})
    [inbound] = h.inbox.accepted
    assert inbound.text == ""
    assert inbound.media == (Media("attachment:IMG_0412.jpeg", "image/jpeg"),)


@pytest.mark.asyncio
async def test_sendgrid_redelivery_is_acknowledged_and_dropped_by_the_inbox(
        sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    h = harness("sendgrid", public_key_b64(sendgrid_key))
    first = await signed_post(h, sendgrid_key, "three_questions.multipart")
    again = await signed_post(h, sendgrid_key, "three_questions.multipart")
    assert first == again == (200, {"status": "ok"})
    assert len(offered(h)) == 2 and len(h.inbox.accepted) == 1


@pytest.mark.parametrize("case", ["missing", "no-timestamp", "garbage", "other-key", "tampered"])
@pytest.mark.asyncio
async def test_sendgrid_bad_signature_is_403(sendgrid_key: ec.EllipticCurvePrivateKey,
                                             case: str) -> None:
    h = harness("sendgrid", public_key_b64(sendgrid_key))
    body = sendgrid_body(h, "three_questions.multipart")
    ts = str(int(time.time()))
    good = sign(sendgrid_key, body, ts)
    signature, timestamp, sent = {
        "missing": (None, ts, body),
        "no-timestamp": (good, None, body),
        "garbage": ("not base64 at all!", ts, body),
        "other-key": (sign(ec.generate_private_key(ec.SECP256R1()), body, ts), ts, body),
        "tampered": (good, ts, body.replace(b"Do you ship", b"Send me free")),
    }[case]
    status, body_json = await post_sendgrid(h, sent, signature, timestamp)
    assert status == 403 and body_json["detail"]
    assert offered(h) == []


@pytest.mark.asyncio
async def test_sendgrid_shop_without_public_key_is_not_set_up(
        sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    # Was 403 before the registry; an incomplete channel is 404 on every channel now.
    h = harness("sendgrid", "")
    status, body = await signed_post(h, sendgrid_key, "three_questions.multipart")
    assert status == 404 and "not set up" in body["detail"]
    assert offered(h) == []


@pytest.mark.asyncio
async def test_sendgrid_mail_for_another_address_is_403(
        sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    h = harness("sendgrid", public_key_b64(sendgrid_key))
    body = sendgrid_body(h, "three_questions.multipart").replace(
        b'{"to": ["support@shop.example"]', b'{"to": ["sales@shop.example"]').replace(
        b"\r\n\r\nsupport@shop.example\r\n", b"\r\n\r\nsales@shop.example\r\n")
    ts = str(int(time.time()))
    assert (await post_sendgrid(h, body, sign(sendgrid_key, body, ts), ts))[0] == 403
    assert offered(h) == []


@pytest.mark.asyncio
async def test_sendgrid_signed_but_not_multipart_is_400(
        sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    h = harness("sendgrid", public_key_b64(sendgrid_key))
    body, ts = b'{"text": "hi"}', str(int(time.time()))
    status, body_json = await post_sendgrid(h, body, sign(sendgrid_key, body, ts), ts,
                                            content_type="application/json")
    assert status == 400 and "multipart" in body_json["detail"]
    assert offered(h) == []


def with_field(body: bytes, name: str, value: str) -> bytes:
    """`body` (a captured SendGrid post) with the field `name` holding `value` instead."""
    head = f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
    start = body.index(head) + len(head)
    end = body.index(b"\r\n--xYzZY", start)
    return body[:start] + value.encode() + body[end:]


@pytest.mark.asyncio
@pytest.mark.parametrize("field", ["charsets", "envelope"])
async def test_sendgrid_json_field_nested_too_deep_is_read_as_absent(
        sendgrid_key: ec.EllipticCurvePrivateKey, field: str) -> None:
    h = harness("sendgrid", public_key_b64(sendgrid_key))
    body = with_field(sendgrid_body(h, "reply_with_history.multipart"), field, TOO_DEEP)
    ts = str(int(time.time()))
    assert await post_sendgrid(h, body, sign(sendgrid_key, body, ts), ts) == (
        200, {"status": "ok"})
    [inbound] = h.inbox.accepted  # charsets default to UTF-8, recipients come from "to"
    assert inbound.user_key == "sam.lee@icloud.com"
    assert inbound.text == "How long does the refund take once you receive the parcel?"


@pytest.mark.asyncio
async def test_sendgrid_endpoint_refused_for_a_mailgun_shop(
        sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    h = harness("mailgun", public_key_b64(sendgrid_key))
    status, body = await signed_post(h, sendgrid_key, "three_questions.multipart")
    assert status == 404 and "sendgrid" in body["detail"]
    assert offered(h) == []
