"""Meta's WhatsApp Cloud API webhook through the channel's real routes: the verification
handshake, signatures, the shop's phone number id, hand-off to the inbox, statuses.

The shared harness mounts the routes with the gateway's real error answers; webhooks are the
captured fixtures in tests/fixtures/meta/, signed with Meta's algorithm (harness.py). How each
message type is translated is tested on its own in test_payloads.py.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest

from connectors.messages import Media, StatusUpdate
from tests.connectors.channels.harness import shop
from tests.connectors.channels.meta.harness import (
    APP_SECRET,
    CREDENTIALS,
    GRAPH_BASE,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    MetaHarness,
)
from tests.fakes.graph_server import sign, signed, status_webhook

NOT_SET_UP = "The WhatsApp Cloud API channel is not set up for this shop."
TEXT_WAMID = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
OK = {"status": "ok"}


@pytest.fixture
def h() -> MetaHarness:
    return MetaHarness()


def message_of(payload: dict[str, Any], entry: int = 0) -> dict[str, Any]:
    message: dict[str, Any] = payload["entry"][entry]["changes"][0]["value"]["messages"][0]
    return message


# -- verification handshake ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_handshake_answers_the_challenge_as_plain_text(h: MetaHarness) -> None:
    response = await h.handshake(mode="subscribe", verify_token=VERIFY_TOKEN,
                                 challenge="1158201444")
    assert response.status == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.asyncio
async def test_handshake_with_the_wrong_token_is_refused(h: MetaHarness) -> None:
    response = await h.handshake(mode="subscribe", verify_token="guess", challenge="1158201444")
    assert response.status == 403
    assert "1158201444" not in response.text


@pytest.mark.asyncio
@pytest.mark.parametrize("params", [
    {},
    {"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"},
    {"hub.mode": "subscribe", "hub.challenge": "42"},
    {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
    {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"},
])
async def test_handshake_with_missing_or_wrong_params_is_refused(
    h: MetaHarness, params: dict[str, str]
) -> None:
    response = await h.get(h.webhook, **params)
    assert response.status == 403


@pytest.mark.asyncio
@pytest.mark.parametrize("token", ["", VERIFY_TOKEN])
async def test_handshake_is_404_when_the_shop_has_no_verify_token(token: str) -> None:
    # Incomplete credentials are "not set up", like on every channel: never an empty-token pass.
    h = MetaHarness({**CREDENTIALS, "verify_token": ""})
    response = await h.handshake(mode="subscribe", verify_token=token, challenge="42")
    assert response.status == 404
    assert response.json["detail"] == NOT_SET_UP
    assert "42" not in response.text


@pytest.mark.asyncio
async def test_shop_without_whatsapp_is_404_and_unknown_shop_is_404() -> None:
    h = MetaHarness(None)
    response = await h.handshake(mode="subscribe", verify_token=VERIFY_TOKEN, challenge="42")
    assert (response.status, response.json["detail"]) == (404, NOT_SET_UP)
    response = await MetaHarness().handshake(slug="nope", mode="subscribe")
    assert response.status == 404
    assert "nope" in response.json["detail"]


# -- signatures -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_signed_text_message_becomes_one_inbound_message(h: MetaHarness) -> None:
    response = await h.post_signed(h.fixture_json("text_message.json"))
    assert (response.status, response.json) == (200, OK)
    [inbound] = h.inbox.accepted
    assert inbound.tenant == h.tenant
    assert inbound.channel == "whatsapp"
    assert inbound.provider == "meta"
    assert inbound.user_key == "+16505551234"
    assert inbound.text == "Where is my order #1042?"
    assert inbound.message_id == TEXT_WAMID
    assert dict(inbound.reply_context) == {"phone_number_id": PHONE_NUMBER_ID,
                                           "wa_id": "16505551234"}
    assert inbound.client_metadata["profile_name"] == "Sheena Nelson"
    assert inbound.client_metadata["timestamp"] == "1749416383"
    assert inbound.media == ()
    assert inbound.recipient().provider == "meta"  # the reply goes back through Meta


@pytest.mark.asyncio
async def test_the_same_wamid_twice_is_acknowledged_twice_and_accepted_once(
    h: MetaHarness,
) -> None:
    fixture = h.fixture_json("text_message.json")
    assert (await h.post_signed(fixture)).status == 200
    assert (await h.post_signed(fixture)).status == 200
    assert len(h.inbox.accepted) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("headers", [
    {"Content-Type": "application/json"},
    {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256="},
    {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64},
    {"Content-Type": "application/json", "X-Hub-Signature-256": "deadbeef"},
])
async def test_missing_or_bad_signature_is_403_and_nothing_is_accepted(
    h: MetaHarness, headers: dict[str, str]
) -> None:
    body, _ = signed(APP_SECRET, h.fixture_json("text_message.json"))
    response = await h.post(h.webhook, body, headers)
    assert response.status == 403 and "X-Hub-Signature-256" in response.json["detail"]
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_signature_over_another_body_or_with_another_secret_is_403(h: MetaHarness) -> None:
    original = h.fixture_json("text_message.json")
    body, headers = signed(APP_SECRET, original)
    tampered = copy.deepcopy(original)
    message_of(tampered)["text"]["body"] = "refund me"
    tampered_body = json.dumps(tampered, separators=(",", ":")).encode()
    assert (await h.post(h.webhook, tampered_body, headers)).status == 403
    # the same JSON re-serialised differently is a different body: Meta signs the raw bytes
    assert (await h.post(h.webhook, json.dumps(original, indent=1).encode(), headers)).status \
        == 403
    other = {"X-Hub-Signature-256": sign("other-app-secret", body)}
    assert (await h.post(h.webhook, body, other)).status == 403
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_the_signature_check_accepts_uppercase_hex(h: MetaHarness) -> None:
    body, headers = signed(APP_SECRET, h.fixture_json("text_message.json"))
    prefix, digest = headers["X-Hub-Signature-256"].split("=", 1)
    response = await h.post(h.webhook, body, {"X-Hub-Signature-256": f"{prefix}={digest.upper()}"})
    assert response.status == 200
    assert len(h.inbox.accepted) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("missing", ["app_secret", "verify_token", "access_token",
                                     "phone_number_id"])
async def test_shop_with_incomplete_credentials_is_404_and_accepts_nothing(missing: str) -> None:
    # Was 403 for a missing app secret; now the same "not set up" answer as every channel.
    h = MetaHarness({**CREDENTIALS, missing: ""})
    for secret in ("", APP_SECRET):
        response = await h.post_signed(h.fixture_json("text_message.json"), app_secret=secret)
        assert (response.status, response.json["detail"]) == (404, NOT_SET_UP)
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_another_shop_without_whatsapp_is_404_even_with_a_valid_signature() -> None:
    h = MetaHarness(others=[shop("other-shop")])
    body, headers = signed(APP_SECRET, h.fixture_json("text_message.json"))
    response = await h.post(h.url("webhook", slug="other-shop"), body, headers)
    assert (response.status, response.json["detail"]) == (404, NOT_SET_UP)
    assert h.inbox.accepted == []


# -- the shop's phone number ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_notification_for_another_phone_number_is_403_and_nothing_is_accepted(
    h: MetaHarness,
) -> None:
    ours = h.fixture_json("text_message.json")
    other = copy.deepcopy(ours)
    other["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "109999999999999"
    message_of(other)["id"] = "wamid.other"
    assert (await h.post_signed(other)).status == 403
    # a batch where only the second entry is foreign is refused as a whole
    ours["entry"].append(other["entry"][0])
    assert (await h.post_signed(ours)).status == 403
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_a_phone_number_id_stored_or_sent_as_a_number_is_still_the_shops() -> None:
    h = MetaHarness({**CREDENTIALS, "phone_number_id": int(PHONE_NUMBER_ID)})
    payload = h.fixture_json("text_message.json")
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = int(
        PHONE_NUMBER_ID)
    assert (await h.post_signed(payload)).status == 200
    [inbound] = h.inbox.accepted
    assert inbound.reply_context["phone_number_id"] == PHONE_NUMBER_ID


# -- what is handed on, what is acknowledged and dropped ----------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(("body", "fragment"), [
    (b"not json", "JSON"),
    (b"[]", "JSON object"),
    (json.dumps({"object": "page", "entry": []}).encode(), "whatsapp_business_account"),
    (json.dumps({"object": "whatsapp_business_account", "entry": {}}).encode(), "entry"),
    # Past the parser's depth (a RecursionError, once a 500), and deep enough that the
    # parser takes it but turning a location's name into text would not.
    (b"[" * 100_000 + b"]" * 100_000, "nested"),
    (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested"),
    (b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",'
     b' "value": {"metadata": {"phone_number_id": "' + PHONE_NUMBER_ID.encode() + b'"},'
     b' "messages": [{"from": "16505551234", "id": "wamid.deep", "type": "location",'
     b' "location": {"latitude": 1, "longitude": 2, "name": ' + b"[" * 900 + b"]" * 900
     + b"}}]}}]}]}", "nested"),
])
async def test_malformed_signed_body_is_400(h: MetaHarness, body: bytes, fragment: str) -> None:
    response = await h.post(h.webhook, *signed(APP_SECRET, body))
    assert response.status == 400 and fragment in response.json["detail"]
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_a_malformed_message_refuses_the_whole_batch(h: MetaHarness) -> None:
    payload = h.fixture_json("text_message.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"].append({**message_of(payload), "id": "wamid.second", "from": ""})
    response = await h.post_signed(payload)
    assert response.status == 400
    assert "messages[1].from" in response.json["detail"]
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_media_only_image_reaches_the_bot_as_a_graph_media_url(h: MetaHarness) -> None:
    assert (await h.post_signed(h.fixture_json("image_message.json"))).status == 200
    [inbound] = h.inbox.accepted
    assert inbound.text == ""
    assert inbound.media == (Media(url=f"{GRAPH_BASE}/v21.0/1003383421387256",
                                   content_type="image/jpeg"),)
    assert inbound.client_metadata["media_ids"] == ["1003383421387256"]
    assert inbound.rasa_metadata()["media"][0]["url"].endswith("/1003383421387256")


@pytest.mark.asyncio
async def test_several_messages_in_one_notification_are_handed_on_in_order(
    h: MetaHarness,
) -> None:
    payload = h.fixture_json("text_message.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"].append({**message_of(payload), "id": "wamid.second",
                              "text": {"body": "And order #1043?"}})
    assert (await h.post_signed(payload)).status == 200
    assert [(m.message_id, m.text) for m in h.inbox.accepted] == [
        (TEXT_WAMID, "Where is my order #1042?"), ("wamid.second", "And order #1043?")]


@pytest.mark.asyncio
@pytest.mark.parametrize("fixture", ["reaction_message.json", "unsupported_message.json"])
async def test_reactions_and_unsupported_messages_are_acknowledged_and_ignored(
    h: MetaHarness, fixture: str
) -> None:
    response = await h.post_signed(h.fixture_json(fixture))
    assert (response.status, response.json) == (200, OK)
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_a_type_meta_adds_tomorrow_does_not_crash(h: MetaHarness) -> None:
    payload = h.fixture_json("text_message.json")
    message = message_of(payload)
    message["type"] = "hologram"
    message["hologram"] = {"id": "123", "frames": 12}
    del message["text"]
    response = await h.post_signed(payload)
    assert (response.status, response.json) == (200, OK)
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_non_message_fields_are_acknowledged(h: MetaHarness) -> None:
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
               "changes": [{"field": "message_template_status_update", "value": {
                   "event": "APPROVED", "message_template_id": 1689556908129832,
                   "message_template_name": "order_update", "message_template_language": "en",
                   "reason": "NONE"}}]}]}
    response = await h.post_signed(payload)
    assert (response.status, response.json) == (200, OK)
    assert h.inbox.accepted == [] and h.inbox.statuses == []


@pytest.mark.asyncio
async def test_nothing_secret_or_personal_reaches_the_logs(
    h: MetaHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert (await h.post_signed(h.fixture_json("text_message.json"))).status == 200
    assert (await h.post_signed(h.fixture_json("text_message.json"), "forged")).status == 403
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "whatsapp message accepted" in logged and "whatsapp signature refused" in logged
    for secret in (APP_SECRET, "Where is my order", "16505551234", "Sheena Nelson"):
        assert secret not in logged, secret


# -- statuses --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_delivered_status_is_recorded(h: MetaHarness) -> None:
    assert (await h.post_signed(h.fixture_json("status_delivered.json"))).status == 200
    [(tenant, provider, channel, update)] = h.inbox.statuses
    assert (tenant, provider, channel) == (h.tenant, "meta", "whatsapp")
    assert update == StatusUpdate(
        provider_message_id="wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI2RjM4QzJDNzQ4QjY5RjA2QTMA",
        status="delivered")
    assert h.inbox.accepted == []


@pytest.mark.asyncio
async def test_failed_status_is_recorded_with_metas_error_code(h: MetaHarness) -> None:
    assert (await h.post_signed(h.fixture_json("status_failed.json"))).status == 200
    [(_, _, _, update)] = h.inbox.statuses
    assert update.status == "failed"
    assert update.error_code == "131047"
    assert update.error_detail == "Re-engagement message"


@pytest.mark.asyncio
async def test_status_webhook_helper_is_accepted_like_metas_own(h: MetaHarness) -> None:
    body, headers = status_webhook(APP_SECRET, PHONE_NUMBER_ID, "wamid.ABC", "failed",
                                   error_code=131026)
    assert (await h.post(h.webhook, body, headers)).status == 200
    body, headers = status_webhook(APP_SECRET, PHONE_NUMBER_ID, "wamid.ABC", "read")
    assert (await h.post(h.webhook, body, headers)).status == 200
    updates = [u for _, _, _, u in h.inbox.statuses]
    assert [(u.status, u.error_code) for u in updates] == [("failed", "131026"), ("read", None)]
    assert updates[0].error_detail == "Message undeliverable"


@pytest.mark.asyncio
@pytest.mark.parametrize("status", ["deleted", "warning", "teleported"])
async def test_statuses_we_do_not_track_are_acknowledged_and_skipped(
    h: MetaHarness, status: str
) -> None:
    body, headers = status_webhook(APP_SECRET, PHONE_NUMBER_ID, "wamid.ABC", status)
    response = await h.post(h.webhook, body, headers)
    assert (response.status, response.json) == (200, OK)
    assert h.inbox.statuses == []


@pytest.mark.asyncio
async def test_status_for_another_phone_number_is_refused(h: MetaHarness) -> None:
    body, headers = status_webhook(APP_SECRET, "109999999999999", "wamid.ABC", "delivered")
    assert (await h.post(h.webhook, body, headers)).status == 403
    assert h.inbox.statuses == []
