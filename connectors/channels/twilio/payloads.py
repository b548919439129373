"""Twilio's webhook forms, validated at the edge into frozen dataclasses.

Twilio posts form-encoded fields; new ones appear without notice (the signature covers
whatever arrives, so the verified form is kept whole until here). A visitor's message becomes
`TwilioInbound`, a report on a message we sent `TwilioStatus`; anything malformed is a 400 with
the field named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from connectors.errors import BadRequest
from connectors.messages import InboundMessage, Media, StatusUpdate
from tenants import Tenant

WHATSAPP_PREFIX = "whatsapp:"
MAX_MEDIA = 10  # Twilio delivers at most 10 attachments per message
MAX_BODY = 1600 * 4  # generous: WhatsApp bodies run longer than SMS; bigger is not Twilio

# The credentials list that holds the shop's numbers for each channel.
NUMBER_LISTS = {"sms": "sms_numbers", "whatsapp": "whatsapp_numbers"}

# Twilio's MessageStatus values -> ours (connectors.messages.StatusUpdate). Anything else is
# refused with 400 so it shows up in the shop's Twilio debugger instead of vanishing.
STATUSES = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "partially_delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}

_NUMBER_NOISE = re.compile(r"[\s\-().]")


def channel_of(*addresses: str) -> str:
    """"whatsapp" when any address carries the `whatsapp:` prefix, else "sms"."""
    return "whatsapp" if any(a.startswith(WHATSAPP_PREFIX) for a in addresses) else "sms"


def bare_number(address: str) -> str:
    """`whatsapp:+15551234567` -> `+15551234567`; SMS numbers unchanged."""
    return address[len(WHATSAPP_PREFIX):] if address.startswith(WHATSAPP_PREFIX) else address


def normalised_number(number: str) -> str:
    """A number as written anywhere ("whatsapp:+1 (555) 000-1111") in one comparable form."""
    return _NUMBER_NOISE.sub("", bare_number(str(number)))


def form_params(body: bytes) -> dict[str, str]:
    """Every field of a form-encoded body, blank ones kept ("Body=" on a media-only message)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("Body must be UTF-8 form data.") from None
    # Twilio never repeats a field; if a request did, the signature check (over one value)
    # fails, which is the right answer for something Twilio did not send.
    return dict(parse_qsl(text, keep_blank_values=True))


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise BadRequest(f"Twilio form field '{name}' is missing.")
    return value


@dataclass(frozen=True)
class TwilioInbound:
    """A visitor's message as Twilio posts it, validated."""

    message_sid: str
    account_sid: str | None
    from_: str  # as received, e.g. "whatsapp:+4915112345678"
    to: str  # as received: the shop's number the visitor wrote to
    body: str
    media: tuple[Media, ...]
    profile_name: str | None  # WhatsApp display name

    @property
    def channel(self) -> str:
        return channel_of(self.from_)

    @classmethod
    def from_form(cls, params: Mapping[str, str]) -> TwilioInbound:
        body = params.get("Body", "")
        if len(body) > MAX_BODY:
            raise BadRequest("Twilio form field 'Body' is longer than any Twilio message.")
        return cls(
            message_sid=_required(params, "MessageSid"),
            account_sid=params.get("AccountSid") or None,
            from_=_required(params, "From"),
            to=_required(params, "To"),
            body=body,
            media=_media(params),
            profile_name=params.get("ProfileName") or None,
        )

    def to_inbound(self, tenant: Tenant, provider: str) -> InboundMessage:
        return InboundMessage(
            tenant=tenant,
            provider=provider,
            channel=self.channel,
            user_key=bare_number(self.from_),
            text=self.body.strip(),
            message_id=self.message_sid,
            client_metadata={"profile_name": self.profile_name} if self.profile_name else {},
            media=self.media,
            reply_context={"to": self.to, "from": self.from_},
        )


def _media(params: Mapping[str, str]) -> tuple[Media, ...]:
    raw = params.get("NumMedia", "0").strip() or "0"
    if not raw.isdigit():
        raise BadRequest("Twilio form field 'NumMedia' must be a number.")
    found: list[Media] = []
    for index in range(min(int(raw), MAX_MEDIA)):
        url = params.get(f"MediaUrl{index}", "").strip()
        if url:  # a missing URL is Twilio's problem, not a reason to lose the text
            content_type = params.get(f"MediaContentType{index}") or None
            found.append(Media(url=url, content_type=content_type))
    return tuple(found)


@dataclass(frozen=True)
class TwilioStatus:
    """A status callback for a message we sent, validated."""

    message_sid: str
    account_sid: str | None
    status: str  # ours, see STATUSES
    channel: str
    error_code: str | None
    error_message: str | None

    @classmethod
    def from_form(cls, params: Mapping[str, str]) -> TwilioStatus:
        raw_status = _required(params, "MessageStatus").lower()
        status = STATUSES.get(raw_status)
        if status is None:
            raise BadRequest(f"Unknown Twilio MessageStatus '{raw_status[:32]}'.")
        return cls(
            message_sid=_required(params, "MessageSid"),
            account_sid=params.get("AccountSid") or None,
            status=status,
            channel=channel_of(params.get("From", ""), params.get("To", "")),
            error_code=params.get("ErrorCode", "").strip() or None,
            error_message=params.get("ErrorMessage", "").strip() or None,
        )

    def to_update(self) -> StatusUpdate:
        return StatusUpdate(
            provider_message_id=self.message_sid,
            status=self.status,
            error_code=self.error_code,
            error_detail=self.error_message,
        )
