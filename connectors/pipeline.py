"""Provider channels (SMS, WhatsApp, email): accept fast, answer in the background.

`Inbox.accept` is what a webhook handler calls after it verified and parsed a request: the
message is stored under its provider id (the unique key is the dedupe, also across gateway
processes; Redis answers repeats before the database is asked) and the handler acknowledges at
once. The bot's turn and the outbound reply run in a background task, one conversation at a
time in arrival order, so a slow LLM never makes a provider wait or retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from tenacity import (AsyncRetrying, retry_if_exception, stop_after_attempt,
                      wait_exponential_jitter)

from connectors.credentials import ChannelCredentials
from connectors.errors import BotUnreachable, GatewayError
from connectors.messages import InboundMessage, Media, StatusUpdate
from connectors.outbound import Answer, OutboundContext, SendError, Sender
from connectors.relay import Relay
from connectors.urls import request_origin
from core import deliveries
from core.conversations import DuplicateMessage, MessageRow
from core.db import utcnow
from tenants import Tenant, UnknownTenant

log = logging.getLogger(__name__)

WHATSAPP_WINDOW = timedelta(hours=24)
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


@dataclass(frozen=True)
class Route:
    """Which sender and which credentials section answer a provider's messages."""

    sender: Sender
    credentials_section: str
    status_path: str | None = None  # where the provider reports delivery, under /channels/{slug}


