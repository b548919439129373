"""Visitor messages in: accepted, deduplicated, kept in order, recovered, answered by Rasa.

Every channel hands what it parsed to the inbox (connectors/channels/contract.py):
- `accept`: a provider message (SMS, WhatsApp, email). It is stored under its provider id (the
  unique key is the dedupe, also across gateway processes; Redis answers repeats before the
  database is asked) and the webhook is acknowledged at once. The bot's turns run in a
  background task, one conversation at a time in arrival order, so a slow LLM never makes a
  provider wait or retry; the answer is stored and handed to the outbox (connectors/outbox.py).
- `converse`: a message answered within the request (REST, widget): stored, one Rasa turn, the
  bot's messages returned (and stored once they are on their way).
- `record_status`: a provider's report on a message we sent, for the outbox's records.
- `recover`: at start-up, provider messages that were acknowledged but never answered (their
  process died) are claimed once and answered.
So a message's path through the gateway is one pass: channel → inbox → Rasa → outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from connectors.errors import BotUnreachable, GatewayError
from connectors.messages import InboundMessage, StatusUpdate
from connectors.outbound import Reply
from connectors.outbox import Outbox
from connectors.rendering import pick_choice
from connectors.urls import request_origin
from core import conversations
from core.conversations import DuplicateMessage
from core.db import utcnow
from core.tasks import TaskSet
from tenants import Tenant, UnknownTenant

log = logging.getLogger(__name__)

# A provider message still unhandled this long after it arrived was lost with its process
# (a live one answers within seconds); recovery claims it. Older ones are not answered late.
RECOVER_AFTER = timedelta(minutes=2)
RECOVER_WITHIN = timedelta(hours=24)
PROVIDER_CHANNELS = ("sms", "whatsapp", "email")
SEEN_TTL = 7 * 24 * 3600  # providers retry for hours (SendGrid: 3 days); keep ids a week
# Said when the bot itself cannot answer (Rasa down after retries): the visitor is not ignored.
APOLOGY = ("Sorry, I'm having trouble answering right now. Please write again in a few "
           "minutes, or reply 'agent' to reach someone from our team.")
# Media without text reaches the bot as this intent (bot/domain/media.yml answers it).
MEDIA_PAYLOAD = "/send_media"


class Bot(Protocol):
    """What the inbox needs of Rasa (connectors/rasa_client.py): one turn."""

    async def turn(self, sender_id: str, text: str,
                   metadata: dict[str, Any]) -> list[dict[str, Any]]:
        ...


class Inbox:
    def __init__(self, sessions: async_sessionmaker, rasa: Bot, outbox: Outbox,
                 redis: Redis | None = None, retry_wait: float = 0.5) -> None:
        self._sessions = sessions
        self._rasa = rasa
        self._outbox = outbox
        self._redis = redis
        self._retry_wait = retry_wait
        # One lock per conversation while it has messages in flight (with their count), so
        # its messages are answered one at a time in arrival order.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._tasks = TaskSet()

    # -- provider messages: acknowledged at once, answered in the background ---------------
    async def accept(self, inbound: InboundMessage) -> bool:
        """Store and schedule; False when this provider message id was seen before."""
        if not self._outbox.sends_for(inbound.provider):
            raise ValueError(f"no sender for provider {inbound.provider!r}")
        if inbound.message_id is None:
            raise ValueError("provider messages need their provider id for dedupe")
        seen_key = f"sb:seen:{inbound.tenant.id}:{inbound.channel}:{inbound.message_id}"
        if not await self._first_sighting(seen_key):
            self._log_duplicate(inbound)
            return False
        try:
            message_pk = await self._store_inbound(inbound, inbound.stored_payload())
        except DuplicateMessage:
            self._log_duplicate(inbound)
            return False
        except BaseException:
            if self._redis is not None:  # let the provider's retry through
                with contextlib.suppress(RedisError):
                    await self._redis.delete(seen_key)
            raise
        self._tasks.spawn(self._answer(inbound, message_pk, time.monotonic(),
                                       request_origin.get()))
        return True

    async def _first_sighting(self, seen_key: str) -> bool:
        """Redis answers repeats before the database is asked; without Redis, or when it
        fails, the database's unique key alone keeps each message once."""
        if self._redis is None:
            return True
        try:
            return bool(await self._redis.set(seen_key, 1, nx=True, ex=SEEN_TTL))
        except RedisError as exc:
            log.warning("dedupe falls back to the database", extra={"error": type(exc).__name__})
            return True

    async def record_status(self, tenant: Tenant, provider: str, channel: str,
                            update: StatusUpdate) -> None:
        await self._outbox.record_status(tenant, provider, channel, update)

    async def _answer(self, inbound: InboundMessage, message_pk: int, accepted_at: float,
                      origin: str | None) -> None:
        try:
            async with self._in_order(inbound.sender_id):
                try:
                    replies = await self._replies(inbound)
                    await self._outbox.send(inbound.recipient(), replies,
                                            await self._store_replies(inbound, replies), origin)
                    log.info("channel turn", extra={
                        "tenant_id": inbound.tenant.id, "channel": inbound.channel,
                        "provider": inbound.provider, "turns": len(replies),
                        "ms": round((time.monotonic() - accepted_at) * 1000, 1)})
                except Exception:
                    log.exception("channel turn failed", extra={
                        "tenant_id": inbound.tenant.id, "channel": inbound.channel,
                        "message_id": inbound.message_id})
                # Not after a cancellation (shutdown): the next start answers it.
                await conversations.mark_handled(self._sessions, message_pk)
        except Exception:
            log.exception("message not marked handled", extra={"message_pk": message_pk})

    @contextlib.asynccontextmanager
    async def _in_order(self, conversation: str) -> AsyncIterator[None]:
        lock, waiting = self._locks.get(conversation) or (asyncio.Lock(), 0)
        self._locks[conversation] = (lock, waiting + 1)
        try:
            async with lock:
                yield
        finally:
            lock, waiting = self._locks[conversation]
            if waiting == 1:
                del self._locks[conversation]
            else:
                self._locks[conversation] = (lock, waiting - 1)

    async def _replies(self, inbound: InboundMessage) -> list[Reply]:
        texts = inbound.turns()
        if len(texts) == 1 and not texts[0].strip():
            texts = (MEDIA_PAYLOAD,) if inbound.media else ()
        replies: list[Reply] = []
        for text in texts:
            if len(texts) == 1:
                text = await self._chosen(inbound, text) or text
            try:
                messages = await self._with_retries(self._rasa_turn, inbound, text)
            except GatewayError:
                messages = [{"text": APOLOGY}]
            if messages:
                replies.append(Reply(question=text if len(texts) > 1 else None,
                                     messages=tuple(messages)))
        return replies

    async def _chosen(self, inbound: InboundMessage, text: str) -> str | None:
        """The payload of a numbered choice the bot offered last, if the visitor picked one."""
        payload = await conversations.last_bot_payload(self._sessions, inbound.tenant.id,
                                                       inbound.sender_id)
        messages = (payload or {}).get("messages") or []
        offered = [m for m in messages if m.get("buttons")][-1:]  # numbered last, read back
        return pick_choice(text, [b for m in offered for b in m["buttons"]])

    async def _with_retries(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        # Only when the message never reached Rasa: after a timeout Rasa may still take it in,
        # and sending it again would put it in the conversation twice.
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3), reraise=True,
            wait=wait_exponential_jitter(multiplier=self._retry_wait, max=8),
            retry=retry_if_exception(lambda exc: isinstance(exc, BotUnreachable)),
        ):
            with attempt:
                return await call(*args)

    async def _store_replies(self, inbound: InboundMessage, replies: list[Reply]) -> int | None:
        if not replies:
            return None
        messages = [m for r in replies for m in r.messages]
        payload: dict[str, Any] = {"messages": messages}
        if any(r.question for r in replies):
            payload["questions"] = [r.question for r in replies]
        try:
            return await self._store(inbound, "out", _text_of(messages), payload)
        except Exception:  # the visitor's answer matters more than our copy of it
            log.exception("bot reply not stored; sending it anyway",
                          extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel})
            return None

    async def recover(self, resolve_tenant: Callable[[str], Awaitable[Tenant]]) -> int:
        """Answer provider messages that were acknowledged but never handled (the process
        that took them died). Returns how many were picked up."""
        try:
            rows = await conversations.claim_unhandled(
                self._sessions, PROVIDER_CHANNELS, RECOVER_AFTER, RECOVER_WITHIN)
        except Exception:  # the gateway serves on; the next start tries again
            log.exception("could not look for unanswered messages")
            return 0
        picked = 0
        for row in rows:
            try:
                tenant = await resolve_tenant(row.tenant_id)
            except UnknownTenant:
                continue
            inbound = InboundMessage.from_stored(tenant, row.sender_id, row.text, row.message_id,
                                                 row.payload)
            if not self._outbox.sends_for(inbound.provider):
                continue
            self._tasks.spawn(self._answer(inbound, row.id, time.monotonic(), None))
            picked += 1
        if picked:
            log.warning("unanswered messages picked up", extra={"messages": picked})
        return picked

    # -- messages answered within the request (REST, widget) --------------------------------
    async def converse(self, inbound: InboundMessage) -> list[dict[str, Any]] | None:
        """The bot's messages, or None when this message id was already handled.

        A message with an id is stored before Rasa sees it: the unique id is the dedupe. A
        message without one (plain REST) is stored while Rasa works on it; either way it is
        stored before we answer, also when Rasa fails. A visitor who leaves mid-turn (closed
        tab, dropped request) does not cancel it: its answer is stored and shows up in the
        conversation's history.
        """
        return await asyncio.shield(self._tasks.spawn(self._converse(inbound)))

    async def _converse(self, inbound: InboundMessage) -> list[dict[str, Any]] | None:
        started = time.perf_counter()
        stored = self._store_inbound(inbound, inbound.client_metadata or None)
        if inbound.message_id is not None:
            try:
                await stored
            except DuplicateMessage:
                self._log_duplicate(inbound)
                return None
            replies = await self._rasa_turn(inbound, inbound.text)
        else:
            stored_result, replies_result = await asyncio.gather(
                stored, self._rasa_turn(inbound, inbound.text), return_exceptions=True)
            if isinstance(stored_result, BaseException):
                raise stored_result
            if isinstance(replies_result, BaseException):
                raise replies_result
            replies = replies_result
        if replies:
            # Our copy of what Rasa's tracker holds: stored once the answer is on its way
            # instead of delaying it, keeping the time it was said. drain() waits on shutdown.
            self._tasks.spawn(self._keep_copy(inbound, replies, utcnow()))
        log.info("turn", extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel,
                                "replies": len(replies),
                                "ms": round((time.perf_counter() - started) * 1000, 1)})
        return replies

    async def _keep_copy(self, inbound: InboundMessage, replies: list[dict[str, Any]],
                         said_at: datetime) -> None:
        try:
            await self._store(inbound, "out", _text_of(replies), {"messages": replies}, at=said_at)
        except Exception:
            log.exception("bot reply not stored", extra={"tenant_id": inbound.tenant.id,
                                                          "channel": inbound.channel})

    # -- shared ---------------------------------------------------------------------------
    async def _rasa_turn(self, inbound: InboundMessage, text: str) -> list[dict[str, Any]]:
        return await self._rasa.turn(inbound.sender_id, text, inbound.rasa_metadata())

    async def _store_inbound(self, inbound: InboundMessage, payload: dict[str, Any] | None) -> int:
        """Raises DuplicateMessage when its provider id was stored before."""
        return await self._store(inbound, "in", inbound.text, payload,
                                 message_id=inbound.message_id)

    async def _store(self, inbound: InboundMessage, direction: str, text: str,
                     payload: dict[str, Any] | None, message_id: str | None = None,
                     at: datetime | None = None) -> int:
        return await conversations.record_message(
            self._sessions, tenant_id=inbound.tenant.id, sender_id=inbound.sender_id,
            channel=inbound.channel, direction=direction, text=text, message_id=message_id,
            payload=payload, at=at)

    def _log_duplicate(self, inbound: InboundMessage) -> None:
        log.info("duplicate message dropped", extra={
            "tenant_id": inbound.tenant.id, "channel": inbound.channel,
            "provider": inbound.provider, "message_id": inbound.message_id})

    async def drain(self, timeout: float = 30.0) -> None:
        """Let turns and replies in flight finish (server shutdown)."""
        await self._tasks.drain(timeout)


def _text_of(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["text"] for m in messages if m.get("text"))
