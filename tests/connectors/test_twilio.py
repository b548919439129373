"""Twilio inbound webhook and status callbacks, through a real Sanic app with the channel's bp.

Payloads are the captured-format fixtures in tests/fixtures/twilio/, with the shop's number
and account substituted where needed, signed with Twilio's real algorithm (twilio's
RequestValidator.compute_signature) over the public URL the gateway is reached at.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from sanic import Request, Sanic
from sanic.response import HTTPResponse, json as json_response
from twilio.request_validator import RequestValidator

from connectors import twilio
from connectors.errors import ChannelNotConfigured, GatewayError
from connectors.messages import InboundMessage, Media, StatusUpdate
from tenants import Tenant

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "twilio"
PUBLIC = "https://bot.shop-support.example"
SLUG = "corner-shop"
MESSAGES = f"/channels/{SLUG}/twilio/messages"
STATUS = f"/channels/{SLUG}/twilio/status"
ACCOUNT = "AC4f1d2e8b9c0a7f6e5d4c3b2a1908f7e6"
TOKEN = "0f9e8d7c6b5a49382716a5b4c3d2e1f0"
CREDENTIALS: dict[str, Any] = {
    "account_sid": ACCOUNT,
    "auth_token": TOKEN,
    "sms_numbers": ["+15550001111"],
    "whatsapp_numbers": ["+15550002222"],
}
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def tenant(slug: str = SLUG) -> Tenant:
    return Tenant(id=str(uuid.uuid4()), slug=slug, name="Corner Shop", greeting=None,
                  return_window_days=30, order_backend="demo", credentials_encrypted=None)


class Inbox:
    def __init__(self, new: bool = True) -> None:
        self.new = new
        self.accepted: list[InboundMessage] = []

    async def accept(self, inbound: InboundMessage) -> bool:
        self.accepted.append(inbound)
        return self.new


class Deliveries:
    def __init__(self) -> None:
        self.recorded: list[tuple[Tenant, str, StatusUpdate]] = []

    async def record_status(self, tenant: Tenant, channel: str, update: StatusUpdate) -> None:
        self.recorded.append((tenant, channel, update))


def make_app(credentials: dict[str, Any] | None = CREDENTIALS, new: bool = True) -> Sanic:
    """The bp on a tiny app whose ctx stands in for the gateway's (app.py does the same)."""
    app = Sanic(f"twilio{uuid.uuid4().hex[:12]}")
    app.blueprint(twilio.bp)
    shop = tenant()
    app.ctx.tenant = shop
    app.ctx.public_base_url = PUBLIC  # as behind a proxy: Twilio signed the public URL
    app.ctx.inbox = Inbox(new)
    app.ctx.deliveries = Deliveries()

    async def resolve_tenant(slug: str) -> Tenant:
        return shop

    async def channel_credentials(t: Tenant, section: str) -> dict[str, Any]:
        if section != "twilio" or credentials is None:
            raise ChannelNotConfigured("This shop has not set up Twilio.")
        return credentials

    app.ctx.resolve_tenant = resolve_tenant
    app.ctx.channel_credentials = channel_credentials

    @app.exception(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> HTTPResponse:
        return json_response({"detail": exc.detail}, status=exc.status)

    return app


def fixture_form(name: str, **replace: str) -> list[tuple[str, str]]:
    """A captured payload's fields in Twilio's order, with some values replaced."""
    pairs = parse_qsl((FIXTURES / name).read_text(encoding="utf-8"), keep_blank_values=True)
    return [(key, replace.get(key, value)) for key, value in pairs]


def signed(path: str, form: list[tuple[str, str]], token: str = TOKEN,
           url: str | None = None) -> tuple[bytes, dict[str, str]]:
    signature = RequestValidator(token).compute_signature(url or f"{PUBLIC}{path}", dict(form))
    return urlencode(form).encode(), {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }


async def post(app: Sanic, path: str, body: bytes, headers: dict[str, str]) -> Any:
    _, response = await app.asgi_client.post(path, content=body, headers=headers)
    return response


# -- inbound messages --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_signed_sms_is_acknowledged_with_empty_twiml_and_handed_on() -> None:
    app = make_app()
    response = await post(app, MESSAGES, *signed(MESSAGES, fixture_form("sms_inbound.txt")))

    assert response.status == 200
    assert response.text == TWIML
    assert response.headers["content-type"].startswith("text/xml")
    [inbound] = app.ctx.inbox.accepted
    assert inbound.tenant is app.ctx.tenant
    assert inbound.channel == "sms"
    assert inbound.user_key == "+14155550123"
    assert inbound.text == "Where is my order 1001?"
    assert inbound.message_id == "SM7c2b9e41d0a3f5e68b1c4d7a2e9f0b36"
    assert inbound.media == ()
    assert dict(inbound.reply_context) == {"to": "+15550001111", "from": "+14155550123"}
    assert inbound.provider == "twilio"
    assert inbound.sender_id == f"{app.ctx.tenant.id}:sms:+14155550123"


@pytest.mark.asyncio
async def test_whatsapp_message_keeps_the_prefixed_address_for_the_reply() -> None:
    app = make_app()
    response = await post(app, MESSAGES, *signed(MESSAGES, fixture_form("whatsapp_inbound.txt")))

    assert response.status == 200 and response.text == TWIML
    [inbound] = app.ctx.inbox.accepted
    assert inbound.channel == "whatsapp"
    assert inbound.user_key == "+4915112345678"
    assert inbound.text == "Hi! I'd like to return my shoes, they don't fit 👟"
    assert dict(inbound.reply_context) == {
        "to": "whatsapp:+15550002222", "from": "whatsapp:+4915112345678",
    }
    assert inbound.client_metadata == {"profile_name": "Jana Novak"}


@pytest.mark.asyncio
async def test_media_only_whatsapp_message_carries_the_media_urls() -> None:
    app = make_app()
    response = await post(app, MESSAGES, *signed(MESSAGES, fixture_form("whatsapp_media_only.txt")))

    assert response.status == 200
    [inbound] = app.ctx.inbox.accepted
    assert inbound.text == ""
    assert inbound.media == (Media(
        url="https://api.twilio.com/2010-04-01/Accounts/AC4f1d2e8b9c0a7f6e5d4c3b2a1908f7e6"
            "/Messages/MM3f8e2d1c0b9a8f7e6d5c4b3a2f1e0d9c/Media/ME6b5a4c3d2e1f0a9b8c7d6e5f4a3b2c1d",
        content_type="image/jpeg",
    ),)
    assert inbound.rasa_metadata()["media"][0]["content_type"] == "image/jpeg"


@pytest.mark.asyncio
async def test_several_attachments_arrive_in_order() -> None:
    form = fixture_form("whatsapp_media_only.txt", NumMedia="2")
    form += [("MediaContentType1", "application/pdf"),
             ("MediaUrl1", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2")]
    app = make_app()
    assert (await post(app, MESSAGES, *signed(MESSAGES, form))).status == 200
    [inbound] = app.ctx.inbox.accepted
    assert [m.content_type for m in inbound.media] == ["image/jpeg", "application/pdf"]


@pytest.mark.asyncio
async def test_duplicate_delivery_gets_the_same_acknowledgement() -> None:
    app = make_app(new=False)  # the inbox already has this MessageSid
    response = await post(app, MESSAGES, *signed(MESSAGES, fixture_form("sms_inbound.txt")))
    assert response.status == 200
    assert response.text == TWIML


@pytest.mark.asyncio
async def test_fields_twilio_adds_later_are_signed_over_and_accepted() -> None:
    form = fixture_form("sms_inbound.txt") + [("AddOns", '{"status":"successful"}')]
    app = make_app()
    assert (await post(app, MESSAGES, *signed(MESSAGES, form))).status == 200
    assert len(app.ctx.inbox.accepted) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "Missing X-Twilio-Signature"),
        ("other-token", "Invalid X-Twilio-Signature"),
        ("tampered-body", "Invalid X-Twilio-Signature"),
        ("other-url", "Invalid X-Twilio-Signature"),
        ("other-shop-url", "Invalid X-Twilio-Signature"),
    ],
)
async def test_unsigned_or_forged_messages_are_refused_and_nothing_is_accepted(
    case: str, expected: str
) -> None:
    form = fixture_form("sms_inbound.txt")
    if case == "other-token":
        body, headers = signed(MESSAGES, form, token="f" * 32)
    elif case == "other-url":
        body, headers = signed(MESSAGES, form, url=f"https://attacker.example{MESSAGES}")
    elif case == "other-shop-url":
        body, headers = signed(MESSAGES, form, url=f"{PUBLIC}/channels/other-shop/twilio/messages")
    else:
        body, headers = signed(MESSAGES, form)
    if case == "missing":
        del headers["X-Twilio-Signature"]
    if case == "tampered-body":
        body = body.replace(b"order+1001", b"order+1002")

    app = make_app()
    response = await post(app, MESSAGES, body, headers)

    assert response.status == 403
    assert expected in response.json["detail"]
    assert app.ctx.inbox.accepted == []


