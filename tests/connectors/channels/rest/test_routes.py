"""The REST channel: Rasa's own REST shape in and out, the shop named by the URL, the shop's
API key required.

Through the shared channel harness: the real route under /channels/<shop>/rest/webhook, the
gateway's real error answers and body limits; the inbox records what it is handed and answers
as Rasa would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.bounds import MAX_ID
from connectors.channels import BY_NAME, rest
from connectors.channels.rest.routes import MAX_METADATA, MAX_SENDER, MAX_TEXT, parse, render
from connectors.errors import BadRequest, UpstreamUnavailable
from connectors.messages import InboundMessage
from tests.connectors.channels.harness import ChannelHarness, FakeInbox, shop

SHOP = shop("shop", "t-shop-0001")
BUTTONS = [{"title": "Order status", "payload": "/order_status"}]


async def rasa_like(inbound: InboundMessage) -> list[dict[str, Any]] | None:
    """Rasa's REST answers, addressed to our scoped sender id as Rasa does."""
    return [{"recipient_id": inbound.sender_id, "text": "How can I help?", "buttons": BUTTONS},
            {"recipient_id": inbound.sender_id, "image": "https://shop.example/logo.png"}]


def harness(replies: Any = rasa_like) -> ChannelHarness:
    return ChannelHarness(rest.CHANNEL, "rest", tenant=SHOP, others=[shop("other")],
                          inbox=FakeInbox(replies=replies))


