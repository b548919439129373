"""Meta WhatsApp Cloud API webhook: handshake, signatures, payload translation, statuses.

A tiny Sanic app mounts the real blueprint with in-memory stand-ins for the gateway's app.ctx
(tenant resolver, credentials, inbox, deliveries); webhooks are captured-format fixtures signed
with Meta's algorithm (HMAC-SHA256 of the raw body, app secret).
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from sanic import Request, Sanic
from sanic.response import HTTPResponse, json as json_response

from connectors import meta_whatsapp
from connectors.errors import ChannelNotConfigured, GatewayError, TenantNotFound
from connectors.messages import InboundMessage, Media, StatusUpdate
from tenants import Tenant
from tests.fakes import load_fixture
from tests.fakes.graph_server import sign, signed, status_webhook

APP_SECRET = "3f1c0e8a9b7d4e2f8a6c5b4d3e2f1a0b"
VERIFY_TOKEN = "switchboard-verify-7d1e"
PHONE_NUMBER_ID = "106540352242922"
GRAPH_BASE = "http://graph.test"
PATH = "/channels/shop/whatsapp/webhook"
TENANT = Tenant(id="t-shop", slug="shop", name="Shop", greeting=None, return_window_days=30,
                order_backend="demo", credentials_encrypted=None)
CREDENTIALS = {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN,
               "access_token": "EAAG-test", "phone_number_id": PHONE_NUMBER_ID}

_names = itertools.count()


class Inbox:
    def __init__(self) -> None:
        self.accepted: list[InboundMessage] = []
        self.seen: set[str | None] = set()

    async def accept(self, inbound: InboundMessage) -> bool:
        new = inbound.message_id not in self.seen
        self.seen.add(inbound.message_id)
        if new:
            self.accepted.append(inbound)
        return new


class Deliveries:
    def __init__(self) -> None:
        self.recorded: list[tuple[Tenant, str, StatusUpdate]] = []

    async def record_status(self, tenant: Tenant, channel: str, update: StatusUpdate) -> None:
        self.recorded.append((tenant, channel, update))


def make_app(credentials: dict[str, Any] | None = CREDENTIALS) -> Sanic:
    app = Sanic(f"meta_wa_test_{next(_names)}")
    app.blueprint(meta_whatsapp.bp)

    async def resolve_tenant(slug: str) -> Tenant:
        if slug != TENANT.slug:
            raise TenantNotFound(f"No shop named {slug!r}.")
        return TENANT

    async def channel_credentials(tenant: Tenant, section: str) -> dict[str, Any]:
        if section != "meta_whatsapp" or credentials is None:
            raise ChannelNotConfigured("WhatsApp is not set up for this shop.")
        return dict(credentials)

    app.ctx.resolve_tenant = resolve_tenant
    app.ctx.channel_credentials = channel_credentials
    app.ctx.inbox = Inbox()
    app.ctx.deliveries = Deliveries()
    app.ctx.graph_api_base = GRAPH_BASE

    @app.exception(GatewayError)  # as connectors/app.py maps them
    async def gateway_error(request: Request, exc: GatewayError) -> HTTPResponse:
        return json_response({"detail": exc.detail}, status=exc.status)

    return app


def post(app: Sanic, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    _, response = app.test_client.post(PATH, content=body, headers=headers)
    return response.status, response.json


def post_signed(app: Sanic, payload: Any) -> tuple[int, Any]:
    return post(app, *signed(APP_SECRET, payload))


def accepted(app: Sanic) -> list[InboundMessage]:
    return app.ctx.inbox.accepted


# -- verification handshake ---------------------------------------------------------------------


def test_handshake_answers_the_challenge_as_plain_text() -> None:
    app = make_app()
    _, response = app.test_client.get(PATH, params={
        "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"})
    assert response.status == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


def test_handshake_with_the_wrong_token_is_refused() -> None:
    app = make_app()
    _, response = app.test_client.get(PATH, params={
        "hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"})
    assert response.status == 403
    assert "1158201444" not in response.text


@pytest.mark.parametrize("params", [
    {},
    {"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"},
    {"hub.mode": "subscribe", "hub.challenge": "42"},
    {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
    {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"},
])
def test_handshake_with_missing_or_wrong_params_is_refused(params: dict[str, str]) -> None:
    _, response = make_app().test_client.get(PATH, params=params)
    assert response.status == 403


def test_handshake_is_refused_when_the_shop_has_no_verify_token() -> None:
    app = make_app({**CREDENTIALS, "verify_token": ""})
    _, response = app.test_client.get(PATH, params={
        "hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "42"})
    assert response.status == 403


def test_shop_without_whatsapp_is_404_and_unknown_shop_is_404() -> None:
    _, response = make_app(None).test_client.get(PATH, params={"hub.mode": "subscribe"})
    assert response.status == 404
    _, response = make_app().test_client.get("/channels/nope/whatsapp/webhook")
    assert response.status == 404


# -- signatures -----------------------------------------------------------------------------------


def test_signed_text_message_becomes_one_inbound_message() -> None:
    app = make_app()
    status, payload = post_signed(app, load_fixture("meta", "text_message.json"))
    assert (status, payload) == (200, {"status": "ok"})
    [inbound] = accepted(app)
    assert inbound.tenant == TENANT
    assert inbound.channel == "whatsapp"
    assert inbound.provider == "meta"
    assert inbound.user_key == "+16505551234"
    assert inbound.text == "Where is my order #1042?"
    assert inbound.message_id == "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert dict(inbound.reply_context) == {"phone_number_id": PHONE_NUMBER_ID,
                                           "wa_id": "16505551234"}
    assert inbound.client_metadata["profile_name"] == "Sheena Nelson"
    assert inbound.client_metadata["timestamp"] == "1749416383"
    assert inbound.media == ()


def test_the_same_wamid_twice_is_acknowledged_twice_and_accepted_once() -> None:
    app = make_app()
    fixture = load_fixture("meta", "text_message.json")
    assert post_signed(app, fixture)[0] == 200
    assert post_signed(app, fixture)[0] == 200
    assert len(accepted(app)) == 1


@pytest.mark.parametrize("headers", [
    {"Content-Type": "application/json"},
    {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256="},
    {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64},
    {"Content-Type": "application/json", "X-Hub-Signature-256": "deadbeef"},
])
def test_missing_or_bad_signature_is_403_and_nothing_is_accepted(headers: dict[str, str]) -> None:
    app = make_app()
    body, _ = signed(APP_SECRET, load_fixture("meta", "text_message.json"))
    status, payload = post(app, body, headers)
    assert status == 403 and "X-Hub-Signature-256" in payload["detail"]
    assert accepted(app) == []


def test_signature_over_another_body_or_with_another_secret_is_403() -> None:
    app = make_app()
    original = load_fixture("meta", "text_message.json")
    body, headers = signed(APP_SECRET, original)
    tampered = copy.deepcopy(original)
    tampered["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "refund me"
    tampered_body = json.dumps(tampered, separators=(",", ":")).encode()
    assert post(app, tampered_body, headers)[0] == 403
    # the same JSON re-serialised differently is a different body: Meta signs the raw bytes
    assert post(app, json.dumps(original, indent=1).encode(), headers)[0] == 403
    assert post(app, body, {"X-Hub-Signature-256": sign("other-app-secret", body)})[0] == 403
    assert accepted(app) == []


def test_shop_without_an_app_secret_accepts_nothing() -> None:
    app = make_app({**CREDENTIALS, "app_secret": ""})
    body, headers = signed("", load_fixture("meta", "text_message.json"))
    assert post(app, body, headers)[0] == 403
    assert accepted(app) == []


def test_notification_for_another_phone_number_is_403_and_nothing_is_accepted() -> None:
    app = make_app()
    ours = load_fixture("meta", "text_message.json")
    other = copy.deepcopy(ours)
    other["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "109999999999999"
    other["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.other"
    assert post_signed(app, other)[0] == 403
    # a batch where only the second entry is foreign is refused as a whole
    ours["entry"].append(other["entry"][0])
    assert post_signed(app, ours)[0] == 403
    assert accepted(app) == []


@pytest.mark.parametrize(("body", "fragment"), [
    (b"not json", "JSON"),
    (b"[]", "JSON object"),
    (json.dumps({"object": "page", "entry": []}).encode(), "whatsapp_business_account"),
    (json.dumps({"object": "whatsapp_business_account", "entry": {}}).encode(), "entry"),
])
def test_malformed_signed_body_is_400(body: bytes, fragment: str) -> None:
    app = make_app()
    status, payload = post(app, *signed(APP_SECRET, body))
    assert status == 400 and fragment in payload["detail"]


# -- message types ---------------------------------------------------------------------------------


def test_media_only_image_reaches_the_bot_as_a_graph_media_url() -> None:
    app = make_app()
    assert post_signed(app, load_fixture("meta", "image_message.json"))[0] == 200
    [inbound] = accepted(app)
    assert inbound.text == ""
    assert inbound.media == (Media(url=f"{GRAPH_BASE}/v21.0/1003383421387256",
                                   content_type="image/jpeg"),)
    assert inbound.client_metadata["media_ids"] == ["1003383421387256"]
    assert inbound.rasa_metadata()["media"][0]["url"].endswith("/1003383421387256")


def test_caption_of_a_document_is_its_text() -> None:
    app = make_app()
    payload = load_fixture("meta", "image_message.json")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["type"] = "document"
    message["document"] = {**message.pop("image"), "mime_type": "application/pdf",
                           "filename": "invoice-1042.pdf", "caption": "Wrong invoice?"}
    assert post_signed(app, payload)[0] == 200
    [inbound] = accepted(app)
    assert inbound.text == "Wrong invoice?"
    assert inbound.media[0].content_type == "application/pdf"
    assert inbound.client_metadata["filename"] == "invoice-1042.pdf"


def test_interactive_button_reply_is_the_tapped_title_and_keeps_the_reply_id() -> None:
    app = make_app()
    assert post_signed(app, load_fixture("meta", "interactive_button_reply.json"))[0] == 200
    [inbound] = accepted(app)
    assert inbound.text == "Track my order"
    assert inbound.client_metadata["reply_id"] == "/track_order"
    assert inbound.client_metadata["context_message_id"].startswith("wamid.")


def test_template_quick_reply_button_is_its_text() -> None:
    app = make_app()
    assert post_signed(app, load_fixture("meta", "button_message.json"))[0] == 200
    [inbound] = accepted(app)
    assert inbound.text == "Talk to a person"
    assert inbound.client_metadata["button_payload"] == "TALK_TO_AGENT"


def test_location_becomes_a_readable_text() -> None:
    app = make_app()
    assert post_signed(app, load_fixture("meta", "location_message.json"))[0] == 200
    [inbound] = accepted(app)
    assert inbound.text == "[location] 37.4843,-122.1482 Meta Headquarters"


@pytest.mark.parametrize("fixture", ["reaction_message.json", "unsupported_message.json"])
def test_reactions_and_unsupported_messages_are_acknowledged_and_ignored(fixture: str) -> None:
    app = make_app()
    assert post_signed(app, load_fixture("meta", fixture)) == (200, {"status": "ok"})
    assert accepted(app) == []


def test_a_type_meta_adds_tomorrow_does_not_crash() -> None:
    app = make_app()
    payload = load_fixture("meta", "text_message.json")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["type"] = "hologram"
    message["hologram"] = {"id": "123", "frames": 12}
    del message["text"]
    assert post_signed(app, payload) == (200, {"status": "ok"})
    assert accepted(app) == []


def test_non_message_fields_are_acknowledged() -> None:
    app = make_app()
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
               "changes": [{"field": "message_template_status_update", "value": {
                   "event": "APPROVED", "message_template_id": 1689556908129832,
                   "message_template_name": "order_update", "message_template_language": "en",
                   "reason": "NONE"}}]}]}
    assert post_signed(app, payload) == (200, {"status": "ok"})


# -- statuses --------------------------------------------------------------------------------------


def test_delivered_status_is_recorded() -> None:
    app = make_app()
    assert post_signed(app, load_fixture("meta", "status_delivered.json"))[0] == 200
    [(tenant, channel, update)] = app.ctx.deliveries.recorded
    assert (tenant, channel) == (TENANT, "whatsapp")
    assert update == StatusUpdate(
        provider_message_id="wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI2RjM4QzJDNzQ4QjY5RjA2QTMA",
        status="delivered")
    assert accepted(app) == []


def test_failed_status_is_recorded_with_metas_error_code() -> None:
    app = make_app()
    assert post_signed(app, load_fixture("meta", "status_failed.json"))[0] == 200
    [(_, _, update)] = app.ctx.deliveries.recorded
    assert update.status == "failed"
    assert update.error_code == "131047"
    assert update.error_detail == "Re-engagement message"


def test_status_webhook_helper_is_accepted_like_metas_own() -> None:
    app = make_app()
    body, headers = status_webhook(APP_SECRET, PHONE_NUMBER_ID, "wamid.ABC", "failed",
                                   error_code=131026)
    assert post(app, body, headers)[0] == 200
    body, headers = status_webhook(APP_SECRET, PHONE_NUMBER_ID, "wamid.ABC", "read")
    assert post(app, body, headers)[0] == 200
    updates = [u for _, _, u in app.ctx.deliveries.recorded]
    assert [(u.status, u.error_code) for u in updates] == [("failed", "131026"), ("read", None)]
    assert updates[0].error_detail == "Message undeliverable"


def test_status_for_another_phone_number_is_refused() -> None:
    app = make_app()
    body, headers = status_webhook(APP_SECRET, "109999999999999", "wamid.ABC", "delivered")
    assert post(app, body, headers)[0] == 403
    assert app.ctx.deliveries.recorded == []
