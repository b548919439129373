"""Twilio's inbound webhook and status callbacks, through the channel's real routes.

The shared harness mounts them with the gateway's real error answers; payloads are the captured
fixtures in tests/fixtures/twilio/, signed like Twilio signs them (harness.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from connectors.messages import Media, StatusUpdate
from tests.connectors.channels.harness import shop
from tests.connectors.channels.twilio.harness import (
    ACCOUNT,
    CREDENTIALS,
    PUBLIC,
    TOKEN,
    TWIML,
    TwilioHarness,
)

NOT_SET_UP = "The Twilio channel is not set up for this shop."


@pytest.fixture
def h() -> TwilioHarness:
    return TwilioHarness()


# -- inbound messages --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_signed_sms_is_acknowledged_with_empty_twiml_and_handed_on(h: TwilioHarness) -> None:
    response = await h.post_signed(h.messages, h.form("sms_inbound.txt"))

    assert response.status == 200
    assert response.text == TWIML
    assert response.headers["content-type"].startswith("text/xml")
    [inbound] = h.inbox.accepted
    assert inbound.tenant is h.tenant
    assert inbound.provider == "twilio"
    assert inbound.channel == "sms"
    assert inbound.user_key == "+14155550123"
    assert inbound.text == "Where is my order 1001?"
    assert inbound.message_id == "SM7c2b9e41d0a3f5e68b1c4d7a2e9f0b36"
    assert inbound.media == ()
    assert dict(inbound.reply_context) == {"to": "+15550001111", "from": "+14155550123"}
    assert inbound.sender_id == f"{h.tenant.id}:sms:+14155550123"
    assert inbound.recipient().provider == "twilio"  # the reply goes back through Twilio


@pytest.mark.asyncio
async def test_whatsapp_message_keeps_the_prefixed_address_for_the_reply(
    h: TwilioHarness,
) -> None:
    response = await h.post_signed(h.messages, h.form("whatsapp_inbound.txt"))

    assert response.status == 200 and response.text == TWIML
    [inbound] = h.inbox.accepted
    assert inbound.provider == "twilio"
    assert inbound.channel == "whatsapp"
    assert inbound.user_key == "+4915112345678"
    assert inbound.text == "Hi! I'd like to return my shoes, they don't fit 👟"
    assert dict(inbound.reply_context) == {
        "to": "whatsapp:+15550002222", "from": "whatsapp:+4915112345678",
    }
    assert inbound.client_metadata == {"profile_name": "Jana Novak"}


@pytest.mark.asyncio
async def test_media_only_whatsapp_message_carries_the_media_urls(h: TwilioHarness) -> None:
    response = await h.post_signed(h.messages, h.form("whatsapp_media_only.txt"))

    assert response.status == 200
    [inbound] = h.inbox.accepted
    assert inbound.text == ""
    assert inbound.media == (Media(
        url="https://api.twilio.com/2010-04-01/Accounts/AC4f1d2e8b9c0a7f6e5d4c3b2a1908f7e6"
            "/Messages/MM3f8e2d1c0b9a8f7e6d5c4b3a2f1e0d9c/Media/ME6b5a4c3d2e1f0a9b8c7d6e5f4a3b2c1d",
        content_type="image/jpeg",
    ),)
    assert inbound.rasa_metadata()["media"][0]["content_type"] == "image/jpeg"


@pytest.mark.asyncio
async def test_several_attachments_arrive_in_order(h: TwilioHarness) -> None:
    form = h.form("whatsapp_media_only.txt", NumMedia="2")
    form += [("MediaContentType1", "application/pdf"),
             ("MediaUrl1", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2")]
    assert (await h.post_signed(h.messages, form)).status == 200
    [inbound] = h.inbox.accepted
    assert [m.content_type for m in inbound.media] == ["image/jpeg", "application/pdf"]


@pytest.mark.asyncio
async def test_duplicate_delivery_gets_the_same_acknowledgement_and_is_handed_on_once(
    h: TwilioHarness,
) -> None:
    form = h.form("sms_inbound.txt")
    first = await h.post_signed(h.messages, form)
    again = await h.post_signed(h.messages, form)  # Twilio retrying the same MessageSid

    assert (first.status, first.text) == (again.status, again.text) == (200, TWIML)
    assert len(h.inbox.accepted) == 1


@pytest.mark.asyncio
async def test_fields_twilio_adds_later_are_signed_over_and_accepted(h: TwilioHarness) -> None:
    form = h.form("sms_inbound.txt") + [("AddOns", '{"status":"successful"}')]
    assert (await h.post_signed(h.messages, form)).status == 200
    assert len(h.inbox.accepted) == 1


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
    h: TwilioHarness, case: str, expected: str
) -> None:
    form = h.form("sms_inbound.txt")
    url = f"{PUBLIC}{h.messages}"
    if case == "other-token":
        body, headers = h.signed(url, form, token="f" * 32)
    elif case == "other-url":
        body, headers = h.signed(f"https://attacker.example{h.messages}", form)
    elif case == "other-shop-url":
        body, headers = h.signed(f"{PUBLIC}/channels/other-shop/twilio/messages", form)
    else:
        body, headers = h.signed(url, form)
    if case == "missing":
        del headers["X-Twilio-Signature"]
    if case == "tampered-body":
        body = body.replace(b"order+1001", b"order+1002")

    response = await h.post(h.messages, body, headers)

    assert response.status == 403
    assert expected in response.json["detail"]
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_without_public_base_url_the_url_the_gateway_saw_is_the_one_signed() -> None:
    h = TwilioHarness(public_base_url=None)
    form = h.form("sms_inbound.txt")
    seen = {"Host": "gateway.internal:8000"}

    body, headers = h.signed(f"http://gateway.internal:8000{h.messages}", form)
    assert (await h.post(h.messages, body, {**headers, **seen})).status == 200
    # Twilio signed the public URL, which this gateway cannot know: refused, hence the setting
    body, headers = h.signed(f"{PUBLIC}{h.messages}", form)
    assert (await h.post(h.messages, body, {**headers, **seen})).status == 403
    assert len(h.inbox.accepted) == 1


@pytest.mark.asyncio
async def test_the_query_string_twilio_called_is_part_of_the_signed_url(h: TwilioHarness) -> None:
    path = f"{h.messages}?source=number-config"
    assert (await h.post_signed(path, h.form("sms_inbound.txt"))).status == 200
    body, headers = h.signed(f"{PUBLIC}{h.messages}", h.form("sms_inbound.txt"))
    assert (await h.post(path, body, headers)).status == 403
    assert len(h.inbox.accepted) == 1


@pytest.mark.asyncio
async def test_message_to_a_number_the_shop_does_not_own_is_refused(h: TwilioHarness) -> None:
    form = h.form("sms_inbound.txt", To="+15559999999")
    response = await h.post_signed(h.messages, form)
    assert response.status == 403
    assert "not this shop's" in response.json["detail"]
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_a_shops_number_written_another_way_is_still_its_own() -> None:
    h = TwilioHarness({**CREDENTIALS, "sms_numbers": ["+1 (555) 000-1111"]})
    assert (await h.post_signed(h.messages, h.form("sms_inbound.txt"))).status == 200
    assert len(h.inbox.accepted) == 1


@pytest.mark.asyncio
async def test_whatsapp_to_the_shops_sms_only_number_is_refused(h: TwilioHarness) -> None:
    form = h.form("whatsapp_inbound.txt", To="whatsapp:+15550001111")
    response = await h.post_signed(h.messages, form)
    assert response.status == 403
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_message_of_another_twilio_account_is_refused(h: TwilioHarness) -> None:
    form = h.form("sms_inbound.txt", AccountSid="AC" + "0" * 32)
    response = await h.post_signed(h.messages, form)
    assert response.status == 403
    assert h.inbox.accepted == []


@pytest.mark.asyncio
@pytest.mark.parametrize("missing", ["MessageSid", "From", "To"])
async def test_signed_but_malformed_form_is_a_bad_request(h: TwilioHarness, missing: str) -> None:
    form = [(k, v) for k, v in h.form("sms_inbound.txt") if k != missing]
    response = await h.post_signed(h.messages, form)
    assert response.status == 400
    assert missing in response.json["detail"]
    assert h.inbox.accepted == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("field", "value"),
    [("NumMedia", "two"), ("Body", "x" * (1600 * 4 + 1))],
)
async def test_signed_but_impossible_values_are_a_bad_request(
    h: TwilioHarness, field: str, value: str
) -> None:
    response = await h.post_signed(h.messages, h.form("sms_inbound.txt", **{field: value}))
    assert response.status == 400
    assert field in response.json["detail"]
    assert h.inbox.accepted == []


# -- which shop, set up or not -------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "credentials",
    [
        None,  # no twilio section at all
        {**CREDENTIALS, "auth_token": ""},
        {k: v for k, v in CREDENTIALS.items() if k != "auth_token"},
        {k: v for k, v in CREDENTIALS.items() if k != "account_sid"},
        {**CREDENTIALS, "sms_numbers": [], "whatsapp_numbers": []},
    ],
    ids=["no-section", "empty-auth-token", "no-auth-token", "no-account-sid", "no-numbers"],
)
@pytest.mark.parametrize("path", ["messages", "status"])
async def test_shop_without_usable_twilio_credentials_gets_404_not_an_unsigned_pass(
    credentials: dict[str, Any] | None, path: str
) -> None:
    h = TwilioHarness(credentials)
    fixture = "sms_inbound.txt" if path == "messages" else "status_delivered.txt"
    # whatever it is signed with: a shop without an auth token must not accept unsigned posts
    for token in (TOKEN, ""):
        response = await h.post_signed(h.url(path), h.form(fixture), token=token)
        assert response.status == 404
        assert response.json["detail"] == NOT_SET_UP
    assert h.inbox.accepted == [] and h.inbox.statuses == []


@pytest.mark.asyncio
async def test_unknown_shop_is_404_and_another_shop_without_twilio_is_404() -> None:
    h = TwilioHarness(others=[shop("other-shop")])
    form = h.form("sms_inbound.txt")

    unknown = await h.post_signed(h.url("messages", slug="nope"), form)
    assert unknown.status == 404
    assert "nope" in unknown.json["detail"]
    other = await h.post_signed(h.url("messages", slug="other-shop"), form)
    assert (other.status, other.json["detail"]) == (404, NOT_SET_UP)
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_nothing_secret_or_personal_reaches_the_logs(
    h: TwilioHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    form = h.form("sms_inbound.txt")
    assert (await h.post_signed(h.messages, form)).status == 200
    assert (await h.post_signed(h.messages, form, token="f" * 32)).status == 403

    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "twilio message received" in logged and "twilio request refused" in logged
    for secret in (TOKEN, "Where is my order", "+14155550123", "4155550123"):
        assert secret not in logged, secret


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
async def test_status_callbacks_are_recorded(h: TwilioHarness, fixture: str, channel: str,
                                             expected: StatusUpdate) -> None:
    response = await h.post_signed(h.status, h.form(fixture))
    assert response.status == 200
    assert response.body == b""
    assert h.inbox.statuses == [(h.tenant, "twilio", channel, expected)]
    assert h.inbox.accepted == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("twilio_status", "ours"),
    [("accepted", "queued"), ("sending", "queued"), ("sent", "sent"),
     ("partially_delivered", "delivered"), ("canceled", "failed"), ("FAILED", "failed")],
)
async def test_twilios_statuses_are_recorded_as_ours(h: TwilioHarness, twilio_status: str,
                                                     ours: str) -> None:
    form = h.form("status_delivered.txt", MessageStatus=twilio_status)
    assert (await h.post_signed(h.status, form)).status == 200
    [(_, _, _, update)] = h.inbox.statuses
    assert update.status == ours


@pytest.mark.asyncio
async def test_forged_status_callback_is_refused_and_not_recorded(h: TwilioHarness) -> None:
    response = await h.post_signed(h.status, h.form("status_delivered.txt"), token="e" * 32)
    assert response.status == 403
    assert h.inbox.statuses == []


@pytest.mark.asyncio
async def test_status_callback_of_another_twilio_account_is_refused(h: TwilioHarness) -> None:
    form = h.form("status_delivered.txt", AccountSid="AC" + "0" * 32)
    assert (await h.post_signed(h.status, form)).status == 403
    assert h.inbox.statuses == []


@pytest.mark.asyncio
async def test_status_callback_with_an_unknown_status_is_a_bad_request(h: TwilioHarness) -> None:
    form = h.form("status_delivered.txt", MessageStatus="teleported")
    response = await h.post_signed(h.status, form)
    assert response.status == 400
    assert "teleported" in response.json["detail"]
    assert h.inbox.statuses == []


def test_the_status_callback_url_the_sender_gives_twilio_is_this_route(h: TwilioHarness) -> None:
    assert h.channel.status_callback_url(PUBLIC, h.tenant.slug) == f"{PUBLIC}{h.status}"


def test_fixtures_are_form_bodies_as_twilio_posts_them(h: TwilioHarness) -> None:
    sms = dict(h.form("sms_inbound.txt"))
    for field in ("ToCountry", "SmsMessageSid", "NumSegments", "ApiVersion", "AccountSid"):
        assert sms[field]
    assert len(sms["MessageSid"]) == 34
    assert sms["AccountSid"] == ACCOUNT
    whatsapp = dict(h.form("whatsapp_inbound.txt"))
    assert whatsapp["WaId"] == whatsapp["From"].removeprefix("whatsapp:+")
    created = json.loads(h.fixture_text("message_created.json"))
    assert created["sid"].startswith("SM") and created["status"] == "queued"
