"""The widget's socket through a real Sanic server and a real WebSocket client.

The channel harness's app runs on a real port; the inbox and the message store behind it are the
real ones (SQLite, migrated), and history reads the same store. Only Rasa is a small fake that
answers like Rasa's REST channel (a custom payload arrives as its own message after the text).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import websockets
from websockets.exceptions import ConnectionClosed

from connectors.channels import web
from connectors.channels.web import tokens
from connectors.channels.web.socket import CLOSE_BAD_REQUEST, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND
from connectors.errors import UpstreamUnavailable
from connectors.inbox import Inbox
from connectors.outbox import Outbox
from connectors.rasa_client import BotTurn
from core.conversations import StoredMessage, recent_messages
from core.db import create_engine, session_factory
from core.settings import async_database_url
from tests.connectors.channels.harness import SECRET, ChannelHarness, Sealed, shop
from tests.databases import migrated_url
from tests.servers import serving

SHOP = shop("shop", "t-shop-0001", name="Shop & Co", greeting="Hello from Shop!",
            widget_key="pk_shop", widget_theme={"primary": "#123456"})
OTHER = shop("other", "t-other-0002", name="Other", widget_key="pk_other")
NO_WIDGET = shop("nowidget", "t-none-0003", name="No widget")
ORDER_BUTTONS = [{"title": "Order status", "payload": "/order_status"},
                 {"title": "Talk to a person", "payload": "/human_handoff"}]


class FakeRasa:
    """Rasa's REST answers for a few texts; records what it was asked."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        self.down = False

    async def turn(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        return BotTurn(messages=await self.messages(sender_id, text, metadata))

    async def messages(self, sender_id: str, text: str,
                       metadata: dict[str, Any]) -> list[dict[str, Any]]:
        self.seen.append((sender_id, text, metadata))
        if self.down:
            raise UpstreamUnavailable(
                "The bot is not reachable right now; please try again shortly.")
        if text == "/order_status":
            return [{"recipient_id": sender_id, "text": "What's your order number?"}]
        if text.startswith("returns"):
            return [
                {"recipient_id": sender_id,
                 "text": "You have 30 days: https://shop.example/returns."},
                {"recipient_id": sender_id, "custom": {"knowledge": {"mode": "llm", "sources": [
                    {"title": "Returns policy", "url": "https://shop.example/returns",
                     "document": "r.md"},
                    {"title": "FAQ", "url": None, "document": "faq.md"}]}}},
            ]
        return [{"recipient_id": sender_id, "text": "How can I help?", "buttons": ORDER_BUTTONS}]


class Gateway:
    def __init__(self, harness: ChannelHarness, url: str, rasa: FakeRasa, inbox: Inbox) -> None:
        self.harness = harness
        self.rasa = rasa
        self.inbox = inbox
        self.ws = "ws" + url.removeprefix("http")
        self.store_broken = False  # history reads fail, as when the database is gone

    def socket_url(self, slug: str = "shop", key: str | None = "pk_shop") -> str:
        query = f"?key={key}" if key is not None else ""
        return f"{self.ws}{self.harness.url('socket', slug)}{query}"


@pytest_asyncio.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    engine = create_engine(async_database_url(migrated_url("sqlite", tmp_path)))
    sessions = session_factory(engine)
    rasa = FakeRasa()
    # Converse only: the web channel answers within the socket, the outbox sends nothing.
    inbox = Inbox(sessions, rasa, Outbox(sessions, Sealed({}), {}, {}))
    gateway: Gateway | None = None

    async def history(tenant_id: str, sender_id: str, limit: int) -> list[StoredMessage]:
        if gateway is not None and gateway.store_broken:
            raise RuntimeError("database is gone")
        return await recent_messages(sessions, tenant_id, sender_id, limit)

    # A real Inbox where the harness expects its FakeInbox (the contract's Inbox either way).
    h = ChannelHarness(web.CHANNEL, "web", tenant=SHOP, others=[OTHER, NO_WIDGET],
                       inbox=inbox, history=history)
    try:
        async with serving(h.app) as url:
            gateway = Gateway(h, url, rasa, inbox)
            try:
                yield gateway
            finally:
                await inbox.drain()  # before the server stops
    finally:
        await engine.dispose()


async def frames_until(ws: Any, wanted: str, limit: int = 10) -> list[dict[str, Any]]:
    """Frames received up to and including the first of type `wanted`."""
    got = []
    for _ in range(limit):
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        got.append(frame)
        if frame["type"] == wanted:
            return got
    raise AssertionError(f"no {wanted!r} frame in {got}")


async def hello(ws: Any, token: str | None = None) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "hello", "token": token}))
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return frame


