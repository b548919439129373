"""WhatsApp through Meta's Cloud API: the webhook handshake, then messages and statuses.

    GET  /channels/{tenant_slug}/whatsapp/webhook
         ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…
         -> 200 text/plain challenge when the token is the shop's verify_token, else 403
    POST /channels/{tenant_slug}/whatsapp/webhook   (X-Hub-Signature-256: sha256=<hex>)
         -> 200 {"status": "ok"}

The signature is an HMAC-SHA256 of the raw body with the Meta app secret; a missing or bad one
is refused before the body is even parsed (Rasa's Facebook channel answers 200 on a failed check
— the pattern to avoid). Every change must be for the shop's own phone_number_id. Meta delivers at
least once and retries non-200 answers, so the handler only translates (payloads.py) and hands
off: the inbox dedupes wamids and runs the bot turn in the background.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response
from sanic.response import text as text_response

from connectors.bounds import META_BODY
from connectors.channels.contract import Channel, context_of
from connectors.channels.meta.payloads import (
    KNOWN_STATUSES,
    parse_notification,
    to_inbound,
    to_status_update,
)
from connectors.errors import Forbidden

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"


def signature_valid(app_secret: str, body: bytes, header: str | None) -> bool:
    """`sha256=<hex HMAC-SHA256 of the raw body>`, compared in constant time."""
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256="):].strip().lower())


def routes(channel: Channel) -> Blueprint:
    bp = Blueprint(channel.name)

    @bp.get("/webhook")
    async def verify(request: Request, tenant_slug: str) -> HTTPResponse:
        ctx = context_of(request)
        tenant = await ctx.tenant(tenant_slug)
        expected = str(ctx.credentials(tenant, channel)["verify_token"])
        mode = request.args.get("hub.mode")
        token = request.args.get("hub.verify_token") or ""
        challenge = request.args.get("hub.challenge")
        if mode != "subscribe" or not challenge or not hmac.compare_digest(
                token.encode("utf-8"), expected.encode("utf-8")):
            log.warning("whatsapp verification refused",
                        extra={"tenant": tenant.slug, "mode": mode})
            raise Forbidden("Webhook verification failed.")
        log.info("whatsapp webhook verified", extra={"tenant": tenant.slug})
        return text_response(challenge, content_type="text/plain; charset=utf-8")

    @bp.post("/webhook", ctx_body_limit=META_BODY)
    async def webhook(request: Request, tenant_slug: str) -> HTTPResponse:
        ctx = context_of(request)
        tenant = await ctx.tenant(tenant_slug)
        credentials = ctx.credentials(tenant, channel)
        if not signature_valid(str(credentials["app_secret"]), request.body,
                               request.headers.get(SIGNATURE_HEADER)):
            log.warning("whatsapp signature refused", extra={"tenant": tenant.slug})
            raise Forbidden("Missing or invalid X-Hub-Signature-256.")

        notification = parse_notification(request.body)
        changes = [c for c in notification.changes if c.field == "messages"]
        # Check every change before handing anything off: a mismatch refuses the whole request.
        for change in changes:
            if change.phone_number_id != str(credentials["phone_number_id"]):
                log.warning("whatsapp phone number mismatch", extra={
                    "tenant": tenant.slug, "phone_number_id": change.phone_number_id})
                raise Forbidden("This notification is for another WhatsApp phone number.")
        for change in notification.changes:
            if change.field != "messages":
                log.info("whatsapp change ignored",
                         extra={"tenant": tenant.slug, "field": change.field})

        for change in changes:
            for msg in change.messages:
                inbound = to_inbound(tenant, channel.name, change, msg,
                                     ctx.settings.graph_api_url)
                if inbound is not None:
                    new = await ctx.inbox.accept(inbound)
                    log.info("whatsapp message accepted", extra={
                        "tenant": tenant.slug, "wamid": msg.id, "type": msg.type,
                        "duplicate": not new})
            for status in change.statuses:
                if status.status not in KNOWN_STATUSES:
                    log.info("whatsapp status ignored", extra={
                        "tenant": tenant.slug, "status": status.status, "wamid": status.id})
                    continue
                await ctx.inbox.record_status(tenant, channel.name, "whatsapp",
                                              to_status_update(status))
        return json_response({"status": "ok"})

    return bp
