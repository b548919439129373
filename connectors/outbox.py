"""Sending the bot's (later also agents') replies out through the visitor's provider.

`Outbox.send` is the one way out for every provider channel: it opens the shop's credentials
for the provider, decides whether WhatsApp's 24-hour window is open, lets the provider's sender
render the replies into provider messages (text for the channel, split by the channel's rules,
or the shop's template outside the window), sends them one by one with retries and backoff on
transient failures without ever resending a part that went out, and records each provider
message in the `deliveries` table; providers' status callbacks move those rows forward
(`record_status`). A send that cannot be made is recorded too (`not_sent` / `failed`, with why).
Each status is counted too, by channel (connectors/metrics.py `DELIVERIES`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from connectors import metrics
from connectors.channels.contract import Channel, SealedCredentials
from connectors.errors import GatewayError
from connectors.messages import Recipient, StatusUpdate
from connectors.outbound import OutboundContext, Reply, Sender, SendError
from core import deliveries
from core.conversations import last_inbound_at
from core.db import utcnow
from tenants import Tenant

log = logging.getLogger(__name__)

WHATSAPP_WINDOW = timedelta(hours=24)


class Outbox:
    def __init__(self, sessions: async_sessionmaker, sealed: SealedCredentials,
                 channels: Mapping[str, Channel], senders: Mapping[str, Sender[Any]],
                 public_base_url: str | None = None, send_attempts: int = 4,
                 retry_wait: float = 0.5) -> None:
        self._sessions = sessions
        self._sealed = sealed
        self._channels = channels  # by name, those with a sender
        self._senders = senders  # by channel name
        self._public_base_url = public_base_url
        self._send_attempts = send_attempts
        self._retry_wait = retry_wait

    def sends_for(self, provider: str) -> bool:
        return provider in self._senders

    async def send(self, recipient: Recipient, replies: Sequence[Reply],
                   message_pk: int | None = None, origin: str | None = None) -> None:
        """Deliver `replies` (stored as our messages row `message_pk`) to the recipient.
        `origin`: where the provider reached us, for status callbacks when PUBLIC_BASE_URL is
        not set."""
        if not replies:
            return
        channel, sender = self._channels[recipient.provider], self._senders[recipient.provider]
        tenant = recipient.tenant
        record: dict[str, Any] = dict(
            tenant_id=tenant.id, channel=recipient.channel, provider=channel.name,
            sender_id=recipient.sender_id, message_pk=message_pk)
        try:
            context = OutboundContext(
                tenant=tenant, credentials=channel.section_of(self._sealed.all(tenant)),
                to=recipient.user_key, reply_context=recipient.reply_context,
                window_open=await self.window_open(recipient.sender_id, recipient.channel),
                status_callback_url=self._callback_url(channel, tenant, origin))
        except GatewayError as exc:  # the channel was switched off meanwhile
            await deliveries.record_send(self._sessions, **record, provider_message_id=None,
                                         status="not_sent", error_detail=exc.detail)
            metrics.delivery(recipient.channel, "not_sent")
            return
        attempts, sent = 0, list[str]()  # parts of a long reply that already went out
        try:
            parts = sender.render(context, replies)
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._send_attempts), reraise=True,
                wait=wait_exponential_jitter(multiplier=self._retry_wait, max=30),
                retry=retry_if_exception(lambda exc: isinstance(exc, SendError) and exc.transient),
            ):
                with attempt:
                    attempts += 1
                    for part in parts[len(sent):]:
                        sent.append(await sender.deliver(context, part))
        except SendError as exc:
            for provider_id in sent:
                await deliveries.record_send(self._sessions, **record, status="accepted",
                                             provider_message_id=provider_id, attempts=attempts)
            status = "not_sent" if not context.window_open else "failed"
            await deliveries.record_send(self._sessions, **record, provider_message_id=None,
                                         status=status, attempts=max(attempts, 1),
                                         error_code=exc.code, error_detail=exc.detail[:500])
            metrics.delivery(recipient.channel, "accepted", len(sent))
            metrics.delivery(recipient.channel, status)
            log.warning("reply not delivered", extra={
                "tenant_id": tenant.id, "channel": recipient.channel, "provider": channel.name,
                "status": status, "error_code": exc.code, "attempts": attempts})
            return
        for provider_id in sent:
            await deliveries.record_send(self._sessions, **record, provider_message_id=provider_id,
                                         status="accepted", attempts=attempts)
        metrics.delivery(recipient.channel, "accepted", len(sent))

    async def record_status(self, tenant: Tenant, provider: str, channel: str,
                            update: StatusUpdate) -> None:
        known = await deliveries.record_status(
            self._sessions, tenant_id=tenant.id, channel=channel, provider=provider,
            provider_message_id=update.provider_message_id, status=update.status,
            error_code=update.error_code, error_detail=update.error_detail)
        metrics.delivery(channel, update.status)
        log.info("delivery status", extra={
            "tenant_id": tenant.id, "channel": channel, "provider": provider,
            "provider_message_id": update.provider_message_id, "status": update.status,
            "error_code": update.error_code, "ignored": not known})

    async def window_open(self, sender_id: str, channel: str) -> bool:
        """WhatsApp's customer-service window: free text only within 24 h of their last message."""
        if channel != "whatsapp":
            return True
        last = await last_inbound_at(self._sessions, sender_id)
        return last is not None and utcnow() - last < WHATSAPP_WINDOW

    def _callback_url(self, channel: Channel, tenant: Tenant, origin: str | None) -> str | None:
        base = self._public_base_url or origin
        return channel.status_callback_url(base, tenant.slug) if base else None
