"""Email channel, inbound: a Mailgun route (forward) or a SendGrid Inbound Parse webhook.

    POST /channels/{tenant_slug}/email/mailgun    (form: Mailgun's parsed-message fields)
    POST /channels/{tenant_slug}/email/sendgrid   (multipart: SendGrid Inbound Parse fields)

Each shop picks one service (credentials["email"]["inbound"]); the other endpoint answers 404
like any channel the shop has not set up. Verify (verification.py) → parse (parsing.py) → check
the receiving address → hand off to the inbox; the reply goes out later through SMTP
(sender.py) on the same thread. Quoted history and signature are cut and several questions
become several turns (text.py). Auto-replies (Auto-Submitted other than "no", Precedence
bulk/junk/list/auto_reply, X-Autoreply) and mail from our own address are acknowledged and
ignored, to avoid mail loops.

Bounded input (connectors/bounds.py): a post may be up to 32 MB (the providers' own message
limits plus the form around them); Mailgun's signature is checked on the raw body before the
form is parsed (verification.py); a Message-ID longer than its column is replaced by a stable
hash of itself (a real mail may carry one, and it must still be answered once: the threading
headers of the reply keep the original), while a sender address too long to store is refused
like any malformed mail (Mailgun: 406).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from sanic import Blueprint, Request
from sanic.request import RequestParameters
from sanic.response import HTTPResponse
from sanic.response import json as json_response
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from connectors.bounds import EMAIL_BODY, MAX_ID
from connectors.channels.contract import Channel, ChannelContext, context_of
from connectors.channels.email.parsing import ParsedEmail, parse_mailgun, parse_sendgrid
from connectors.channels.email.text import split_questions, strip_reply
from connectors.channels.email.verification import (
    mailgun_signed_fields,
    token_fits,
    verify_mailgun,
    verify_sendgrid,
)
from connectors.errors import BadRequest, ChannelNotConfigured, Forbidden, NotAcceptable
from connectors.messages import InboundMessage
from tenants import Tenant

log = logging.getLogger(__name__)

MAX_TEXT = 8000
_AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}


def _is_auto_reply(headers: Mapping[str, str]) -> bool:
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and auto != "no":
        return True
    if headers.get("precedence", "").strip().lower() in _AUTO_PRECEDENCE:
        return True
    return "x-autoreply" in headers or "x-autorespond" in headers


def storable_id(message_id: str) -> str:
    """The Message-ID as stored for dedupe: itself, or a stable hash when it is too long."""
    if len(message_id) <= MAX_ID:
        return message_id
    return f"<{hashlib.sha256(message_id.encode()).hexdigest()}@long-id.switchboard.invalid>"


def to_inbound(tenant: Tenant, provider: str, credentials: Mapping[str, Any],
               mail: ParsedEmail) -> InboundMessage | None:
    """The InboundMessage for the inbox, or None when there is nothing to answer."""
    address = str(credentials.get("address") or "").strip().lower()
    if not address or address not in mail.recipients:
        raise Forbidden("This email was not sent to the shop's support address.")
    if _is_auto_reply(mail.headers) or mail.sender == address:
        return None
    text = strip_reply(mail.text)[:MAX_TEXT]
    if not text and not mail.media:
        return None
    turns = split_questions(text) if text else []
    return InboundMessage(
        tenant=tenant,
        provider=provider,
        channel="email",
        user_key=mail.sender,
        # One question: the turn itself (greeting and sign-off lines dropped, so "Hi," does
        # not make the bot answer a greeting); several: the whole text, turns in `questions`.
        text=turns[0] if len(turns) == 1 else text,
        message_id=storable_id(mail.message_id),
        media=mail.media,
        questions=tuple(turns) if len(turns) > 1 else (),
        sender_authenticated=mail.authenticated,
        reply_context={
            "to": address,
            "subject": mail.subject,
            "message_id": mail.message_id,
            "references": mail.references,
        },
    )


def routes(channel: Channel) -> Blueprint:
    bp = Blueprint(channel.name)

    async def shop(ctx: ChannelContext, slug: str,
                   service: str) -> tuple[Tenant, Mapping[str, Any]]:
        tenant = await ctx.tenant(slug)
        credentials = ctx.credentials(tenant, channel)
        if str(credentials.get("inbound") or "").lower() != service:
            raise ChannelNotConfigured(f"This shop does not receive email through {service}.")
        return tenant, credentials

    async def hand_off(ctx: ChannelContext, tenant: Tenant, credentials: Mapping[str, Any],
                       mail: ParsedEmail, service: str) -> HTTPResponse:
        try:
            inbound = to_inbound(tenant, channel.name, credentials, mail)
        except BadRequest as malformed:  # a sender address too long to store
            if service == "mailgun":
                raise NotAcceptable(malformed.detail) from None
            raise
        if inbound is None:
            log.info("email ignored", extra={"tenant": tenant.slug, "service": service,
                                             "message_id": mail.message_id})
            return json_response({"status": "ignored"})
        new = await ctx.inbox.accept(inbound)
        log.info("email accepted", extra={
            "tenant": tenant.slug, "service": service, "message_id": mail.message_id,
            "duplicate": not new, "turns": len(inbound.turns()), "media": len(inbound.media)})
        return json_response({"status": "ok"})

    @bp.post("/mailgun", ctx_body_limit=EMAIL_BODY)
    async def mailgun(request: Request, tenant_slug: str) -> HTTPResponse:
        ctx = context_of(request)
        tenant, credentials = await shop(ctx, tenant_slug, "mailgun")
        signed = mailgun_signed_fields(request.body or b"",
                                       request.headers.get("content-type", ""))
        verify_mailgun(str(credentials.get("mailgun_signing_key") or ""),
                       signed.get("timestamp", ""), signed.get("token", ""),
                       signed.get("signature", ""))
        # Only now is the form parsed (Sanic parses request.form on first use).
        fields = request.form or RequestParameters()
        form: dict[str, str] = {name: str(fields.get(name) or "") for name in fields}
        if not await token_fits(ctx.replay, signed["token"], form):
            raise Forbidden("This Mailgun token was already used for another message.")
        uploads = request.files or RequestParameters()
        files = {name: (f.name, f.type) for name, f in
                 ((n, uploads.get(n)) for n in uploads) if f is not None}
        try:
            mail = parse_mailgun(form, files)
        except BadRequest as malformed:
            # Signed by Mailgun but unreadable: it will be the same on every retry, and 406 is
            # Mailgun's "do not retry" (any other error is retried for 8 hours).
            raise NotAcceptable(malformed.detail) from None
        return await hand_off(ctx, tenant, credentials, mail, "mailgun")

    @bp.post("/sendgrid", ctx_body_limit=EMAIL_BODY)
    async def sendgrid(request: Request, tenant_slug: str) -> HTTPResponse:
        ctx = context_of(request)
        tenant, credentials = await shop(ctx, tenant_slug, "sendgrid")
        verify_sendgrid(
            str(credentials.get("sendgrid_public_key") or ""),
            request.body or b"",
            request.headers.get(EventWebhookHeader.SIGNATURE),
            request.headers.get(EventWebhookHeader.TIMESTAMP),
        )
        parsed = parse_sendgrid(request.body or b"", request.headers.get("content-type", ""))
        return await hand_off(ctx, tenant, credentials, parsed, "sendgrid")

    return bp
