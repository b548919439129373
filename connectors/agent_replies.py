"""Replies a person of the shop wrote (and the bot's satisfaction question), delivered through
the visitor's own channel: the gateway's internal route the admin service calls.

    POST /internal/agent-replies
    Authorization: Bearer <Settings.internal_token>
    {"tenant_id", "sender_id", "message_pk": int|null,
     "messages": [{"text", "buttons": [{"title", "payload"}]}], "author": {"id", "name"}|null}
    -> 202 {"accepted": true}; 401 wrong or no token; 404 the conversation has no inbound
       message (nowhere to answer); 422 a body that is not this.

The admin service records the message (`message_pk`, an outbound messages row with payload
{"agent": ...}); the gateway finds where the conversation's latest inbound message came from
(provider, the visitor's address, the thread: `InboundMessage.from_stored`, as crash recovery
does) and answers at once, sending in the background (core/tasks.TaskSet):
- provider channels (SMS, WhatsApp, email): the outbox, as the bot's replies go (SMS split,
  WhatsApp's 24-hour window and the shop's template outside it, email threaded with
  In-Reply-To/References, retries, `deliveries` rows linked to `message_pk`);
- the web widget: pushed live to the conversation's open sockets, on any gateway process
  (connectors/channels/web/push.py); the widget's history shows the stored message later;
- REST: POSTed to the shop's callback URL when it set one, signed and retried
  (connectors/channels/rest/callbacks.py), recorded in `deliveries`; clients also poll
  `GET /channels/<shop>/rest/messages`.
A message sent without `message_pk` (the bot speaking outside a turn, author null) is stored
here first, so transcripts, the widget's history and the poll endpoint show it too.

Agents' pages hear about deliveries (`message.delivery`) when a provider's status callback
moves a delivery of an agent's message (`agent_delivery`, called by the inbox).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from connectors.channels.contract import SealedCredentials
from connectors.channels.rest.callbacks import CallbackFailed, RestCallbacks, callback_body
from connectors.channels.rest.credentials import callback_of
from connectors.channels.web.history import bot_messages
from connectors.channels.web.push import WebPush
from connectors.messages import InboundMessage, Recipient
from connectors.outbound import Reply
from connectors.outbox import Outbox
from core import deliveries
from core.conversations import MessageRow, record_message
from core.deliveries import DeliveryRow
from core.sender_ids import NotTenantScoped, SenderId
from core.settings import Secret
from core.tasks import TaskSet
from tenants import Tenant, UnknownTenant

log = logging.getLogger(__name__)

PATH = "/internal/agent-replies"
BODY_LIMIT = 512 * 1024  # 20 messages of 4096 characters, as JSON, with room to spare
# Channels answered within a request: no provider sender, their own way out.
WEB, REST = "web", "rest"


class Button(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    payload: str = Field(min_length=1, max_length=500)


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str = Field(min_length=1, max_length=4096)
    buttons: tuple[Button, ...] = Field(default=(), max_length=12)

    def rasa_shape(self) -> dict[str, Any]:
        """As the bot's messages are kept and rendered (Rasa REST dicts)."""
        message: dict[str, Any] = {"text": self.text}
        if self.buttons:
            message["buttons"] = [b.model_dump() for b in self.buttons]
        return message


class Author(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)


class AgentReplyIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tenant_id: str = Field(min_length=1, max_length=36)
    sender_id: str = Field(min_length=1, max_length=255)
    message_pk: int | None = None
    messages: tuple[Message, ...] = Field(min_length=1, max_length=20)
    author: Author | None = None


class NoConversation(LookupError):
    """Nothing to answer: no such shop, or no message of the visitor's to reply to."""


@dataclass(frozen=True)
class Delivery:
    recipient: Recipient
    reply: AgentReplyIn
    message_pk: int | None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m.rasa_shape() for m in self.reply.messages]

    @property
    def author(self) -> dict[str, str] | None:
        return self.reply.author.model_dump() if self.reply.author is not None else None