async def post(h: ChannelHarness, body: Any, slug: str | None = None,
               key: str | None = None) -> Any:
    """Posted with the URL's shop's own key unless `key` says otherwise ("" for none)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if key is None:
        others = {t.slug: t for t in [h.tenant, *h.others]}
        key = h.api_key(others.get(slug or h.tenant.slug, h.tenant))
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return await h.post(h.url("webhook", slug), raw, headers)


@pytest.mark.asyncio
async def test_answers_in_rasas_rest_shape_addressed_to_the_visitors_own_sender() -> None:
    h = harness()
    response = await post(h, {"sender": "visitor-1", "message": "hi"})
    assert response.status == 200
    assert response.json == [
        {"recipient_id": "visitor-1", "text": "How can I help?", "buttons": BUTTONS},
        {"recipient_id": "visitor-1", "image": "https://shop.example/logo.png"},
    ]


@pytest.mark.asyncio
async def test_the_message_is_handed_to_the_inbox_scoped_to_the_shop() -> None:
    h = harness()
    metadata = {"message_id": "m-1", "locale": "de"}
    await post(h, {"sender": "  visitor-1 ", "message": "  Where is #1001? ",
                   "metadata": metadata})
    [inbound] = h.inbox.conversed
    assert inbound.tenant == SHOP
    assert (inbound.provider, inbound.channel) == ("rest", "rest")
    assert inbound.user_key == "visitor-1" and inbound.text == "Where is #1001?"
    assert inbound.message_id == "m-1" and inbound.client_metadata == metadata
    assert inbound.sender_id == f"{SHOP.id}:rest:visitor-1"
    assert h.inbox.accepted == []  # answered within the request, not in the background


@pytest.mark.asyncio
async def test_a_card_number_in_metadata_is_masked_and_the_message_id_kept() -> None:
    """The text's card number was masked, a page address's was stored and handed to Rasa."""
    h = harness()
    metadata = {"message_id": "4012888888881881", "locale": "en",
                "page_url": "https://shop.example/pay?card=4111-1111-1111-1111&step=2"}
    await post(h, {"sender": "v", "message": "my card 4111111111111111", "metadata": metadata})
    [inbound] = h.inbox.conversed
    assert inbound.text == "my card **** **** **** 1111"
    assert inbound.client_metadata == {
        "message_id": "4012888888881881", "locale": "en",
        "page_url": "https://shop.example/pay?card=**** **** **** 1111&step=2"}
    assert inbound.message_id == "4012888888881881"
    assert "4111" not in json.dumps([inbound.stored_payload(), inbound.rasa_metadata()])


@pytest.mark.asyncio
async def test_a_client_cannot_choose_the_shop_or_channel_in_metadata() -> None:
    h = harness()
    response = await post(h, {"sender": "v", "message": "hi",
                              "metadata": {"tenant_id": "t-other", "channel": "email"}})
    assert response.status == 400 and "message_id, locale, page_url" in response.json["detail"]
    assert h.inbox.conversed == []
    # And were such keys ever let through, ours are written last.
    inbound = InboundMessage(tenant=SHOP, provider="rest", channel="rest", user_key="v",
                             text="hi", client_metadata={"tenant_id": "t-other"})
    assert inbound.rasa_metadata()["tenant_id"] == SHOP.id
    assert inbound.rasa_metadata()["channel"] == "rest"


# --- the shop's API key ---------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "sb_live_000000000000_x",
    "Bearer sb_live_000000000000_" + "x" * 43, "Bearer not-a-key",
], ids=["none", "empty", "no-token", "blank-token", "basic", "no-scheme", "unknown", "garbage"])
@pytest.mark.asyncio
async def test_without_the_shops_key_it_is_401_and_nothing_is_handed_on(
        authorization: str | None) -> None:
    h = harness()
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await h.post(h.url("webhook"), b'{"sender": "v", "message": "hi"}', headers)
    assert response.status == 401 and "API key" in response.json["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert h.inbox.conversed == []


@pytest.mark.asyncio
async def test_another_shops_key_is_401() -> None:
    h = harness()
    other = h.others[0]
    response = await post(h, {"sender": "v", "message": "hi"}, key=h.api_key(other))
    assert response.status == 401 and h.inbox.conversed == []
    response = await post(h, {"sender": "v", "message": "hi"}, slug="other", key=h.api_key())
    assert response.status == 401 and h.inbox.conversed == []


@pytest.mark.asyncio
async def test_a_revoked_key_is_401() -> None:
    h = harness()
    assert (await post(h, {"sender": "v", "message": "hi"})).status == 200
    key = h.api_key()
    h.api_keys.revoke(SHOP)
    response = await post(h, {"sender": "v", "message": "hi"}, key=key)
    assert response.status == 401 and len(h.inbox.conversed) == 1


@pytest.mark.asyncio
async def test_the_key_is_checked_before_the_body() -> None:
    response = await post(harness(), b"not json", key="")
    assert response.status == 401


# --- bounded input --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_2_mb_body_is_413_before_anything_else() -> None:
    h = harness()
    body = {"sender": "v", "message": "hi", "metadata": {"page_url": "x" * 2_000_000}}
    for key in (None, ""):  # the limit comes first, key or not
        response = await post(h, body, key=key)
        assert response.status == 413 and "64 KB" in response.json["detail"]
    assert h.inbox.conversed == []


@pytest.mark.asyncio
async def test_documented_metadata_within_2_kb_passes() -> None:
    h = harness()
    metadata = {"message_id": "m" * MAX_ID, "locale": "pt-BR",
                "page_url": "https://shop.example/" + "p" * 1000}
    response = await post(h, {"sender": "v", "message": "hi", "metadata": metadata})
    assert response.status == 200 and h.inbox.conversed[0].client_metadata == metadata
    assert (await post(h, {"sender": "w", "message": "hi", "metadata": None})).status == 200


@pytest.mark.asyncio
async def test_a_numeric_sender_is_taken_as_text() -> None:
    h = harness()
    response = await post(h, {"sender": 12345, "message": "hi"})
    assert response.status == 200 and response.json[0]["recipient_id"] == "12345"
    assert h.inbox.conversed[0].user_key == "12345"


@pytest.mark.asyncio
async def test_a_repeat_of_a_handled_message_id_gets_an_empty_answer() -> None:
    async def already_handled(inbound: InboundMessage) -> list[dict[str, Any]] | None:
        return None

    response = await post(harness(already_handled),
                          {"sender": "v", "message": "hi", "metadata": {"message_id": "m-1"}})
    assert (response.status, response.json) == (200, [])


@pytest.mark.parametrize(("body", "detail"), [
    (b"", "must be JSON"),
    (b"not json", "must be JSON"),
    (b"\xff\xfe", "must be JSON"),
    ([], "JSON object"),
    ("hi", "JSON object"),
    ({"message": "hi"}, "'sender'"),
    ({"sender": "", "message": "hi"}, "'sender'"),
    ({"sender": "   ", "message": "hi"}, "'sender'"),
    ({"sender": True, "message": "hi"}, "'sender'"),
    ({"sender": ["v"], "message": "hi"}, "'sender'"),
    ({"sender": "v" * (MAX_SENDER + 1), "message": "hi"}, f"longer than {MAX_SENDER}"),
    ({"sender": "v"}, "'message'"),
    ({"sender": "v", "message": "  "}, "'message'"),
    ({"sender": "v", "message": {"text": "hi"}}, "'message'"),
    ({"sender": "v", "message": "x" * (MAX_TEXT + 1)}, f"longer than {MAX_TEXT}"),
    ({"sender": "v", "message": "hi", "metadata": ["x"]}, "'metadata'"),
    ({"sender": "v", "message": "hi", "metadata": {"message_id": 7}}, "message_id"),
    ({"sender": "v", "message": "hi", "metadata": {"message_id": "m" * (MAX_ID + 1)}},
     f"longer than {MAX_ID}"),
    ({"sender": "v", "message": "hi", "metadata": {"user": "me"}}, "takes only"),
    ({"sender": "v", "message": "hi", "metadata": {"locale": {"lang": "de"}}}, "'metadata.locale'"),
    ({"sender": "v", "message": "hi", "metadata": {"page_url": "x" * MAX_METADATA}},
     f"larger than {MAX_METADATA} bytes"),
    (b'{"sender": "v", "message": "hi", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}",
     "nested"),  # past the parser's recursion limit: was a 500 with a traceback
], ids=["empty", "not-json", "not-utf8", "array", "string", "no-sender", "empty-sender",
        "blank-sender", "bool-sender", "list-sender", "long-sender", "no-message",
        "blank-message", "object-message", "long-message", "list-metadata", "numeric-id",
        "long-id", "unknown-metadata", "object-metadata-value", "large-metadata",
        "deep-metadata"])
@pytest.mark.asyncio
async def test_bad_bodies_are_400_with_a_clear_detail(body: Any, detail: str) -> None:
    h = harness()
    response = await post(h, body)
    assert response.status == 400
    assert detail in response.json["detail"]
    assert h.inbox.conversed == []


@pytest.mark.asyncio
async def test_the_longest_accepted_message_and_sender_pass() -> None:
    h = harness()
    response = await post(h, {"sender": "v" * MAX_SENDER, "message": "x" * MAX_TEXT})
    assert response.status == 200 and len(h.inbox.conversed) == 1


@pytest.mark.asyncio
async def test_unknown_shop_is_404() -> None:
    h = harness()
    response = await post(h, {"sender": "v", "message": "hi"}, slug="nope")
    assert response.status == 404 and "nope" in response.json["detail"]
    assert h.inbox.conversed == []


@pytest.mark.asyncio
async def test_another_shop_served_here_gets_its_own_conversation() -> None:
    h = harness()
    await post(h, {"sender": "v", "message": "hi"}, slug="other")
    assert h.inbox.conversed[0].tenant.slug == "other"
    assert h.inbox.conversed[0].sender_id == "t-other:rest:v"


@pytest.mark.asyncio
async def test_bot_down_is_503_with_the_reason() -> None:
    async def down(inbound: InboundMessage) -> list[dict[str, Any]] | None:
        raise UpstreamUnavailable("The bot is not reachable right now; please try again shortly.")

    response = await post(harness(down), {"sender": "v", "message": "hi"})
    assert response.status == 503 and "not reachable" in response.json["detail"]


def test_parse_names_the_provider_it_is_given() -> None:
    body = json.dumps({"sender": "v", "message": "hi"}).encode()
    assert parse(body, SHOP).provider == "rest"
    assert parse(body, SHOP, provider="rest-beta").provider == "rest-beta"
    with pytest.raises(BadRequest):
        parse(b"{}", SHOP)


def test_render_readdresses_every_message_without_touching_the_rest() -> None:
    replies: list[dict[str, Any]] = [
        {"recipient_id": "t-shop-0001:rest:v", "text": "a", "custom": {"k": 1}}, {"text": "b"}]
    assert render(replies, "v") == [{"recipient_id": "v", "text": "a", "custom": {"k": 1}},
                                    {"text": "b", "recipient_id": "v"}]
    assert replies[0]["recipient_id"] == "t-shop-0001:rest:v"
    assert render([], "v") == []


def test_the_registry_serves_rest_without_credentials_or_sender() -> None:
    assert BY_NAME["rest"] is rest.CHANNEL
    assert rest.CHANNEL.sender is None and rest.CHANNEL.check_credentials is None
    assert rest.CHANNEL.problems({}) == []
