"""The shapes every channel translates to and from, so the inbox never sees a raw request.

Inbound: a channel verifies and parses a provider request into `InboundMessage`s.
Status: delivery callbacks (Twilio status callbacks, WhatsApp statuses) become `StatusUpdate`s.
Outbound: the bot's answer to a message goes to its `Recipient` (who, where, on which thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.bounds import check_ids, storable_values
from core import cards
from core.sender_ids import SenderId, sender_id
from tenants import Tenant

# The channel a visitor writes on (the middle part of the sender id). A provider (the channel
# registry's entry: rest, web, twilio, meta, email) may serve more than one: Twilio does SMS
# and WhatsApp, and WhatsApp comes through Twilio or Meta.
CHANNELS = ("rest", "web", "sms", "whatsapp", "email")

# Provider names a stored message may carry from before the channel registry (email went by
# its inbound service's name); recovery reads them as today's name.
_FORMER_PROVIDER_NAMES = {"mailgun": "email", "sendgrid": "email"}

# Metadata that is an id a provider or the shop chose, never text a visitor typed: kept as it
# is when card numbers are masked in the rest (a WhatsApp media id is 15 or 16 digits and may
# pass the Luhn check; a dedupe id must stay the same on every retry).
_IDS = frozenset({"message_id", "context_message_id", "reply_id", "media_ids",
                  "button_payload", "timestamp"})


@dataclass(frozen=True)
class Media:
    """An attachment the visitor sent (image, document, audio): the bot gets its URL."""

    url: str
    content_type: str | None = None


@dataclass(frozen=True)
class Recipient:
    """Where the bot's answer to a visitor goes: their conversation, through one provider."""

    tenant: Tenant
    provider: str  # the channel registry's name: "twilio", "meta", "email", ...
    channel: str  # one of CHANNELS
    user_key: str  # the visitor's address on that channel
    # What the provider's sender needs to answer on the same thread: the address the visitor
    # wrote to (our number / phone_number_id / inbound address), email subject and ids, ...
    reply_context: Mapping[str, str] = field(default_factory=dict)

    @property
    def sender_id(self) -> str:
        return sender_id(self.tenant.id, self.channel, self.user_key)


@dataclass(frozen=True)
class InboundMessage:
    tenant: Tenant
    provider: str  # the channel registry's name of the provider it came through
    channel: str  # one of CHANNELS
    user_key: str  # the visitor's id on that channel (sender, phone number, address)
    text: str  # may be "" for a media-only message
    message_id: str | None = None  # the provider's id, for dedupe
    client_metadata: dict[str, Any] = field(default_factory=dict)
    media: tuple[Media, ...] = ()
    # Several questions to answer in one reply (email): one Rasa turn each, in order.
    questions: tuple[str, ...] = ()
    reply_context: Mapping[str, str] = field(default_factory=dict)
    # Who is on the other end, for limits that must hold across senders and sessions (failed
    # order verifications, actions/attempts.py): the request's peer for the widget, whose
    # sender ids the client chooses. None for providers: there the phone number or email
    # address is the client, and the provider vouches for it (`client`); None for REST too,
    # whose caller is the shop's own server speaking for all its visitors: the sender is.
    client_address: str | None = None
    # Email only: whether the provider reported that the From domain passed DMARC (or SPF and
    # DKIM, aligned). Order details are revealed to an email conversation only when it did.
    sender_authenticated: bool | None = None

    def __post_init__(self) -> None:
        # Every channel builds one: an id too long for its column is a 400 here, on all of
        # them, instead of a 500 from the insert (connectors/bounds.py).
        check_ids(self.sender_id, self.message_id)
        # And what the visitor wrote keeps everything a database can store (bounds.py).
        for name in ("text", "questions", "client_metadata", "reply_context"):
            value = getattr(self, name)
            if (cleaned := storable_values(value)) != value:
                object.__setattr__(self, name, cleaned)
        # A card number typed into a chat is kept by nobody, Rasa included (core/cards.py):
        # not in the text, nor in what comes with it and is stored, shown and handed to Rasa
        # as well (an email's subject, a widget's or REST client's metadata, a profile name).
        object.__setattr__(self, "text", cards.mask(self.text))
        object.__setattr__(self, "questions", tuple(map(cards.mask, self.questions)))
        if (masked := cards.mask_values(self.client_metadata, keep=_IDS)) != self.client_metadata:
            object.__setattr__(self, "client_metadata", masked)
        subject = self.reply_context.get("subject")  # the rest: addresses, ids for threading
        if subject and (masked := cards.mask(subject)) != subject:
            object.__setattr__(self, "reply_context", {**self.reply_context, "subject": masked})

    @property
    def sender_id(self) -> str:
        """What Rasa sees; visitors cannot choose the tenant or channel part."""
        return sender_id(self.tenant.id, self.channel, self.user_key)

    @property
    def client(self) -> str:
        """The client's address: the network peer, else the visitor's address on the channel."""
        return self.client_address or self.user_key

    def recipient(self) -> Recipient:
        """Who the answer to this message goes to."""
        return Recipient(self.tenant, self.provider, self.channel, self.user_key,
                         self.reply_context)

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
            # Always set, so a client's metadata cannot claim either.
            "client_address": self.client,
            "sender_authenticated": self.sender_authenticated,
        }
        if self.media:
            meta["media"] = [{"url": m.url, "content_type": m.content_type} for m in self.media]
        return meta

    # -- kept with the stored message, to answer it again after a crash --------------------
    def stored_payload(self) -> dict[str, Any]:
        """Everything besides text and ids that answering this message needs (messages.payload)."""
        payload: dict[str, Any] = {**self.client_metadata, "provider": self.provider,
                                   "reply_context": dict(self.reply_context)}
        if self.media:
            payload["media"] = [{"url": m.url, "content_type": m.content_type}
                                for m in self.media]
        if self.questions:
            payload["questions"] = list(self.questions)
        if self.sender_authenticated is not None:
            payload["sender_authenticated"] = self.sender_authenticated
        return payload

    @classmethod
    def from_stored(cls, tenant: Tenant, sender: str, text: str | None, message_id: str | None,
                    payload: Mapping[str, Any] | None) -> InboundMessage:
        """The message as `stored_payload` kept it (crash recovery)."""
        extra = dict(payload or {})
        provider = str(extra.pop("provider", None) or "")
        scoped = SenderId.parse(sender)
        return cls(
            tenant=tenant,
            provider=_FORMER_PROVIDER_NAMES.get(provider, provider),
            channel=scoped.channel,
            user_key=scoped.user_key,
            text=text or "",
            message_id=message_id,
            reply_context=extra.pop("reply_context", None) or {},
            media=tuple(Media(m["url"], m.get("content_type"))
                        for m in extra.pop("media", None) or []),
            questions=tuple(extra.pop("questions", None) or ()),
            sender_authenticated=extra.pop("sender_authenticated", None),
            client_metadata=extra,
        )


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's report on a message we sent."""

    provider_message_id: str
    status: str  # queued | sent | delivered | read | failed | undelivered
    error_code: str | None = None
    error_detail: str | None = None