async def say(ws: Any, text: str, client_id: str | None = None,
              payload: str | None = None) -> list[dict[str, Any]]:
    frame: dict[str, Any] = {"type": "message", "text": text}
    if client_id:
        frame["id"] = client_id
    if payload:
        frame["payload"] = payload
    await ws.send(json.dumps(frame))
    return await frames_until(ws, "done")


async def closed_with(ws: Any) -> int:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code is not None
    code: int = ws.close_code
    return code


# ---- session --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_hello_without_token_starts_a_conversation(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        session = await hello(ws)
    assert session["type"] == "session" and session["history"] == []
    conversation = tokens.verify(SECRET, SHOP.id, session["token"])
    assert len(conversation) == 32


@pytest.mark.asyncio
async def test_each_hello_without_token_is_a_new_conversation(gateway: Gateway) -> None:
    conversations = set()
    for _ in range(3):
        async with websockets.connect(gateway.socket_url()) as ws:
            conversations.add(tokens.verify(SECRET, SHOP.id, (await hello(ws))["token"]))
    assert len(conversations) == 3


# ---- turns ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_turn_types_then_answers_then_says_done(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        session = await hello(ws)
        frames = await say(ws, "hi", client_id="m1")
    assert [f["type"] for f in frames] == ["typing", "bot", "done"]
    assert frames[1]["text"] == "How can I help?" and frames[1]["buttons"] == ORDER_BUTTONS
    assert frames[2]["id"] == "m1"
    conversation = tokens.verify(SECRET, SHOP.id, session["token"])
    sender, text, metadata = gateway.rasa.seen[-1]
    assert sender == f"{SHOP.id}:web:{conversation}" and text == "hi"
    assert metadata["tenant_id"] == SHOP.id and metadata["channel"] == "web"
    assert metadata["message_id"] == f"web:{conversation}:m1"