@pytest.mark.asyncio
async def test_message_to_a_number_the_shop_does_not_own_is_refused() -> None:
    app = make_app()
    form = fixture_form("sms_inbound.txt", To="+15559999999")
    response = await post(app, MESSAGES, *signed(MESSAGES, form))
    assert response.status == 403
    assert "not this shop's" in response.json["detail"]
    assert app.ctx.inbox.accepted == []


@pytest.mark.asyncio
async def test_whatsapp_to_the_shops_sms_only_number_is_refused() -> None:
    app = make_app()
    form = fixture_form("whatsapp_inbound.txt", To="whatsapp:+15550001111")
    response = await post(app, MESSAGES, *signed(MESSAGES, form))
    assert response.status == 403
    assert app.ctx.inbox.accepted == []


@pytest.mark.asyncio
async def test_message_of_another_twilio_account_is_refused() -> None:
    app = make_app()
    form = fixture_form("sms_inbound.txt", AccountSid="AC" + "0" * 32)
    response = await post(app, MESSAGES, *signed(MESSAGES, form))
    assert response.status == 403
    assert app.ctx.inbox.accepted == []


@pytest.mark.asyncio
@pytest.mark.parametrize("missing", ["MessageSid", "From", "To"])
async def test_signed_but_malformed_form_is_a_bad_request(missing: str) -> None:
    app = make_app()
    form = [(k, v) for k, v in fixture_form("sms_inbound.txt") if k != missing]
    response = await post(app, MESSAGES, *signed(MESSAGES, form))
    assert response.status == 400
    assert missing in response.json["detail"]
    assert app.ctx.inbox.accepted == []


