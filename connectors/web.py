"""Web channel: the embeddable chat widget, its config, a demo page and its WebSocket.

    GET  /channels/{tenant}/web/widget.js          the widget (one script tag on the shop's site)
    GET  /channels/{tenant}/web/config?key=…       {name, greeting, theme}
    GET  /channels/{tenant}/web/demo               a page that embeds the widget
    WS   /channels/{tenant}/web/socket?key=…       the conversation (JSON text frames)

Socket protocol. The client opens with {"type": "hello", "token": <token or null>} and gets
{"type": "session", "token", "history"}: no token starts a new conversation; a token that is
not ours for this shop gets {"type": "error", "code": "invalid_token"} and close code 4403,
and nothing of any conversation. Then {"type": "message", "text", "id"?, "payload"?} gets
{"type": "typing"}, one {"type": "bot", ...} per bot message and {"type": "done", "id"}.
Bad frames get {"type": "error", "code", "detail"} and the socket stays open.

The public widget key only says which shop's widget this is (anyone can read it from the
page); what protects a conversation is the signed visitor token (connectors/visitor_tokens.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from sanic import Blueprint, Request
from sanic.exceptions import WebsocketClosed
from sanic.response import HTTPResponse, html as html_response, json as json_response, raw
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.exceptions import ConnectionClosed

from connectors import visitor_tokens
from connectors.errors import ChannelNotConfigured, Forbidden, GatewayError, UpstreamUnavailable
from connectors.messages import InboundMessage
from connectors.urls import public_origin
from connectors.web_history import bot_messages, load_history

log = logging.getLogger(__name__)

bp = Blueprint("web_channel")

WIDGET_JS = Path(__file__).resolve().parent / "static" / "widget.js"
MAX_TEXT = 4000
MAX_FRAME = 16_000  # characters of one raw frame; a message of MAX_TEXT fits with room to spare
MAX_PAYLOAD = 500
HELLO_TIMEOUT = 20.0  # seconds a fresh socket may stay silent before its hello
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")

# WebSocket close codes (4000-4999 are the application's own).
CLOSE_BAD_REQUEST = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404

DEFAULT_THEME = {"primary": "#1f6feb", "text": "#ffffff", "position": "right"}


# ---- frames -------------------------------------------------------------------------------


class FrameError(Exception):
    """A frame the client should not have sent; becomes an error frame, never a crash."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Hello:
    token: str | None


@dataclass(frozen=True)
class VisitorMessage:
    text: str  # what the visitor sees they sent (a chip's title)
    client_id: str | None
    payload: str | None  # a button's payload, sent to Rasa instead of the text


@dataclass(frozen=True)
class Ping:
    pass


Frame = Hello | VisitorMessage | Ping


def _hello(data: dict[str, Any]) -> Hello:
    token = data.get("token")
    if token is not None and not isinstance(token, str):
        raise FrameError("bad_frame", "'token' must be a string or null.")
    return Hello(token=token or None)


def _message(data: dict[str, Any]) -> VisitorMessage:
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise FrameError("bad_message", "'text' must be a non-empty string.")
    if len(text) > MAX_TEXT:
        raise FrameError("too_long", f"A message can have at most {MAX_TEXT} characters.")
    client_id = data.get("id")
    if client_id is not None and (not isinstance(client_id, str) or not _CLIENT_ID.match(client_id)):
        raise FrameError("bad_message", "'id' must be 1-64 characters of letters, digits, _ or -.")
    payload = data.get("payload")
    # A button's payload: usually "/intent{...}", sometimes plain text ("It doesn't fit").
    if payload is not None and (
        not isinstance(payload, str) or not payload.strip() or len(payload) > MAX_PAYLOAD
    ):
        raise FrameError("bad_message", f"'payload' must be a button payload of at most "
                                        f"{MAX_PAYLOAD} characters.")
    return VisitorMessage(text=text.strip(), client_id=client_id, payload=payload)


PARSERS: dict[str, Callable[[dict[str, Any]], Frame]] = {
    "hello": _hello,
    "message": _message,
    "ping": lambda data: Ping(),
}


def parse_frame(raw_frame: str | bytes | None) -> Frame:
    """Validate one untrusted frame; raises FrameError with a reason the client can show."""
    if not isinstance(raw_frame, str):
        raise FrameError("bad_frame", "Frames must be JSON text.")
    if len(raw_frame) > MAX_FRAME:
        raise FrameError("too_long", f"A message can have at most {MAX_TEXT} characters.")
    try:
        data = json.loads(raw_frame)
    except ValueError:
        raise FrameError("bad_frame", "Frames must be JSON objects.") from None
    if not isinstance(data, dict):
        raise FrameError("bad_frame", "Frames must be JSON objects.")
    parser = PARSERS.get(data.get("type")) if isinstance(data.get("type"), str) else None
    if parser is None:
        raise FrameError("unknown_type", f"Known frame types: {', '.join(PARSERS)}.")
    return parser(data)