@pytest.mark.asyncio
async def test_a_chip_sends_its_payload_and_the_bot_sees_it(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        await hello(ws)
        frames = await say(ws, "Order status", client_id="c1", payload="/order_status")
    assert frames[1]["text"] == "What's your order number?"
    _, text, metadata = gateway.rasa.seen[-1]
    assert text == "/order_status" and metadata["display_text"] == "Order status"


@pytest.mark.asyncio
async def test_knowledge_sources_come_with_the_answer_they_belong_to(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        await hello(ws)
        frames = await say(ws, "returns window?")
    bots = [f for f in frames if f["type"] == "bot"]
    assert len(bots) == 1
    assert bots[0]["sources"] == [{"title": "Returns policy", "url": "https://shop.example/returns"},
                                  {"title": "FAQ", "url": None}]


@pytest.mark.asyncio
async def test_reconnecting_with_the_token_brings_the_history_back(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        token = (await hello(ws))["token"]
        await say(ws, "hi", client_id="a")
        await say(ws, "Order status", client_id="b", payload="/order_status")
        await say(ws, "returns please", client_id="c")
    await gateway.inbox.drain()  # bot replies are stored just after they go out
    async with websockets.connect(gateway.socket_url()) as ws:
        session = await hello(ws, token)
        frames = await say(ws, "more", client_id="d")  # and the conversation goes on
    history = session["history"]
    assert [(h["from"], h["text"]) for h in history] == [
        ("visitor", "hi"), ("bot", "How can I help?"),
        ("visitor", "Order status"), ("bot", "What's your order number?"),
        ("visitor", "returns please"), ("bot", "You have 30 days: https://shop.example/returns."),
    ]
    assert history[1]["buttons"] == ORDER_BUTTONS
    assert history[5]["sources"][0]["title"] == "Returns policy"
    assert all(h["at"] for h in history)
    assert tokens.verify(SECRET, SHOP.id, session["token"]) == \
        tokens.verify(SECRET, SHOP.id, token)
    assert frames[-1] == {"type": "done", "id": "d"}
    assert len({sender for sender, _, _ in gateway.rasa.seen}) == 1


@pytest.mark.asyncio
async def test_a_resend_after_reconnect_is_processed_once(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        token = (await hello(ws))["token"]
        await say(ws, "hi", client_id="same")
    async with websockets.connect(gateway.socket_url()) as ws:
        await hello(ws, token)
        frames = await say(ws, "hi", client_id="same")
    assert [f["type"] for f in frames] == ["typing", "done"]
    assert frames[-1]["duplicate"] is True
    assert len(gateway.rasa.seen) == 1


@pytest.mark.asyncio
async def test_the_same_client_id_in_two_conversations_is_two_messages(gateway: Gateway) -> None:
    for _ in range(2):
        async with websockets.connect(gateway.socket_url()) as ws:
            await hello(ws)
            frames = await say(ws, "hi", client_id="m1")
        assert [f["type"] for f in frames] == ["typing", "bot", "done"]
    assert len(gateway.rasa.seen) == 2


# ---- who may open what ----------------------------------------------------------------------


async def _victim_conversation(gateway: Gateway) -> str:
    async with websockets.connect(gateway.socket_url()) as ws:
        token = (await hello(ws))["token"]
        await say(ws, "my secret order 1001 alex@example.com", client_id="v1")
    await gateway.inbox.drain()
    return tokens.verify(SECRET, SHOP.id, token)


@pytest.mark.asyncio
@pytest.mark.parametrize("forge", ["wrong_secret", "bare_id", "other_shop", "expired", "garbage"])
async def test_a_forged_token_gets_4403_and_nothing_of_the_conversation(
        gateway: Gateway, forge: str) -> None:
    victim = await _victim_conversation(gateway)
    token = {
        "wrong_secret": lambda: tokens.issue(b"guessed-secret", SHOP.id, victim)[0],
        "bare_id": lambda: victim,
        "other_shop": lambda: tokens.issue(SECRET, OTHER.id, victim)[0],
        "expired": lambda: tokens.issue(SECRET, SHOP.id, victim, ttl_days=1, now=1_000_000)[0],
        "garbage": lambda: "v1.%%%.x.y",
    }[forge]()
    async with websockets.connect(gateway.socket_url()) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        code = await closed_with(ws)
    assert frame["type"] == "error" and frame["code"] == "invalid_token"
    assert "secret" not in json.dumps(frame) and victim not in json.dumps(frame)
    assert code == CLOSE_FORBIDDEN
    assert len(gateway.rasa.seen) == 1  # only the victim's own turn


@pytest.mark.asyncio
async def test_a_token_of_one_shop_does_not_open_it_at_another(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        token = (await hello(ws))["token"]
    async with websockets.connect(gateway.socket_url("other", "pk_other")) as ws:
        frame = await hello(ws, token)
        assert frame["code"] == "invalid_token"
        assert await closed_with(ws) == CLOSE_FORBIDDEN


@pytest.mark.asyncio
@pytest.mark.parametrize(("slug", "key", "code"), [
    ("shop", None, CLOSE_FORBIDDEN), ("shop", "pk_other", CLOSE_FORBIDDEN),
    ("shop", "PK_SHOP", CLOSE_FORBIDDEN), ("nowidget", "", CLOSE_FORBIDDEN),
    ("nowidget", "anything", CLOSE_FORBIDDEN), ("nope", "pk_shop", CLOSE_NOT_FOUND),
])
async def test_a_wrong_widget_key_is_closed_before_anything(
        gateway: Gateway, slug: str, key: str | None, code: int) -> None:
    async with websockets.connect(gateway.socket_url(slug, key)) as ws:
        assert await closed_with(ws) == code
    assert gateway.rasa.seen == []


def test_close_codes_are_the_http_answers_plus_4000() -> None:
    assert (CLOSE_BAD_REQUEST, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND) == (4400, 4403, 4404)


# ---- bad frames -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_first_frame_must_be_hello(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        await ws.send(json.dumps({"type": "message", "text": "hi"}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["code"] == "hello_required"
        assert await closed_with(ws) == CLOSE_BAD_REQUEST
    assert gateway.rasa.seen == []


@pytest.mark.asyncio
async def test_an_unreadable_first_frame_is_closed_as_a_bad_request(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        await ws.send("not json")
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (frame["type"], frame["code"]) == ("error", "bad_frame")
        assert await closed_with(ws) == CLOSE_BAD_REQUEST


@pytest.mark.asyncio
async def test_bad_frames_get_error_frames_and_the_socket_stays_usable(gateway: Gateway) -> None:
    bad: list[tuple[str | bytes, str]] = [
        ("not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        (b"\x00\x01", "bad_frame"),
        (json.dumps({"type": "shout", "text": "hi"}), "unknown_type"),
        (json.dumps({"text": "hi"}), "unknown_type"),
        (json.dumps({"type": "message"}), "bad_message"),
        (json.dumps({"type": "message", "text": "   "}), "bad_message"),
        (json.dumps({"type": "message", "text": 5}), "bad_message"),
        (json.dumps({"type": "message", "text": "x" * 4001}), "too_long"),
        (json.dumps({"type": "message", "text": "y" * 20000}), "too_long"),
        (json.dumps({"type": "message", "text": "hi", "id": "has space"}), "bad_message"),
        (json.dumps({"type": "message", "text": "hi", "id": 7}), "bad_message"),
        (json.dumps({"type": "message", "text": "hi", "payload": ""}), "bad_message"),
        (json.dumps({"type": "message", "text": "hi", "payload": ["/x"]}), "bad_message"),
        (json.dumps({"type": "message", "text": "hi", "payload": "/" * 501}), "bad_message"),
        (json.dumps({"type": "hello", "token": None}), "bad_frame"),
        ("[" * 7000, "bad_frame"),  # past the parser's recursion limit: closed 1011 before
    ]
    async with websockets.connect(gateway.socket_url()) as ws:
        await hello(ws)
        for raw_frame, code in bad:
            await ws.send(raw_frame)
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert (frame["type"], frame["code"]) == ("error", code), raw_frame
            assert frame["detail"]
        frames = await say(ws, "x" * 4000, client_id="ok")
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "pong"}
    assert frames[-1] == {"type": "done", "id": "ok"}
    assert len(gateway.rasa.seen) == 1


# ---- failures -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_bot_down_is_an_error_frame_and_the_socket_stays_open(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        await hello(ws)
        gateway.rasa.down = True
        frames = await say(ws, "hi", client_id="x1")
        gateway.rasa.down = False
        again = await say(ws, "hi again", client_id="x2")
    assert [f["type"] for f in frames] == ["typing", "error", "done"]
    assert frames[1]["code"] == "unavailable" and "not reachable" in frames[1]["detail"]
    assert frames[2]["id"] == "x1" and frames[2]["ok"] is False
    assert again[1]["text"] == "How can I help?"


@pytest.mark.asyncio
async def test_a_flood_gets_the_sockets_429_and_the_socket_stays_open(gateway: Gateway) -> None:
    """The shop's default: 20 messages a minute per conversation (a minute's worth at once)."""
    async with websockets.connect(gateway.socket_url()) as ws:
        await hello(ws)
        answered = [await say(ws, f"hi {i}", client_id=f"f{i}") for i in range(20)]
        refused = await say(ws, "one too many", client_id="f20")
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "pong"}
    assert all(frames[-1].get("ok", True) for frames in answered)
    assert [f["type"] for f in refused] == ["typing", "error", "done"]
    assert refused[1]["code"] == "rate_limited" and 1 <= refused[1]["retry_after"] <= 3
    assert refused[2] == {"type": "done", "id": "f20", "ok": False}
    assert len(gateway.rasa.seen) == 20  # the refused one never reached the bot


@pytest.mark.asyncio
async def test_a_broken_store_closes_the_socket_as_an_internal_error(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        token = (await hello(ws))["token"]
    gateway.store_broken = True
    async with websockets.connect(gateway.socket_url()) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        assert await closed_with(ws) == 1011
