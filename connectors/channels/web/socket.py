"""The widget's conversation socket: a signed visitor session, then turns in and messages out.

    WS /channels/{tenant}/web/socket?key=…

The client opens with {"type": "hello", "token": <token or null>} and gets
{"type": "session", "token", "history"}: no token starts a new conversation; a token that is
not ours for this shop gets {"type": "error", "code": "invalid_token"} and close code 4403,
and nothing of any conversation. Then {"type": "message", "text", "id"?, "payload"?} gets
{"type": "typing"}, one {"type": "bot", ...} per bot message and {"type": "done", "id"}.
A person's reply (the conversation was handed to the shop's team) arrives whenever it is
written as {"type": "bot", "text", "buttons"?, "agent": {"name"}} (push.py), also on a socket
served by another gateway process. Bad frames get {"type": "error", "code", "detail"} and the
socket stays open (frames.py); a
message over the shop's rate limits (connectors/limits.py) gets {"type": "error", "code":
"rate_limited", "detail", "retry_after": <seconds>}, the socket's 429, then its "done", and
the socket is not read for those seconds.

The public widget key only says which shop's widget this is (anyone can read it from the
page); what protects a conversation is the signed visitor token (tokens.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sanic import Request
from sanic.exceptions import WebsocketClosed
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.exceptions import ConnectionClosed

from connectors.channels.contract import Channel, ChannelContext, context_of
from connectors.channels.web import tokens
from connectors.channels.web.frames import (
    FrameError,
    Hello,
    Ping,
    VisitorMessage,
    error_frame,
    parse_frame,
)
from connectors.channels.web.history import bot_messages, load_history
from connectors.channels.web.look import key_matches
from connectors.errors import GatewayError, RateLimited, UpstreamUnavailable
from connectors.messages import InboundMessage
from connectors.proxies import client_address
from core import logs
from core.sender_ids import sender_id
from tenants import Tenant

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 20.0  # seconds a fresh socket may stay silent before its hello
MAX_STALL = 10.0  # seconds a socket over its rate limit is left unread, at most

# WebSocket close codes (4000-4999 are the application's own), as the HTTP answers.
CLOSE_BAD_REQUEST = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


class Conversation:
    """One socket's conversation after a valid hello: turns in, bot messages out."""

    def __init__(self, ctx: ChannelContext, channel: Channel, ws: WebsocketImplProtocol,
                 tenant: Tenant, conversation_id: str, client_address: str | None = None) -> None:
        self.ctx = ctx
        self.client_address = client_address  # the socket's peer (InboundMessage.client)
        self.channel = channel
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
        pushes = self.ctx.web_sockets
        if pushes is None:
            return await self.read_frames()
        # An agent's reply arrives on this socket whenever it is written (push.py).
        with pushes.listen(sender_id(self.tenant.id, "web", self.conversation_id),
                           self.pushed):
            return await self.read_frames()

    async def pushed(self, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            await self.send(frame)

    async def read_frames(self) -> None:
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
            provider=self.channel.name,
            channel="web",
            user_key=self.conversation_id,
            text=frame.payload or frame.text,
            # Scoped to the conversation: a resend after a reconnect is processed once.
            message_id=(f"web:{self.conversation_id}:{frame.client_id}"
                        if frame.client_id else None),
            client_metadata={"display_text": frame.text} if frame.payload else {},
            client_address=self.client_address,
        )
        await self.send({"type": "typing"})
        try:
            # A visitor closing the tab mid-turn does not cancel it (Inbox.converse).
            replies = await self.ctx.inbox.converse(inbound)
        except RateLimited as exc:  # the widget's 429: wait, then write again
            await self.send({"type": "error", "code": "rate_limited", "detail": exc.detail,
                             "retry_after": exc.retry_after})
            await self.send({"type": "done", "id": frame.client_id, "ok": False})
            # And this socket is not read again until then: a flood's frames wait in its own
            # buffers instead of costing the gateway a refusal each. Refusing as fast as one
            # client's 8 sockets could send (700 a second), the gateway's CPU went to them and
            # another shop's reply p95 grew by 41 % (bench/abuse.py).
            await asyncio.sleep(min(exc.retry_after, MAX_STALL))
            return
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


async def open_session(ctx: ChannelContext, ws: WebsocketImplProtocol,
                       tenant: Tenant) -> str | None:
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
    secret = ctx.settings.widget_secret
    if frame.token is None:
        token, conversation_id = tokens.issue(secret, tenant.id)
        history: list[dict[str, Any]] = []
    else:
        try:
            conversation_id = tokens.verify(secret, tenant.id, frame.token)
        except tokens.InvalidToken as exc:
            log.warning("visitor token refused",
                        extra={"tenant_id": tenant.id, "reason": type(exc).__name__})
            await ws.send(error_frame(
                "invalid_token",
                "This conversation cannot be resumed here; start a new one.",
            ))
            await ws.close(CLOSE_FORBIDDEN, "invalid token")
            return None
        # A fresh expiry for a visitor who keeps coming back.
        token, _ = tokens.issue(secret, tenant.id, conversation_id)
        history = await load_history(ctx, tenant.id, sender_id(tenant.id, "web", conversation_id))
    await ws.send(json.dumps({"type": "session", "token": token, "history": history}))
    log.info("web session", extra={"tenant_id": tenant.id,
                                   "sender": logs.visitor(sender_id(tenant.id, "web",
                                                                    conversation_id)),
                                   "resumed": frame.token is not None})
    return conversation_id


async def serve_socket(channel: Channel, request: Request, ws: WebsocketImplProtocol,
                       tenant_slug: str) -> None:
    ctx = context_of(request)
    try:
        try:
            tenant = await ctx.tenant(tenant_slug)
        except GatewayError as exc:
            await ws.close(CLOSE_NOT_FOUND, exc.detail[:120])
            return
        if not key_matches(tenant, request.args.get("key")):
            await ws.close(CLOSE_FORBIDDEN, "widget key does not belong to this shop")
            return
        conversation_id = await open_session(ctx, ws, tenant)
        if conversation_id is not None:
            # The client a trusted proxy forwards, else the peer (connectors/proxies.py).
            await Conversation(ctx, channel, ws, tenant, conversation_id,
                               client_address(request)).serve()
    except (ConnectionClosed, WebsocketClosed):
        return  # the visitor left; any turn in flight finishes on its own
    except Exception:
        # The database or something of ours broke: tell the widget (it reconnects with
        # backoff) instead of leaving a half-open socket.
        log.exception("web socket failed", extra={"tenant_slug": tenant_slug[:64]})
        with contextlib.suppress(Exception):
            await ws.close(1011, "internal error")
