"""Bounded input: ids that do not fit their column are a 400 on every channel, and each route
names its body limit (the limits themselves are tested through the real server in
test_gateway_errors.py)."""

from __future__ import annotations

import pytest

from connectors.bounds import LARGEST_BODY, MAX_ID, MB, check_ids, readable
from connectors.channels import CHANNELS
from connectors.errors import BadRequest
from connectors.messages import InboundMessage
from tests.connectors.channels.harness import shop

SHOP = shop("shop", "0" * 36)


@pytest.mark.parametrize("channel", ["rest", "web", "sms", "whatsapp", "email"])
def test_a_sender_or_message_id_longer_than_its_column_is_a_400(channel: str) -> None:
    room = MAX_ID - len(f"{SHOP.id}:{channel}:")
    InboundMessage(tenant=SHOP, provider="p", channel=channel, user_key="u" * room, text="hi",
                   message_id="m" * MAX_ID)
    with pytest.raises(BadRequest, match=f"longer than {room} characters"):
        InboundMessage(tenant=SHOP, provider="p", channel=channel, user_key="u" * (room + 1),
                       text="hi")
    with pytest.raises(BadRequest, match=f"longer than {MAX_ID}"):
        InboundMessage(tenant=SHOP, provider="p", channel=channel, user_key="u", text="hi",
                       message_id="m" * (MAX_ID + 1))


@pytest.mark.parametrize("channel", ["rest", "web", "sms", "whatsapp", "email"])
def test_what_a_database_cannot_store_is_cleaned_from_text_and_refused_in_ids(
        channel: str) -> None:
    message = InboundMessage(
        tenant=SHOP, provider="p", channel=channel, user_key="u", text="hi\ud800 there\x00",
        questions=("one\udcff?", "two?"), client_metadata={"page_url": ["/p\x00"]},
        reply_context={"subject": "Re: caf\udce9"})
    assert message.text == "hi\ufffd there"
    assert message.questions == ("one\ufffd?", "two?")
    assert message.client_metadata == {"page_url": ["/p"]}
    assert message.reply_context == {"subject": "Re: caf\ufffd"}
    for user_key, message_id in (("u\x00", None), ("u", "m\ud800")):
        with pytest.raises(BadRequest, match="NUL characters or unpaired surrogates"):
            InboundMessage(tenant=SHOP, provider="p", channel=channel, user_key=user_key,
                           text="hi", message_id=message_id)


def test_clean_text_is_left_as_it_is() -> None:
    text, metadata = "ok 😀 \u00e9", {"locale": "de"}
    message = InboundMessage(tenant=SHOP, provider="p", channel="rest", user_key="u", text=text,
                             client_metadata=metadata)
    assert message.text is text and message.client_metadata is metadata


def test_check_ids_passes_what_fits() -> None:
    check_ids("t:rest:v", None)
    check_ids("t:rest:v", "m" * MAX_ID)


def test_every_post_route_names_its_body_limit() -> None:
    for channel in CHANNELS:
        for route in channel.blueprint()._future_routes:
            if "POST" in (route.methods or ()):
                assert route.route_context.get("body_limit"), (channel.name, route.uri)
                assert route.route_context["body_limit"] <= LARGEST_BODY


def test_limits_read_as_people_write_them() -> None:
    assert (readable(64 * 1024), readable(4 * MB), readable(32 * MB)) == ("64 KB", "4 MB",
                                                                          "32 MB")