class AgentReplies:
    def __init__(self, sessions: async_sessionmaker, tenants: Callable[[str], Awaitable[Tenant]],
                 outbox: Outbox, sealed: SealedCredentials, web: WebPush,
                 callbacks: RestCallbacks) -> None:
        self._sessions = sessions
        self._tenants = tenants
        self._outbox = outbox
        self._sealed = sealed
        self._web = web
        self._callbacks = callbacks
        self._tasks = TaskSet()

    async def accept(self, reply: AgentReplyIn, origin: str | None) -> None:
        """Where it goes is found now (NoConversation otherwise); it is sent in the
        background."""
        recipient = await self.recipient(reply.tenant_id, reply.sender_id)
        message_pk = reply.message_pk
        if message_pk is None:
            message_pk = await self._store(recipient, reply)
        delivery = Delivery(recipient, reply, message_pk)
        self._tasks.spawn(self._deliver(delivery, origin), name="agent-reply")

    async def recipient(self, tenant_id: str, sender: str) -> Recipient:
        try:
            scoped = SenderId.parse(sender)
            if scoped.tenant_id != tenant_id:
                raise NoConversation("the conversation is not this shop's")
            tenant = await self._tenants(tenant_id)
        except (NotTenantScoped, UnknownTenant):
            raise NoConversation("no such conversation") from None
        async with self._sessions() as session:
            last = (await session.execute(
                select(MessageRow.text, MessageRow.message_id, MessageRow.payload)
                .where(MessageRow.tenant_id == tenant_id, MessageRow.sender_id == sender,
                       MessageRow.direction == "in")
                .order_by(MessageRow.id.desc()).limit(1))).first()
        if last is None:
            raise NoConversation("the visitor never wrote in this conversation")
        payload = dict(last.payload or {}) if isinstance(last.payload, dict) else {}
        if scoped.channel in (WEB, REST):  # answered within requests: no provider stored
            payload["provider"] = scoped.channel
        return InboundMessage.from_stored(tenant, sender, last.text, last.message_id,
                                          payload).recipient()

    async def _store(self, recipient: Recipient, reply: AgentReplyIn) -> int:
        messages = [m.rasa_shape() for m in reply.messages]
        payload: dict[str, Any] = {"messages": messages}
        if reply.author is not None:
            payload["agent"] = reply.author.model_dump()
        return await record_message(
            self._sessions, tenant_id=recipient.tenant.id, sender_id=recipient.sender_id,
            channel=recipient.channel, direction="out", payload=payload,
            text="\n".join(m["text"] for m in messages))

    async def _deliver(self, delivery: Delivery, origin: str | None) -> None:
        recipient = delivery.recipient
        facts = {"tenant_id": recipient.tenant.id, "channel": recipient.channel,
                 "message_pk": delivery.message_pk}
        try:
            if recipient.provider == WEB:
                await self._push_to_widget(delivery)
            elif recipient.provider == REST:
                await self._call_back(delivery)
            elif self._outbox.sends_for(recipient.provider):
                await self._outbox.send(recipient, [Reply(None, tuple(delivery.messages))],
                                        delivery.message_pk, origin)
            else:
                log.error("agent reply not sent: no sender for the provider",
                          extra={**facts, "provider": recipient.provider})
                return
        except Exception:
            log.exception("agent reply not delivered", extra=facts)
            return
        log.info("agent reply handed over", extra=facts)

    async def _push_to_widget(self, delivery: Delivery) -> None:
        author = delivery.author
        said_by = {"agent": {"name": author["name"]}} if author is not None else {}
        frames = [{"type": "bot", **message, **said_by}
                  for message in bot_messages(delivery.messages)]
        await self._web.push(delivery.recipient.sender_id, frames)

    async def _call_back(self, delivery: Delivery) -> None:
        recipient = delivery.recipient
        config = callback_of(self._sealed.all(recipient.tenant))
        if config is None:
            return  # the shop polls GET /channels/<shop>/rest/messages
        record: dict[str, Any] = dict(
            tenant_id=recipient.tenant.id, channel=recipient.channel, provider=REST,
            sender_id=recipient.sender_id, message_pk=delivery.message_pk,
            provider_message_id=None)
        for message in delivery.messages:
            body = callback_body(recipient.user_key, message, delivery.author)
            try:
                attempts = await self._callbacks.post(config, body)
            except CallbackFailed as exc:
                await deliveries.record_send(self._sessions, **record, status="failed",
                                             error_code=str(exc.status or ""),
                                             error_detail=exc.detail)
                log.warning("REST callback failed", extra={
                    "tenant_id": recipient.tenant.id, "status": exc.status,
                    "transient": exc.transient})
                return
            await deliveries.record_send(self._sessions, **record, status="delivered",
                                         attempts=attempts)

    async def drain(self, timeout: float = 30.0) -> None:
        await self._tasks.drain(timeout)

    @property
    def busy(self) -> bool:
        return bool(len(self._tasks))


async def agent_delivery(sessions: async_sessionmaker, tenant_id: str, provider: str,
                         provider_message_id: str) -> tuple[str, int] | None:
    """(sender id, message pk) when this provider message carried an agent's reply (its
    messages row has payload {"agent": ...}); else None."""
    async with sessions() as session:
        found = (await session.execute(
            select(DeliveryRow.sender_id, DeliveryRow.message_pk, MessageRow.payload)
            .join(MessageRow, MessageRow.id == DeliveryRow.message_pk)
            .where(DeliveryRow.provider == provider,
                   DeliveryRow.provider_message_id == provider_message_id,
                   DeliveryRow.tenant_id == tenant_id))).first()
    if found is None or found.sender_id is None or found.message_pk is None:
        return None
    payload = found.payload
    if not isinstance(payload, dict) or not isinstance(payload.get("agent"), dict):
        return None
    return found.sender_id, found.message_pk


def routes(token: Secret) -> Blueprint:
    bp = Blueprint("internal")
    expected = f"Bearer {token.reveal()}".encode()

    @bp.post(PATH, ctx_body_limit=BODY_LIMIT)
    async def agent_replies(request: Request) -> HTTPResponse:
        given = (request.headers.get("authorization") or "").strip().encode()
        # Constant time, and no token at all is refused like a wrong one.
        if not given or not hmac.compare_digest(given, expected):
            return json({"detail": "This route is for Switchboard's own services."},
                        status=401, headers={"WWW-Authenticate": 'Bearer realm="internal"'})
        try:
            reply = AgentReplyIn.model_validate_json(request.body or b"")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)[:5])
            return json({"detail": f"Not an agent reply: {problems}"}, status=422)
        service: AgentReplies = request.app.ctx.agent_replies
        try:
            await service.accept(reply, f"{request.scheme}://{request.host}")
        except NoConversation as exc:
            return json({"detail": f"Nothing to answer: {exc}."}, status=404)
        return json({"accepted": True}, status=202)

    return bp
