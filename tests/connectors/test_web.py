"""The web channel through a real Sanic server and a real WebSocket client.

The relay and the message store are the real ones (SQLite); only Rasa is a small fake that
answers like Rasa's REST channel (a custom payload arrives as its own message after the text).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
import pytest_asyncio
import websockets
from sanic import Request, Sanic
from sanic.response import HTTPResponse, json as json_response
from websockets.exceptions import ConnectionClosed

from connectors import visitor_tokens, web
from connectors.errors import GatewayError, TenantNotFound, UpstreamUnavailable
from connectors.relay import Relay
from connectors.web_history import bot_messages, load_history
from core.conversations import MessageRow, record_message
from core.db import create_engine, session_factory
from tenants import Tenant
from tests.integration.stack import free_port

SECRET = b"widget-secret-for-tests-0123456789"
SHOP = Tenant(id="t-shop-0001", slug="shop", name="Shop & Co", greeting="Hello from Shop!",
              return_window_days=30, order_backend="demo", credentials_encrypted=None,
              widget_key="pk_shop", widget_theme={"primary": "#123456", "text": "#fff",
                                                  "title": "Shop help", "position": "left"})
OTHER = Tenant(id="t-other-0002", slug="other", name="Other", greeting=None,
               return_window_days=30, order_backend="demo", credentials_encrypted=None,
               widget_key="pk_other", widget_theme={})
NO_WIDGET = Tenant(id="t-none-0003", slug="nowidget", name="No widget", greeting=None,
                   return_window_days=30, order_backend="demo", credentials_encrypted=None)
TENANTS = {t.slug: t for t in (SHOP, OTHER, NO_WIDGET)}
ORDER_BUTTONS = [{"title": "Order status", "payload": "/order_status"},
                 {"title": "Talk to a person", "payload": "/human_handoff"}]


class FakeRasa:
    """Rasa's REST answers for a few texts; records what it was asked."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        self.down = False

    async def turn(self, sender_id: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        self.seen.append((sender_id, text, metadata))
        if self.down:
            raise UpstreamUnavailable("The bot is not reachable right now; please try again shortly.")
        if text == "/order_status":
            return [{"recipient_id": sender_id, "text": "What's your order number?"}]
        if text.startswith("returns"):
            return [
                {"recipient_id": sender_id, "text": "You have 30 days: https://shop.example/returns."},
                {"recipient_id": sender_id, "custom": {"knowledge": {"mode": "llm", "sources": [
                    {"title": "Returns policy", "url": "https://shop.example/returns", "document": "r.md"},
                    {"title": "FAQ", "url": None, "document": "faq.md"}]}}},
            ]
        return [{"recipient_id": sender_id, "text": "How can I help?", "buttons": ORDER_BUTTONS}]


class Gateway:
    def __init__(self, app: Sanic, port: int, rasa: FakeRasa, relay: Relay) -> None:
        self.app = app
        self.rasa = rasa
        self.relay = relay
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}"

    def socket_url(self, slug: str = "shop", key: str | None = "pk_shop") -> str:
        query = f"?key={key}" if key is not None else ""
        return f"{self.ws}/channels/{slug}/web/socket{query}"