class Inbox:
    def __init__(self, sessions: async_sessionmaker, relay: Relay,
                 credentials: ChannelCredentials, routes: Mapping[str, Route],
                 redis: Any = None, public_base_url: str | None = None,
                 send_attempts: int = 4, retry_wait: float = 0.5) -> None:
        self._sessions = sessions
        self._relay = relay
        self._credentials = credentials
        self._routes = routes  # by InboundMessage.provider
        self._redis = redis
        self._public_base_url = public_base_url
        self._send_attempts = send_attempts
        self._retry_wait = retry_wait
        # One lock per conversation while it has messages in flight (with their count), so
        # its messages are answered one at a time in arrival order.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._pending: set[asyncio.Task[None]] = set()

    # -- the webhook side ----------------------------------------------------------------
    async def accept(self, inbound: InboundMessage, origin: str | None = None) -> bool:
        """Store and schedule; False when this provider message id was seen before."""
        if inbound.provider not in self._routes:
            raise ValueError(f"no sender for provider {inbound.provider!r}")
        if inbound.message_id is None:
            raise ValueError("provider messages need their provider id for dedupe")
        seen_key = f"sb:seen:{inbound.tenant.id}:{inbound.channel}:{inbound.message_id}"
        if not await self._first_sighting(seen_key):
            self._log_duplicate(inbound)
            return False
        try:
            message_pk = await self._relay.store_inbound(inbound)
        except DuplicateMessage:
            self._log_duplicate(inbound)
            return False
        except BaseException:
            if self._redis is not None:  # let the provider's retry through
                with contextlib.suppress(RedisError):
                    await self._redis.delete(seen_key)
            raise
        task = asyncio.create_task(self._process(inbound, message_pk, time.monotonic(),
                                                 origin or request_origin.get()))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
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

    async def record_status(self, tenant: Tenant, channel: str, update: StatusUpdate,
                            provider: str | None = None) -> None:
        provider = provider or _provider_of(channel, update.provider_message_id)
        known = await deliveries.record_status(
            self._sessions, tenant_id=tenant.id, channel=channel, provider=provider,
            provider_message_id=update.provider_message_id, status=update.status,
            error_code=update.error_code, error_detail=update.error_detail)
        log.info("delivery status", extra={
            "tenant_id": tenant.id, "channel": channel, "provider": provider,
            "provider_message_id": update.provider_message_id, "status": update.status,
            "error_code": update.error_code, "ignored": not known})

    # -- the background side -------------------------------------------------------------
    async def _process(self, inbound: InboundMessage, message_pk: int, accepted_at: float,
                       origin: str | None) -> None:
        key = inbound.sender_id
        lock, waiting = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, waiting + 1)
        try:
            async with lock:
                try:
                    answers = await self._answers(inbound)
                    await self._deliver(inbound, answers, origin)
                    log.info("channel turn", extra={
                        "tenant_id": inbound.tenant.id, "channel": inbound.channel,
                        "provider": inbound.provider, "turns": len(answers),
                        "ms": round((time.monotonic() - accepted_at) * 1000, 1)})
                except Exception:
                    log.exception("channel turn failed", extra={
                        "tenant_id": inbound.tenant.id, "channel": inbound.channel,
                        "message_id": inbound.message_id})
                # Not after a cancellation (shutdown): the next start answers it.
                await self._mark_handled(message_pk)
        except Exception:
            log.exception("message not marked handled", extra={"message_pk": message_pk})
        finally:
            lock, waiting = self._locks[key]
            if waiting == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, waiting - 1)

    async def _mark_handled(self, message_pk: int) -> None:
        async with self._sessions() as session:
            await session.execute(update(MessageRow).where(MessageRow.id == message_pk)
                                  .values(handled_at=utcnow()))
            await session.commit()

    async def recover(self, resolve_tenant: Any) -> int:
        """Answer provider messages that were acknowledged but never handled (the process
        that took them died). Each is claimed in one UPDATE, so gateways starting together
        never answer the same message twice. Returns how many were picked up."""
        now = utcnow()
        claim = (
            update(MessageRow)
            .where(MessageRow.direction == "in", MessageRow.handled_at.is_(None),
                   MessageRow.message_id.is_not(None),
                   MessageRow.channel.in_(PROVIDER_CHANNELS),
                   MessageRow.created_at < now - RECOVER_AFTER,
                   MessageRow.created_at > now - RECOVER_WITHIN)
            .values(handled_at=now)
            .returning(MessageRow.id, MessageRow.tenant_id, MessageRow.sender_id,
                       MessageRow.channel, MessageRow.text, MessageRow.message_id,
                       MessageRow.payload)
        )
        try:
            async with self._sessions() as session:
                rows = (await session.execute(claim)).all()
                await session.commit()
        except Exception:  # the gateway serves on; the next start tries again
            log.exception("could not look for unanswered messages")
            return 0
        picked = 0
        for pk, tenant_id, sender_id, channel, text, message_id, payload in rows:
            extra = dict(payload or {})
            provider = extra.pop("provider", None)
            if provider not in self._routes:
                continue
            try:
                tenant = await resolve_tenant(tenant_id)
            except UnknownTenant:
                continue
            inbound = InboundMessage(
                tenant=tenant, channel=channel, user_key=sender_id.split(":", 2)[2],
                text=text or "", message_id=message_id, provider=provider,
                reply_context=extra.pop("reply_context", None) or {},
                media=tuple(Media(m["url"], m.get("content_type"))
                            for m in extra.pop("media", None) or []),
                questions=tuple(extra.pop("questions", None) or ()),
                client_metadata=extra)
            task = asyncio.create_task(self._process(inbound, pk, time.monotonic(), None))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            picked += 1
        if picked:
            log.warning("unanswered messages picked up", extra={"messages": picked})
        return picked

    async def _answers(self, inbound: InboundMessage) -> list[Answer]:
        texts = inbound.turns()
        if len(texts) == 1 and not texts[0].strip():
            texts = (MEDIA_PAYLOAD,) if inbound.media else ()
        answers: list[Answer] = []
        for text in texts:
            if len(texts) == 1:
                text = await self._relay.chosen(inbound, text) or text
            try:
                messages = await self._with_retries(self._relay.turn, inbound, text)
            except GatewayError:
                messages = [{"text": APOLOGY}]
            if messages:
                answers.append(Answer(question=text if len(texts) > 1 else None,
                                      messages=tuple(messages)))
        return answers

    async def _with_retries(self, call: Any, *args: Any) -> Any:
        # Only when the message never reached Rasa: after a timeout Rasa may still take it in,
        # and sending it again would put it in the conversation twice.
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3), reraise=True,
            wait=wait_exponential_jitter(initial=self._retry_wait, max=8),
            retry=retry_if_exception(lambda exc: isinstance(exc, BotUnreachable)),
        ):
            with attempt:
                return await call(*args)

    async def _deliver(self, inbound: InboundMessage, answers: list[Answer],
                       origin: str | None) -> None:
        if not answers:
            return
        route = self._routes[inbound.provider]  # type: ignore[index]
        try:
            message_pk: int | None = await self._relay.store_answers(inbound, answers)
        except Exception:  # the visitor's answer matters more than our copy of it
            log.exception("bot reply not stored; sending it anyway",
                          extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel})
            message_pk = None
        tenant = inbound.tenant
        record = dict(tenant_id=tenant.id, channel=inbound.channel, provider=route.sender.provider,
                      sender_id=inbound.sender_id, message_pk=message_pk)
        try:
            credentials = await self._credentials.section(tenant, route.credentials_section)
            context = OutboundContext(
                tenant=tenant, credentials=credentials, to=inbound.user_key,
                reply_context=inbound.reply_context,
                window_open=await self.window_open(inbound.sender_id, inbound.channel),
                status_callback_url=self._callback_url(tenant, route, origin))
        except GatewayError as exc:  # the channel was switched off meanwhile
            await deliveries.record_send(self._sessions, **record, provider_message_id=None,
                                         status="not_sent", error_detail=exc.detail)
            return
        attempts, sent = 0, []  # parts of a long reply that already went out
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._send_attempts), reraise=True,
                wait=wait_exponential_jitter(initial=self._retry_wait, max=30),
                retry=retry_if_exception(lambda exc: isinstance(exc, SendError) and exc.transient),
            ):
                with attempt:
                    attempts += 1
                    try:
                        sent += await route.sender.send(context, answers, skip=len(sent))
                    except SendError as exc:
                        sent += exc.sent
                        raise
        except SendError as exc:
            for provider_id in sent:
                await deliveries.record_send(self._sessions, **record, status="accepted",
                                             provider_message_id=provider_id, attempts=attempts)
            status = "not_sent" if not context.window_open else "failed"
            await deliveries.record_send(self._sessions, **record, provider_message_id=None,
                                         status=status, attempts=attempts, error_code=exc.code,
                                         error_detail=exc.detail[:500])
            log.warning("reply not delivered", extra={
                "tenant_id": tenant.id, "channel": inbound.channel, "status": status,
                "error_code": exc.code, "attempts": attempts})
            return
        for provider_id in sent:
            await deliveries.record_send(self._sessions, **record, provider_message_id=provider_id,
                                         status="accepted", attempts=attempts)

    async def window_open(self, sender_id: str, channel: str) -> bool:
        """WhatsApp's customer-service window: free text only within 24 h of their last message."""
        if channel != "whatsapp":
            return True
        async with self._sessions() as session:
            last = (await session.execute(select(func.max(MessageRow.created_at)).where(
                MessageRow.sender_id == sender_id, MessageRow.direction == "in"))).scalar()
        return last is not None and utcnow() - _aware(last) < WHATSAPP_WINDOW

    def _callback_url(self, tenant: Tenant, route: Route, origin: str | None) -> str | None:
        base = self._public_base_url or origin
        if not route.status_path or not base:
            return None
        return f"{base}/channels/{tenant.slug}/{route.status_path}"

    def _log_duplicate(self, inbound: InboundMessage) -> None:
        log.info("duplicate message dropped", extra={
            "tenant_id": inbound.tenant.id, "channel": inbound.channel,
            "provider": inbound.provider, "message_id": inbound.message_id})

    async def drain(self, timeout: float = 30.0) -> None:
        """Let replies in flight finish (server shutdown)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)


def _aware(moment: Any) -> Any:
    from datetime import timezone

    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _provider_of(channel: str, provider_message_id: str) -> str:
    if channel == "email":
        return "smtp"
    if channel == "whatsapp" and provider_message_id.startswith("wamid."):
        return "meta"
    return "twilio"
