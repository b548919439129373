"""Twilio channel, inbound: SMS and Twilio's WhatsApp, plus delivery-status callbacks.

    POST /channels/{tenant_slug}/twilio/messages   a visitor's SMS or WhatsApp message
    POST /channels/{tenant_slug}/twilio/status     Twilio's report on a message we sent

Both are form-encoded and signed (`X-Twilio-Signature`, HMAC-SHA1 of the public URL and the
sorted parameters with the shop's auth token). Each request is verified with twilio's own
`RequestValidator` over every field that arrived (Twilio adds fields without notice), then
validated into a frozen dataclass (payloads.py), checked against the shop's numbers and handed
to the inbox. The visitor's message is acknowledged at once with empty TwiML; the bot's reply
goes out later through the Messages API (sender.py), so a slow turn never makes Twilio retry.
Credentials and message bodies are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from twilio.request_validator import RequestValidator

from connectors.bounds import TWILIO_BODY
from connectors.channels.contract import Channel, ChannelContext, context_of
from connectors.channels.twilio.payloads import (
    NUMBER_LISTS,
    TwilioInbound,
    TwilioStatus,
    form_params,
    normalised_number,
)
from connectors.errors import Forbidden
from tenants import Tenant

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def verify_signature(url: str, params: Mapping[str, str], signature: str | None,
                     auth_token: str) -> None:
    """403 unless X-Twilio-Signature matches the public URL and every field that arrived."""
    if not signature:
        raise Forbidden("Missing X-Twilio-Signature header.")
    if not RequestValidator(auth_token).validate(url, dict(params), signature):
        raise Forbidden("Invalid X-Twilio-Signature.")


def check_account(credentials: Mapping[str, Any], account_sid: str | None) -> None:
    expected = credentials.get("account_sid")
    if account_sid and expected and account_sid != expected:
        raise Forbidden("This request belongs to another Twilio account.")


def check_receiving_number(credentials: Mapping[str, Any], message: TwilioInbound) -> None:
    numbers = credentials.get(NUMBER_LISTS[message.channel]) or []
    if normalised_number(message.to) not in {normalised_number(n) for n in numbers}:
        raise Forbidden(
            f"The number this {message.channel} message was sent to is not this shop's."
        )


async def verified_form(
    request: Request, ctx: ChannelContext, channel: Channel, tenant_slug: str
) -> tuple[Tenant, Mapping[str, Any], dict[str, str]]:
    """The tenant, its Twilio credentials and the form, once the signature has been checked."""
    tenant = await ctx.tenant(tenant_slug)
    credentials = ctx.credentials(tenant, channel)
    params = form_params(request.body)
    try:
        verify_signature(ctx.public_url(request), params, request.headers.get(SIGNATURE_HEADER),
                         str(credentials["auth_token"]))
    except Forbidden as refused:
        log.warning("twilio request refused",
                    extra={"tenant_id": tenant.id, "path": request.path, "reason": refused.detail})
        raise
    return tenant, credentials, params


def routes(channel: Channel) -> Blueprint:
    bp = Blueprint(channel.name)

    @bp.post("/messages", ctx_body_limit=TWILIO_BODY)
    async def messages(request: Request, tenant_slug: str) -> HTTPResponse:
        ctx = context_of(request)
        tenant, credentials, params = await verified_form(request, ctx, channel, tenant_slug)
        message = TwilioInbound.from_form(params)
        check_account(credentials, message.account_sid)
        check_receiving_number(credentials, message)
        is_new = await ctx.inbox.accept(message.to_inbound(tenant, channel.name))
        log.info("twilio message received", extra={
            "tenant_id": tenant.id, "channel": message.channel,
            "message_sid": message.message_sid, "media": len(message.media),
            "duplicate": not is_new})
        # Same answer for a duplicate: Twilio only needs to know it may stop retrying.
        return HTTPResponse(EMPTY_TWIML, status=200, content_type="text/xml")

    @bp.post("/status", ctx_body_limit=TWILIO_BODY)
    async def status(request: Request, tenant_slug: str) -> HTTPResponse:
        ctx = context_of(request)
        tenant, credentials, params = await verified_form(request, ctx, channel, tenant_slug)
        report = TwilioStatus.from_form(params)
        check_account(credentials, report.account_sid)
        await ctx.inbox.record_status(tenant, channel.name, report.channel, report.to_update())
        log.info("twilio status received", extra={
            "tenant_id": tenant.id, "channel": report.channel,
            "message_sid": report.message_sid, "status": report.status,
            "error_code": report.error_code})
        return HTTPResponse(b"", status=200, content_type="text/plain")

    return bp
