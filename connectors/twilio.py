"""Twilio channel, inbound: SMS and Twilio's WhatsApp, plus delivery-status callbacks.

    POST /channels/{tenant_slug}/twilio/messages   a visitor's SMS or WhatsApp message
    POST /channels/{tenant_slug}/twilio/status     Twilio's report on a message we sent

Both are form-encoded and signed (`X-Twilio-Signature`, HMAC-SHA1 of the public URL and the
sorted parameters with the shop's auth token). Each request is verified with twilio's own
`RequestValidator` over every field that arrived (Twilio adds fields without notice), then
validated into a frozen dataclass, checked against the shop's numbers and handed on. The
visitor's message is acknowledged at once with empty TwiML; the bot's reply goes out later
through the Messages API (connectors/twilio_sender.py), so a slow turn never makes Twilio
retry. Credentials and message bodies are never logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from twilio.request_validator import RequestValidator

from connectors.errors import BadRequest, ChannelNotConfigured, Forbidden
from connectors.messages import InboundMessage, Media, StatusUpdate
from connectors.urls import public_url
from tenants import Tenant

log = logging.getLogger(__name__)

bp = Blueprint("twilio_channel")

CREDENTIALS_SECTION = "twilio"
PROVIDER = "twilio"
WHATSAPP_PREFIX = "whatsapp:"
SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
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


def _normalised(number: str) -> str:
    return _NUMBER_NOISE.sub("", bare_number(str(number)))


# -- the edge: untrusted form -> frozen dataclasses -------------------------------------------


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
    def from_form(cls, params: Mapping[str, str]) -> "TwilioInbound":
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

    def to_inbound(self, tenant: Tenant) -> InboundMessage:
        return InboundMessage(
            tenant=tenant,
            channel=self.channel,
            user_key=bare_number(self.from_),
            text=self.body.strip(),
            message_id=self.message_sid,
            client_metadata={"profile_name": self.profile_name} if self.profile_name else {},
            media=self.media,
            reply_context={"to": self.to, "from": self.from_},
            provider=PROVIDER,
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
    def from_form(cls, params: Mapping[str, str]) -> "TwilioStatus":
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


# -- verification ------------------------------------------------------------------------------


async def _credentials(request: Request, tenant: Tenant) -> Mapping[str, Any]:
    credentials = await request.app.ctx.channel_credentials(tenant, CREDENTIALS_SECTION)
    if not credentials.get("auth_token"):
        # Never accept unsigned traffic because a secret is missing: the channel is off.
        raise ChannelNotConfigured("Twilio is not fully configured for this shop.")
    return credentials


def verify_signature(request: Request, params: Mapping[str, str], auth_token: str) -> None:
    """403 unless X-Twilio-Signature matches the public URL and every field that arrived."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise Forbidden("Missing X-Twilio-Signature header.")
    if not RequestValidator(auth_token).validate(public_url(request), dict(params), signature):
        raise Forbidden("Invalid X-Twilio-Signature.")


def _check_account(credentials: Mapping[str, Any], account_sid: str | None) -> None:
    expected = credentials.get("account_sid")
    if account_sid and expected and account_sid != expected:
        raise Forbidden("This request belongs to another Twilio account.")


def _check_receiving_number(credentials: Mapping[str, Any], message: TwilioInbound) -> None:
    numbers = credentials.get(NUMBER_LISTS[message.channel]) or []
    if _normalised(message.to) not in {_normalised(n) for n in numbers}:
        raise Forbidden(
            f"The number this {message.channel} message was sent to is not this shop's."
        )


async def _verified_form(
    request: Request, tenant_slug: str
) -> tuple[Tenant, Mapping[str, Any], dict[str, str]]:
    """The tenant, its Twilio credentials and the form, once the signature has been checked."""
    tenant = await request.app.ctx.resolve_tenant(tenant_slug)
    credentials = await _credentials(request, tenant)
    params = form_params(request.body)
    try:
        verify_signature(request, params, str(credentials["auth_token"]))
    except Forbidden as refused:
        log.warning(
            "twilio request refused",
            extra={"tenant_id": tenant.id, "path": request.path, "reason": refused.detail},
        )
        raise
    return tenant, credentials, params


# -- routes ------------------------------------------------------------------------------------


@bp.post("/channels/<tenant_slug:str>/twilio/messages")
async def messages(request: Request, tenant_slug: str) -> HTTPResponse:
    tenant, credentials, params = await _verified_form(request, tenant_slug)
    message = TwilioInbound.from_form(params)
    _check_account(credentials, message.account_sid)
    _check_receiving_number(credentials, message)
    is_new = await request.app.ctx.inbox.accept(message.to_inbound(tenant))
    log.info(
        "twilio message received",
        extra={
            "tenant_id": tenant.id,
            "channel": message.channel,
            "message_sid": message.message_sid,
            "media": len(message.media),
            "duplicate": not is_new,
        },
    )
    # Same answer for a duplicate: Twilio only needs to know it may stop retrying.
    return HTTPResponse(EMPTY_TWIML, status=200, content_type="text/xml")


@bp.post("/channels/<tenant_slug:str>/twilio/status")
async def status(request: Request, tenant_slug: str) -> HTTPResponse:
    tenant, credentials, params = await _verified_form(request, tenant_slug)
    report = TwilioStatus.from_form(params)
    _check_account(credentials, report.account_sid)
    await request.app.ctx.deliveries.record_status(tenant, report.channel, report.to_update())
    log.info(
        "twilio status received",
        extra={
            "tenant_id": tenant.id,
            "channel": report.channel,
            "message_sid": report.message_sid,
            "status": report.status,
            "error_code": report.error_code,
        },
    )
    return HTTPResponse(b"", status=200, content_type="text/plain")
