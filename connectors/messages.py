"""The shapes every channel translates to and from, so the pipeline never sees a raw request.

Inbound: a connector verifies and parses a provider request into one `InboundMessage`.
Status: delivery callbacks (Twilio status callbacks, WhatsApp statuses) become `StatusUpdate`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from tenants import Tenant

CHANNELS = ("rest", "web", "sms", "whatsapp", "email")


@dataclass(frozen=True)
class Media:
    """An attachment the visitor sent (image, document, audio): the bot gets its URL."""

    url: str
    content_type: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    tenant: Tenant
    channel: str  # one of CHANNELS
    user_key: str  # the visitor's id on that channel (sender, phone number, address)
    text: str  # may be "" for a media-only message
    message_id: str | None = None  # the provider's id, for dedupe
    client_metadata: dict[str, Any] = field(default_factory=dict)
    media: tuple[Media, ...] = ()
    # Several questions to answer in one reply (email): one Rasa turn each, in order.
    questions: tuple[str, ...] = ()
    # What the channel's sender needs to answer on the same thread: the address the visitor
    # wrote to (our number / phone_number_id / inbound address), email subject and ids, ...
    reply_context: Mapping[str, str] = field(default_factory=dict)
    provider: str | None = None  # "twilio", "meta", "mailgun", "sendgrid"; None for rest/web

    @property
    def sender_id(self) -> str:
        """What Rasa sees; visitors cannot choose the tenant or channel part."""
        return f"{self.tenant.id}:{self.channel}:{self.user_key}"

    def turns(self) -> tuple[str, ...]:
        """The texts to hand to Rasa, one turn each."""
        return self.questions or (self.text,)

    def rasa_metadata(self) -> dict[str, Any]:
        # Ours last, so a client cannot override the tenant or channel.
        meta: dict[str, Any] = {
            **self.client_metadata,
            "tenant_id": self.tenant.id,
            "channel": self.channel,
            "message_id": self.message_id,
        }
        if self.media:
            meta["media"] = [{"url": m.url, "content_type": m.content_type} for m in self.media]
        return meta


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's report on a message we sent."""

    provider_message_id: str
    status: str  # queued | sent | delivered | read | failed | undelivered
    error_code: str | None = None
    error_detail: str | None = None
