"""WhatsApp Cloud API notifications: validated at the edge (400 naming the field), then each
message type translated into text, media and metadata; statuses into our StatusUpdate.

Pure functions over the captured fixtures in tests/fixtures/meta/; the routes that call them
are tested in test_routes.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.channels.meta.payloads import (
    DEFAULT_GRAPH_BASE,
    WaChange,
    WaNotification,
    media_url,
    parse_notification,
    to_inbound,
    to_status_update,
)
from connectors.errors import BadRequest
from connectors.messages import InboundMessage, Media, StatusUpdate
from tests.connectors.channels.harness import shop
from tests.connectors.channels.meta.harness import GRAPH_BASE, PHONE_NUMBER_ID
from tests.fakes import load_fixture

TENANT = shop()


def fixture(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = load_fixture("meta", name)
    return payload


def message_of(payload: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    return message


def parsed(payload: Any) -> WaNotification:
    return parse_notification(json.dumps(payload).encode())


def translated(payload: Any) -> InboundMessage | None:
    """The one message of a one-message notification, as the inbox would get it."""
    [change] = parsed(payload).changes
    [msg] = change.messages
    return to_inbound(TENANT, "meta", change, msg, GRAPH_BASE)


def inbound_of(payload: Any) -> InboundMessage:
    inbound = translated(payload)
    assert inbound is not None
    return inbound


# -- validation at the edge ----------------------------------------------------------------------


def test_a_text_notification_is_parsed_into_frozen_dataclasses() -> None:
    [change] = parsed(fixture("text_message.json")).changes
    assert change.field == "messages"
    assert change.phone_number_id == PHONE_NUMBER_ID
    assert change.display_phone_number == "15550783881"
    assert dict(change.profile_names) == {"16505551234": "Sheena Nelson"}
    [msg] = change.messages
    assert (msg.sender, msg.type, msg.timestamp) == ("16505551234", "text", "1749416383")
    assert msg.content == {"body": "Where is my order #1042?"}
    assert change.statuses == ()
    with pytest.raises(AttributeError):
        msg.type = "image"  # type: ignore[misc]  # assigning to a frozen field is the point


@pytest.mark.parametrize(("body", "fragment"), [
    (b"", "JSON"),
    (b"not json", "JSON"),
    (b"\xff\xfe", "JSON"),
    (b"[]", "'body' must be a JSON object"),
    (json.dumps({"object": "page", "entry": []}).encode(), "whatsapp_business_account"),
    (json.dumps({"object": "whatsapp_business_account", "entry": {}}).encode(),
     "'entry' must be a JSON array"),
    (json.dumps({"object": "whatsapp_business_account", "entry": ["x"]}).encode(),
     "'entry[0]' must be a JSON object"),
])
def test_a_malformed_body_is_a_bad_request_saying_why(body: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_notification(body)
    assert refused.value.status == 400
    assert fragment in refused.value.detail


@pytest.mark.parametrize(("path", "value", "field"), [
    (("metadata", "phone_number_id"), None, "value.metadata.phone_number_id"),
    (("messages", 0, "from"), "", "value.messages[0].from"),
    (("messages", 0, "id"), None, "value.messages[0].id"),
    (("messages", 0, "type"), {"x": 1}, "value.messages[0].type"),
    (("messages",), {"id": "x"}, "value.messages"),
    (("contacts",), "Sheena", "value.contacts"),
])
def test_a_missing_or_mistyped_field_is_named(path: tuple[str | int, ...], value: Any,
                                              field: str) -> None:
    payload = fixture("text_message.json")
    target: Any = payload["entry"][0]["changes"][0]["value"]
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    with pytest.raises(BadRequest) as refused:
        parsed(payload)
    assert f"'entry[0].changes[0].{field}'" in refused.value.detail


def test_ids_and_timestamps_sent_as_numbers_are_read_as_strings() -> None:
    payload = fixture("text_message.json")
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = int(
        PHONE_NUMBER_ID)
    message_of(payload)["timestamp"] = 1749416383
    [change] = parsed(payload).changes
    assert change.phone_number_id == PHONE_NUMBER_ID
    assert change.messages[0].timestamp == "1749416383"


def test_fields_other_than_messages_are_kept_opaque() -> None:
    payload = {"object": "whatsapp_business_account", "entry": [{"changes": [
        {"field": "account_update", "value": {"phone_number": "15550783881", "event": "X"}}]}]}
    [change] = parsed(payload).changes
    assert change == WaChange(field="account_update", phone_number_id=None)


# -- message types -> what the bot gets ----------------------------------------------------------


def test_a_text_message_keeps_who_wrote_where_and_when() -> None:
    inbound = inbound_of(fixture("text_message.json"))
    assert (inbound.tenant, inbound.provider, inbound.channel) == (TENANT, "meta", "whatsapp")
    assert inbound.user_key == "+16505551234"  # E.164, as for a Twilio WhatsApp visitor
    assert inbound.sender_id == f"{TENANT.id}:whatsapp:+16505551234"
    assert inbound.text == "Where is my order #1042?"
    assert inbound.client_metadata == {"whatsapp_type": "text", "timestamp": "1749416383",
                                       "profile_name": "Sheena Nelson"}
    assert dict(inbound.reply_context) == {"phone_number_id": PHONE_NUMBER_ID,
                                           "wa_id": "16505551234"}


def test_media_only_image_is_a_graph_media_url() -> None:
    inbound = inbound_of(fixture("image_message.json"))
    assert inbound.text == ""
    assert inbound.media == (Media(url=f"{GRAPH_BASE}/v21.0/1003383421387256",
                                   content_type="image/jpeg"),)
    assert inbound.client_metadata["media_ids"] == ["1003383421387256"]
    assert inbound.client_metadata["media_type"] == "image"
    assert media_url(DEFAULT_GRAPH_BASE + "/", "1") == "https://graph.facebook.com/v21.0/1"


def test_card_numbers_are_masked_in_what_the_visitor_wrote_not_in_media_ids() -> None:
    """A caption, a file name and the visitor's profile name are what they typed;
    the media id (15 digits, passing the Luhn check) is Meta's and must reach the Graph API
    whole."""
    payload = fixture("image_message.json")
    image = message_of(payload)["image"]
    image.update(id="102290129340398", caption="receipt for 4111 1111 1111 1111",
                    filename="card 4111111111111111.pdf")
    payload["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = \
        "Sam 4012 8888 8888 1881"
    inbound = inbound_of(payload)
    assert inbound.text == "receipt for **** **** **** 1111"
    assert inbound.client_metadata["filename"] == "card **** **** **** 1111.pdf"
    assert inbound.client_metadata["profile_name"] == "Sam **** **** **** 1881"
    assert inbound.client_metadata["media_ids"] == ["102290129340398"]
    assert inbound.media[0].url.endswith("/102290129340398")


def test_caption_of_a_document_is_its_text() -> None:
    payload = fixture("image_message.json")
    message = message_of(payload)
    message["type"] = "document"
    message["document"] = {**message.pop("image"), "mime_type": "application/pdf",
                           "filename": "invoice-1042.pdf", "caption": "Wrong invoice?"}
    inbound = inbound_of(payload)
    assert inbound.text == "Wrong invoice?"
    assert inbound.media[0].content_type == "application/pdf"
    assert inbound.client_metadata["filename"] == "invoice-1042.pdf"


@pytest.mark.parametrize("kind", ["audio", "video", "sticker"])
def test_every_media_type_carries_its_link(kind: str) -> None:
    payload = fixture("image_message.json")
    message = message_of(payload)
    message["type"] = kind
    message[kind] = {"id": "77", "mime_type": f"{kind}/x"}
    del message["image"]
    inbound = inbound_of(payload)
    assert inbound.media == (Media(url=f"{GRAPH_BASE}/v21.0/77", content_type=f"{kind}/x"),)
    assert inbound.client_metadata["media_type"] == kind


def test_a_media_message_without_a_media_id_and_caption_is_ignored() -> None:
    payload = fixture("image_message.json")
    message_of(payload)["image"] = {"mime_type": "image/jpeg"}
    assert translated(payload) is None


def test_interactive_button_reply_is_the_tapped_title_and_keeps_the_reply_id() -> None:
    inbound = inbound_of(fixture("interactive_button_reply.json"))
    assert inbound.text == "Track my order"
    assert inbound.client_metadata["reply_id"] == "/track_order"
    assert inbound.client_metadata["interactive_type"] == "button_reply"
    assert inbound.client_metadata["context_message_id"].startswith("wamid.")


def test_interactive_list_reply_is_the_chosen_rows_title() -> None:
    payload = fixture("interactive_button_reply.json")
    message_of(payload)["interactive"] = {
        "type": "list_reply",
        "list_reply": {"id": "/return", "title": "Start a return", "description": "30 days"}}
    inbound = inbound_of(payload)
    assert inbound.text == "Start a return"
    assert inbound.client_metadata["reply_id"] == "/return"


def test_an_interactive_message_of_another_kind_is_ignored() -> None:
    payload = fixture("interactive_button_reply.json")
    message_of(payload)["interactive"] = {"type": "nfm_reply", "nfm_reply": {"body": "Sent"}}
    assert translated(payload) is None


def test_template_quick_reply_button_is_its_text() -> None:
    inbound = inbound_of(fixture("button_message.json"))
    assert inbound.text == "Talk to a person"
    assert inbound.client_metadata["button_payload"] == "TALK_TO_AGENT"


def test_location_becomes_a_readable_text() -> None:
    inbound = inbound_of(fixture("location_message.json"))
    assert inbound.text == "[location] 37.4843,-122.1482 Meta Headquarters"
    assert inbound.client_metadata["location"] == {"latitude": 37.4843,
                                                   "longitude": -122.1482}


def test_a_location_without_coordinates_is_ignored() -> None:
    payload = fixture("location_message.json")
    message_of(payload)["location"] = {"name": "Somewhere", "latitude": "north"}
    assert translated(payload) is None


@pytest.mark.parametrize("name", ["reaction_message.json", "unsupported_message.json"])
def test_reactions_and_unsupported_messages_are_not_handed_on(name: str) -> None:
    assert translated(fixture(name)) is None


def test_a_type_meta_adds_tomorrow_is_not_handed_on() -> None:
    payload = fixture("text_message.json")
    message = message_of(payload)
    message["type"] = "hologram"
    message["hologram"] = {"id": "123", "frames": 12}
    del message["text"]
    assert translated(payload) is None


def test_an_empty_text_is_not_handed_on() -> None:
    payload = fixture("text_message.json")
    message_of(payload)["text"] = {"body": ""}
    assert translated(payload) is None


# -- statuses ------------------------------------------------------------------------------------


def test_a_delivered_status_becomes_our_update() -> None:
    [change] = parsed(fixture("status_delivered.json")).changes
    assert change.messages == ()
    [status] = change.statuses
    assert to_status_update(status) == StatusUpdate(
        provider_message_id="wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI2RjM4QzJDNzQ4QjY5RjA2QTMA",
        status="delivered")


def test_a_failed_status_keeps_metas_first_error() -> None:
    payload = fixture("status_failed.json")
    statuses = payload["entry"][0]["changes"][0]["value"]["statuses"]
    statuses[0]["errors"].append({"code": 131026, "title": "Message undeliverable"})
    [change] = parsed(payload).changes
    update = to_status_update(change.statuses[0])
    assert (update.status, update.error_code) == ("failed", "131047")
    assert update.error_detail == "Re-engagement message"


def test_an_error_without_a_title_is_described_by_its_message() -> None:
    payload = fixture("status_failed.json")
    status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    status["errors"] = [{"code": 131026, "message": "Message undeliverable"}]
    [change] = parsed(payload).changes
    assert to_status_update(change.statuses[0]).error_detail == "Message undeliverable"