def error_frame(code: str, detail: str) -> str:
    return json.dumps({"type": "error", "code": code, "detail": detail})


# ---- tenant look and key ------------------------------------------------------------------


def key_matches(tenant: Any, key: str | None) -> bool:
    expected = getattr(tenant, "widget_key", None)
    if not expected or not key:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), key.encode("utf-8"))


def theme_of(tenant: Any) -> dict[str, str]:
    """The shop's look, validated: the widget puts these into CSS, so only known shapes pass."""
    raw_theme = getattr(tenant, "widget_theme", None)
    raw_theme = raw_theme if isinstance(raw_theme, dict) else {}
    theme = dict(DEFAULT_THEME, title=tenant.name)
    for name in ("primary", "text"):
        value = raw_theme.get(name)
        if isinstance(value, str) and _HEX.match(value):
            theme[name] = value
    if raw_theme.get("position") in ("left", "right"):
        theme["position"] = raw_theme["position"]
    title = raw_theme.get("title")
    if isinstance(title, str) and title.strip():
        theme["title"] = title.strip()[:80]
    return theme


# ---- HTTP routes --------------------------------------------------------------------------


_widget_cache: tuple[bytes, str] | None = None


def _widget() -> tuple[bytes, str]:
    global _widget_cache
    if _widget_cache is None:
        body = WIDGET_JS.read_bytes()
        _widget_cache = (body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    return _widget_cache


@bp.get("/channels/<tenant_slug:str>/web/widget.js")
async def widget_js(request: Request, tenant_slug: str) -> HTTPResponse:
    await request.app.ctx.resolve_tenant(tenant_slug)  # 404 for a shop we do not serve
    body, etag = _widget()
    headers = {
        # Short freshness so a new widget reaches shops soon; the ETag makes rechecks cheap.
        "Cache-Control": "public, max-age=300",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return HTTPResponse(status=304, headers=headers)
    return raw(body, content_type="application/javascript; charset=utf-8", headers=headers)


@bp.get("/channels/<tenant_slug:str>/web/config")
async def widget_config(request: Request, tenant_slug: str) -> HTTPResponse:
    tenant = await request.app.ctx.resolve_tenant(tenant_slug)
    if not key_matches(tenant, request.args.get("key")):
        raise Forbidden("This widget key does not belong to this shop.")
    return json_response(
        {"name": tenant.name, "greeting": tenant.greeting, "theme": theme_of(tenant)},
        # Read from the shop's own pages (another origin); the key is public anyway.
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=60"},
    )


DEMO_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} - chat widget demo</title>
<style>
  /* Deliberately loud host styles: none of them reach inside the widget. */
  body {{ font-family: Georgia, serif; max-width: 40rem; margin: 3rem auto; color: #333; }}
  button {{ background: hotpink !important; }}
  div {{ border-radius: 0; }}
</style>
</head>
<body>
<h1>{name}</h1>
<p>This page embeds the chat widget with one script tag, exactly as a shop would:</p>
<pre><code>{tag_text}</code></pre>
<p>Open the bubble in the corner and ask where order #1001 is (email alex@example.com).</p>
{tag}
</body>
</html>
"""


@bp.get("/channels/<tenant_slug:str>/web/demo")
async def demo_page(request: Request, tenant_slug: str) -> HTTPResponse:
    tenant = await request.app.ctx.resolve_tenant(tenant_slug)
    key = getattr(tenant, "widget_key", None)
    if not key:
        raise ChannelNotConfigured("This shop has no web widget key yet.")
    src = f"{public_origin(request)}/channels/{tenant.slug}/web/widget.js"
    tag = (f'<script src="{html.escape(src, quote=True)}" '
           f'data-key="{html.escape(key, quote=True)}" async></script>')
    return html_response(DEMO_PAGE.format(name=html.escape(tenant.name), tag=tag,
                                          tag_text=html.escape(tag)))


# ---- the conversation socket --------------------------------------------------------------


class Conversation:
    """One socket's conversation after a valid hello: turns in, bot messages out."""

    def __init__(self, request: Request, ws: WebsocketImplProtocol, tenant: Any,
                 conversation_id: str) -> None:
        self.request = request
        self.ws = ws
        self.tenant = tenant
        self.conversation_id = conversation_id
        self.handlers: dict[type, Callable[[Any], Awaitable[None]]] = {
            VisitorMessage: self.on_message,
            Ping: self.on_ping,
            Hello: self.on_hello_again,
        }

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def serve(self) -> None:
        while True:
            raw_frame = await self.ws.recv()
            try:
                frame = parse_frame(raw_frame)
            except FrameError as exc:
                await self.ws.send(error_frame(exc.code, exc.detail))
                continue
            await self.handlers[type(frame)](frame)

    async def on_ping(self, frame: Ping) -> None:
        await self.send({"type": "pong"})

    async def on_hello_again(self, frame: Hello) -> None:
        await self.ws.send(error_frame("bad_frame", "This socket already has a session."))

    async def on_message(self, frame: VisitorMessage) -> None:
        inbound = InboundMessage(
            tenant=self.tenant,
            channel="web",
            user_key=self.conversation_id,
            text=frame.payload or frame.text,
            # Scoped to the conversation: a resend after a reconnect is processed once.
            message_id=(f"web:{self.conversation_id}:{frame.client_id}"
                        if frame.client_id else None),
            client_metadata={"display_text": frame.text} if frame.payload else {},
        )
        await self.send({"type": "typing"})
        try:
            replies = await _shielded_turn(self.request, inbound)
        except UpstreamUnavailable as exc:
            await self.ws.send(error_frame("unavailable", exc.detail))
            await self.send({"type": "done", "id": frame.client_id, "ok": False})
            return
        if replies is None:  # already handled (a resend): its answer is in the history
            await self.send({"type": "done", "id": frame.client_id, "duplicate": True})
            return
        for message in bot_messages(replies):
            await self.send({"type": "bot", **message})
        await self.send({"type": "done", "id": frame.client_id})


_turns: set[asyncio.Task[Any]] = set()


async def _shielded_turn(request: Request, inbound: InboundMessage) -> list[dict[str, Any]] | None:
    # A visitor closing the tab mid-turn must not cancel the turn: its answer is stored and
    # shows up in the history when they come back.
    task = asyncio.create_task(request.app.ctx.relay.handle(inbound))
    _turns.add(task)
    task.add_done_callback(_turns.discard)
    return await asyncio.shield(task)


async def _open_session(request: Request, ws: WebsocketImplProtocol, tenant: Any) -> str | None:
    """Wait for the hello; return the conversation id, or None after closing the socket."""
    raw_frame = await ws.recv(timeout=HELLO_TIMEOUT)
    if raw_frame is None:
        await ws.close(CLOSE_BAD_REQUEST, "hello expected")
        return None
    try:
        frame = parse_frame(raw_frame)
        if not isinstance(frame, Hello):
            raise FrameError("hello_required", "The first frame must be {\"type\": \"hello\"}.")
    except FrameError as exc:
        await ws.send(error_frame(exc.code, exc.detail))
        await ws.close(CLOSE_BAD_REQUEST, exc.code)
        return None
    secret: bytes = request.app.ctx.widget_secret
    if frame.token is None:
        token, conversation_id = visitor_tokens.issue(secret, tenant.id)
        history: list[dict[str, Any]] = []
    else:
        try:
            conversation_id = visitor_tokens.verify(secret, tenant.id, frame.token)
        except visitor_tokens.InvalidToken as exc:
            log.warning("visitor token refused",
                        extra={"tenant_id": tenant.id, "reason": type(exc).__name__})
            await ws.send(error_frame(
                "invalid_token",
                "This conversation cannot be resumed here; start a new one.",
            ))
            await ws.close(CLOSE_FORBIDDEN, "invalid token")
            return None
        # A fresh expiry for a visitor who keeps coming back.
        token, _ = visitor_tokens.issue(secret, tenant.id, conversation_id)
        sender_id = f"{tenant.id}:web:{conversation_id}"
        history = await load_history(request.app.ctx.sessions, tenant.id, sender_id)
    await ws.send(json.dumps({"type": "session", "token": token, "history": history}))
    log.info("web session", extra={"tenant_id": tenant.id, "conversation": conversation_id,
                                   "resumed": frame.token is not None})
    return conversation_id


@bp.websocket("/channels/<tenant_slug:str>/web/socket")
async def socket(request: Request, ws: WebsocketImplProtocol, tenant_slug: str) -> None:
    try:
        try:
            tenant = await request.app.ctx.resolve_tenant(tenant_slug)
        except GatewayError as exc:
            await ws.close(CLOSE_NOT_FOUND, exc.detail[:120])
            return
        if not key_matches(tenant, request.args.get("key")):
            await ws.close(CLOSE_FORBIDDEN, "widget key does not belong to this shop")
            return
        conversation_id = await _open_session(request, ws, tenant)
        if conversation_id is not None:
            await Conversation(request, ws, tenant, conversation_id).serve()
    except (ConnectionClosed, WebsocketClosed):
        return  # the visitor left; any turn in flight finishes on its own
    except Exception:
        # The database or something of ours broke: tell the widget (it reconnects with
        # backoff) instead of leaving a half-open socket.
        log.exception("web socket failed", extra={"tenant_slug": tenant_slug[:64]})
        with contextlib.suppress(Exception):
            await ws.close(1011, "internal error")