@pytest.mark.asyncio
async def test_shop_without_twilio_gets_404_not_an_unsigned_pass() -> None:
    app = make_app(credentials=None)
    response = await post(app, MESSAGES, *signed(MESSAGES, fixture_form("sms_inbound.txt")))
    assert response.status == 404
    assert app.ctx.inbox.accepted == []

    app = make_app(credentials={**CREDENTIALS, "auth_token": ""})
    response = await post(app, MESSAGES, *signed(MESSAGES, fixture_form("sms_inbound.txt"), token=""))
    assert response.status == 404
    assert app.ctx.inbox.accepted == []


# -- status callbacks --------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fixture", "channel", "expected"),
    [
        ("status_delivered.txt", "sms",
         StatusUpdate("SMa1b2c3d4e5f60718293a4b5c6d7e8f90", "delivered")),
        ("status_failed.txt", "sms",
         StatusUpdate("SM5d4c3b2a19f8e7d6c5b4a3928170f6e5", "undelivered", error_code="30003")),
        ("whatsapp_status_read.txt", "whatsapp",
         StatusUpdate("SM9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b", "read")),
    ],
)
async def test_status_callbacks_are_recorded(fixture: str, channel: str,
                                             expected: StatusUpdate) -> None:
    app = make_app()
    response = await post(app, STATUS, *signed(STATUS, fixture_form(fixture)))
    assert response.status == 200
    assert response.body == b""
    assert app.ctx.deliveries.recorded == [(app.ctx.tenant, channel, expected)]


@pytest.mark.asyncio
async def test_forged_status_callback_is_refused_and_not_recorded() -> None:
    app = make_app()
    body, headers = signed(STATUS, fixture_form("status_delivered.txt"), token="e" * 32)
    response = await post(app, STATUS, body, headers)
    assert response.status == 403
    assert app.ctx.deliveries.recorded == []


@pytest.mark.asyncio
async def test_status_callback_with_an_unknown_status_is_a_bad_request() -> None:
    app = make_app()
    form = fixture_form("status_delivered.txt", MessageStatus="teleported")
    response = await post(app, STATUS, *signed(STATUS, form))
    assert response.status == 400
    assert app.ctx.deliveries.recorded == []


def test_fixtures_are_form_bodies_as_twilio_posts_them() -> None:
    sms = dict(fixture_form("sms_inbound.txt"))
    for field in ("ToCountry", "SmsMessageSid", "NumSegments", "ApiVersion", "AccountSid"):
        assert sms[field]
    assert len(sms["MessageSid"]) == 34
    whatsapp = dict(fixture_form("whatsapp_inbound.txt"))
    assert whatsapp["WaId"] == whatsapp["From"].removeprefix("whatsapp:+")
    created = json.loads((FIXTURES / "message_created.json").read_text())
    assert created["sid"].startswith("SM") and created["status"] == "queued"
