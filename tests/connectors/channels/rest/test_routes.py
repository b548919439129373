"""The REST channel: Rasa's own REST shape in and out, the shop named by the URL.

Through the shared channel harness: the real route under /channels/<shop>/rest/webhook, the
gateway's real error answers; the inbox records what it is handed and answers as Rasa would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.channels import BY_NAME, rest
from connectors.channels.rest.routes import MAX_SENDER, MAX_TEXT, parse, render
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


async def post(h: ChannelHarness, body: Any, slug: str | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await h.post(h.url("webhook", slug), raw, {"Content-Type": "application/json"})


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
async def test_a_client_cannot_choose_the_shop_or_channel_in_metadata() -> None:
    h = harness()
    await post(h, {"sender": "v", "message": "hi",
                   "metadata": {"tenant_id": "t-other", "channel": "email"}})
    [inbound] = h.inbox.conversed
    assert inbound.rasa_metadata()["tenant_id"] == SHOP.id
    assert inbound.rasa_metadata()["channel"] == "rest"


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
], ids=["empty", "not-json", "not-utf8", "array", "string", "no-sender", "empty-sender",
        "blank-sender", "bool-sender", "list-sender", "long-sender", "no-message",
        "blank-message", "object-message", "long-message", "list-metadata", "numeric-id"])
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