@pytest_asyncio.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    app = Sanic(f"webtest{uuid.uuid4().hex[:8]}", configure_logging=False)
    app.config.FALLBACK_ERROR_FORMAT = "json"
    # TouchUp rewrites Sanic's own methods once per process; a second server in the same
    # process must not rewrite them again.
    app.config.TOUCHUP = False
    app.blueprint(web.bp)

    @app.exception(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> HTTPResponse:
        return json_response({"detail": exc.detail}, status=exc.status)

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'web.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(MessageRow.__table__.create)
    sessions = session_factory(engine)
    rasa = FakeRasa()
    relay = Relay(sessions, rasa)  # type: ignore[arg-type]

    async def resolve_tenant(slug: str) -> Tenant:
        if slug not in TENANTS:
            raise TenantNotFound(f"No shop called '{slug}' is served here.")
        return TENANTS[slug]

    app.ctx.resolve_tenant = resolve_tenant
    app.ctx.relay = relay
    app.ctx.sessions = sessions
    app.ctx.widget_secret = SECRET
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield Gateway(app, port, rasa, relay)
    finally:
        await relay.drain()
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()
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
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def say(ws: Any, text: str, client_id: str | None = None, payload: str | None = None) -> list[dict]:
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
    return ws.close_code


# ---- the socket ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_hello_without_token_starts_a_conversation(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        session = await hello(ws)
    assert session["type"] == "session" and session["history"] == []
    conversation = visitor_tokens.verify(SECRET, SHOP.id, session["token"])
    assert len(conversation) == 32


@pytest.mark.asyncio
async def test_a_turn_types_then_answers_then_says_done(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        session = await hello(ws)
        frames = await say(ws, "hi", client_id="m1")
    assert [f["type"] for f in frames] == ["typing", "bot", "done"]
    assert frames[1]["text"] == "How can I help?" and frames[1]["buttons"] == ORDER_BUTTONS
    assert frames[2]["id"] == "m1"
    conversation = visitor_tokens.verify(SECRET, SHOP.id, session["token"])
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
    await gateway.relay.drain()  # bot replies are stored just after they go out
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
    assert visitor_tokens.verify(SECRET, SHOP.id, session["token"]) == \
        visitor_tokens.verify(SECRET, SHOP.id, token)
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


async def _victim_conversation(gateway: Gateway) -> str:
    async with websockets.connect(gateway.socket_url()) as ws:
        token = (await hello(ws))["token"]
        await say(ws, "my secret order 1001 alex@example.com", client_id="v1")
    await gateway.relay.drain()
    return visitor_tokens.verify(SECRET, SHOP.id, token)


@pytest.mark.asyncio
@pytest.mark.parametrize("forge", ["wrong_secret", "bare_id", "other_shop", "expired", "garbage"])
async def test_a_forged_token_gets_4403_and_nothing_of_the_conversation(
        gateway: Gateway, forge: str) -> None:
    victim = await _victim_conversation(gateway)
    token = {
        "wrong_secret": lambda: visitor_tokens.issue(b"guessed-secret", SHOP.id, victim)[0],
        "bare_id": lambda: victim,
        "other_shop": lambda: visitor_tokens.issue(SECRET, OTHER.id, victim)[0],
        "expired": lambda: visitor_tokens.issue(SECRET, SHOP.id, victim, ttl_days=1,
                                                now=1_000_000)[0],
        "garbage": lambda: "v1.%%%.x.y",
    }[forge]()
    async with websockets.connect(gateway.socket_url()) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        code = await closed_with(ws)
    assert frame["type"] == "error" and frame["code"] == "invalid_token"
    assert "secret" not in json.dumps(frame) and victim not in json.dumps(frame)
    assert code == web.CLOSE_FORBIDDEN
    assert len(gateway.rasa.seen) == 1  # only the victim's own turn


@pytest.mark.asyncio
async def test_a_token_of_one_shop_does_not_open_it_at_another(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        token = (await hello(ws))["token"]
    async with websockets.connect(gateway.socket_url("other", "pk_other")) as ws:
        frame = await hello(ws, token)
        assert frame["code"] == "invalid_token"
        assert await closed_with(ws) == web.CLOSE_FORBIDDEN


@pytest.mark.asyncio
@pytest.mark.parametrize(("slug", "key", "code"), [
    ("shop", None, 4403), ("shop", "pk_other", 4403), ("shop", "PK_SHOP", 4403),
    ("nowidget", "", 4403), ("nowidget", "anything", 4403), ("nope", "pk_shop", 4404),
])
async def test_a_wrong_widget_key_is_closed_before_anything(
        gateway: Gateway, slug: str, key: str | None, code: int) -> None:
    async with websockets.connect(gateway.socket_url(slug, key)) as ws:
        assert await closed_with(ws) == code
    assert gateway.rasa.seen == []


@pytest.mark.asyncio
async def test_the_first_frame_must_be_hello(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        await ws.send(json.dumps({"type": "message", "text": "hi"}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["code"] == "hello_required"
        assert await closed_with(ws) == web.CLOSE_BAD_REQUEST
    assert gateway.rasa.seen == []


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
    assert frames[2]["id"] == "x1"
    assert again[1]["text"] == "How can I help?"


@pytest.mark.asyncio
async def test_a_broken_store_closes_the_socket_as_an_internal_error(gateway: Gateway) -> None:
    async with websockets.connect(gateway.socket_url()) as ws:
        token = (await hello(ws))["token"]

    def broken_sessions() -> None:
        raise RuntimeError("database is gone")

    gateway.app.ctx.sessions = broken_sessions
    async with websockets.connect(gateway.socket_url()) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        assert await closed_with(ws) == 1011


# ---- HTTP routes --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_widget_script_is_served_as_javascript_with_cache_headers(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as client:
        response = await client.get("/channels/shop/web/widget.js")
        again = await client.get("/channels/shop/web/widget.js",
                                 headers={"If-None-Match": response.headers["etag"]})
        unknown = await client.get("/channels/nope/web/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert "max-age" in response.headers["cache-control"]
    assert "attachShadow" in response.text and "document.currentScript" in response.text
    assert again.status_code == 304
    assert unknown.status_code == 404


@pytest.mark.asyncio
async def test_config_gives_the_shops_look_for_its_key_only(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as client:
        ok = await client.get("/channels/shop/web/config", params={"key": "pk_shop"})
        other = await client.get("/channels/shop/web/config", params={"key": "pk_other"})
        missing = await client.get("/channels/shop/web/config")
        defaults = await client.get("/channels/other/web/config", params={"key": "pk_other"})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "*"
    assert ok.json() == {"name": "Shop & Co", "greeting": "Hello from Shop!",
                         "theme": {"primary": "#123456", "text": "#fff", "title": "Shop help",
                                   "position": "left"}}
    assert other.status_code == 403 and "key" in other.json()["detail"]
    assert missing.status_code == 403
    assert defaults.json()["theme"] == {**web.DEFAULT_THEME, "title": "Other"}


def test_theme_values_that_are_not_colours_are_not_passed_to_css() -> None:
    from dataclasses import replace

    shady = replace(SHOP, widget_theme={"primary": "red;}body{display:none", "text": "#12",
                                        "position": "top", "title": 5})
    assert web.theme_of(shady) == {**web.DEFAULT_THEME, "title": "Shop & Co"}


@pytest.mark.asyncio
async def test_demo_page_embeds_the_widget_with_the_shops_key(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as client:
        page = await client.get("/channels/shop/web/demo")
        none = await client.get("/channels/nowidget/web/demo")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (f'<script src="{gateway.http}/channels/shop/web/widget.js" data-key="pk_shop" async>'
            in page.text)
    assert "Shop &amp; Co" in page.text and "Shop & Co" not in page.text
    assert none.status_code == 404


# ---- history ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_history_is_this_conversation_only_in_order_and_limited(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(MessageRow.__table__.create)
    sessions = session_factory(engine)
    mine, theirs = f"{SHOP.id}:web:aaa", f"{SHOP.id}:web:bbb"

    async def store(sender: str, direction: str, text: str, payload: dict | None = None,
                    tenant: str = SHOP.id) -> None:
        await record_message(sessions, tenant_id=tenant, sender_id=sender, channel="web",
                             direction=direction, text=text, payload=payload)

    await store(mine, "in", "hi")
    await store(theirs, "in", "their secret")
    await store(mine, "out", "Hello", {"messages": [{"text": "Hello", "buttons": ORDER_BUTTONS}]})
    await store(mine, "in", "/order_status", {"display_text": "Order status"})
    await store(mine, "in", "<b>x</b>")
    await store(mine, "in", "other tenant", tenant=OTHER.id)
    history = await load_history(sessions, SHOP.id, mine)
    last_two = await load_history(sessions, SHOP.id, mine, limit=2)
    await engine.dispose()
    assert [(h["from"], h["text"]) for h in history] == [
        ("visitor", "hi"), ("bot", "Hello"), ("visitor", "Order status"), ("visitor", "<b>x</b>")]
    assert history[1]["buttons"] == ORDER_BUTTONS
    assert [h["text"] for h in last_two] == ["Order status", "<b>x</b>"]


def test_bot_messages_keep_only_known_shapes() -> None:
    messages = bot_messages([
        {"recipient_id": "x", "text": "a\n\nb"},
        {"recipient_id": "x", "buttons": [{"title": "Yes", "payload": "/affirm"}, "junk",
                                          {"payload": "/no_title"}], "text": "Sure?"},
        {"recipient_id": "x", "image": "https://img.example/x.png"},
        {"recipient_id": "x", "custom": {"knowledge": {"sources": [{"title": "Doc", "url": 7}]}}},
        "not a message",
    ])
    assert messages == [
        {"text": "a\n\nb"},
        {"text": "Sure?", "buttons": [{"title": "Yes", "payload": "/affirm"}],
         "sources": [{"title": "Doc", "url": None}]},
    ]
