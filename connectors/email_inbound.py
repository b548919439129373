"""Email channel, inbound: a Mailgun route (forward) or a SendGrid Inbound Parse webhook.

    POST /channels/{tenant_slug}/email/mailgun    (form: Mailgun's parsed-message fields)
    POST /channels/{tenant_slug}/email/sendgrid   (multipart: SendGrid Inbound Parse fields)

Each shop picks one provider (credentials["email"]["inbound"]); the other endpoint answers 404.
Verify → parse → check the receiving address → hand off to the inbox; the reply goes out later
through SMTP (connectors/email_sender.py) on the same thread.

Verification
- Mailgun: `signature` = hex HMAC-SHA256 of `timestamp` + `token`, keyed with the webhook
  signing key; compared in constant time. A timestamp more than 5 minutes off, or a token seen
  before with other content (Redis when REDIS_URL, else an in-process TTL cache), is refused;
  the same content again is a redelivery and is deduplicated by Message-ID.
- SendGrid: Inbound Parse is signed through a *security policy* attached to the parse setting
  (POST /v3/user/webhooks/security/policies with {"signature": {"enabled": true}}, which
  returns the base64 DER public key to store as credentials["sendgrid_public_key"]). Checked
  against Twilio's docs ("Securing your Inbound Parse Webhooks") and Twilio's own inbound-parse
  starter kit: the signature is ECDSA P-256 / SHA-256 over timestamp + the raw request body,
  sent in the same headers as the signed Event Webhook,
  `X-Twilio-Email-Event-Webhook-Signature` (base64) and `X-Twilio-Email-Event-Webhook-Timestamp`,
  so sendgrid's own `EventWebhook.verify_signature` applies unchanged. It takes the body as a
  str; a body that is not UTF-8 (raw binary attachments) is checked with the same algorithm
  over the bytes. SendGrid retries for up to 3 days and documents no freshness window, so no
  timestamp age is enforced there; a replayed copy carries the same Message-ID and the inbox
  drops it as a duplicate.
A missing or bad signature is 403 and nothing is recorded; a shop with no key configured is
refused the same way (never accepted "because no secret was configured").

Parsing is in connectors/email_parsing.py; here quoted history and signature are cut and
several questions become several turns.
Auto-replies (Auto-Submitted other than "no", Precedence bulk/junk/list/auto_reply,
X-Autoreply) and mail from our own address are acknowledged and ignored, to avoid mail loops.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any, Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json as json_response
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from connectors.email_parsing import ParsedEmail, parse_mailgun, parse_sendgrid
from connectors.email_text import split_questions, strip_reply
from connectors.errors import ChannelNotConfigured, Forbidden
from connectors.messages import InboundMessage
from tenants import Tenant

log = logging.getLogger(__name__)

bp = Blueprint("email_channel")

SECTION = "email"
MAX_SKEW_SECONDS = 300
TOKEN_TTL_SECONDS = 2 * MAX_SKEW_SECONDS  # a token outlives the window it could be replayed in
MAX_TEXT = 8000
_AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}


# --- replay cache ----------------------------------------------------------------------------


class _TokenCache:
    """In-process memory of Mailgun tokens (embedded mode, one process): token → content."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._seen: dict[str, tuple[float, str]] = {}
        self._clock = clock

    def add(self, token: str, ttl: float, content: str) -> bool:
        now = self._clock()
        if len(self._seen) > 1000:
            self._seen = {t: seen for t, seen in self._seen.items() if seen[0] > now}
        seen = self._seen.get(token)
        if seen is not None and seen[0] > now:
            return seen[1] == content
        self._seen[token] = (now + ttl, content)
        return True


_tokens = _TokenCache()


async def _token_fits(request: Request, token: str, form: Mapping[str, Any]) -> bool:
    """False when this signed token was already used for other content.

    Mailgun's signature covers the timestamp and token, not the mail: a token seen before with
    different fields is someone replaying the signature on a forged mail. The same fields again
    are a redelivery (Mailgun retries on timeouts) and go on to the Message-ID dedupe.
    """
    content = hashlib.sha256(json.dumps(sorted(form.items()), default=str).encode()).hexdigest()
    redis = getattr(request.app.ctx, "redis", None)
    if redis is None:
        return _tokens.add(token, TOKEN_TTL_SECONDS, content)
    key = f"switchboard:mailgun-token:{hashlib.sha256(token.encode()).hexdigest()}"
    if await redis.set(key, content, nx=True, ex=TOKEN_TTL_SECONDS):
        return True
    first = await redis.get(key)
    return (first.decode() if isinstance(first, bytes) else first) == content


# --- verification ----------------------------------------------------------------------------


def verify_mailgun(signing_key: str, timestamp: str, token: str, signature: str,
                   now: float | None = None) -> None:
    """Raise Forbidden unless Mailgun signed timestamp+token with this key, recently."""
    if not signing_key:
        raise Forbidden("Email inbound is not set up for signature checks.")
    if not (timestamp and token and signature):
        raise Forbidden("Missing Mailgun signature.")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise Forbidden("Bad Mailgun timestamp.") from None
    if abs((time.time() if now is None else now) - sent_at) > MAX_SKEW_SECONDS:
        raise Forbidden("Stale Mailgun signature.")
    expected = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), signature.strip().lower()):
        raise Forbidden("Bad Mailgun signature.")


def verify_sendgrid(public_key: str, body: bytes, signature: str | None,
                    timestamp: str | None) -> None:
    """Raise Forbidden unless SendGrid's security policy signed timestamp + raw body."""
    if not public_key:
        raise Forbidden("Email inbound is not set up for signature checks.")
    if not signature or not timestamp:
        raise Forbidden("Missing SendGrid signature.")
    helper = EventWebhook()
    try:
        key = helper.convert_public_key_to_ecdsa(public_key.strip())
    except (ValueError, TypeError):
        log.error("sendgrid public key unreadable")  # the key itself is never logged
        raise Forbidden("Bad SendGrid signature.") from None
    try:
        try:
            valid = helper.verify_signature(body.decode("utf-8"), signature, timestamp, key)
        except UnicodeDecodeError:
            # Same algorithm as the helper, over the exact bytes it cannot take as str.
            key.verify(base64.b64decode(signature), timestamp.encode() + body,
                       ec.ECDSA(hashes.SHA256()))
            valid = True
    except (InvalidSignature, ValueError, TypeError):
        valid = False
    if not valid:
        raise Forbidden("Bad SendGrid signature.")


@bp.post("/channels/<tenant_slug:str>/email/mailgun")
async def mailgun(request: Request, tenant_slug: str) -> HTTPResponse:
    tenant, credentials = await _tenant_for(request, tenant_slug, "mailgun")
    form = {name: request.form.get(name) for name in (request.form or {})}
    verify_mailgun(str(credentials.get("mailgun_signing_key") or ""), form.get("timestamp", ""),
                   form.get("token", ""), form.get("signature", ""))
    if not await _token_fits(request, form["token"], form):
        raise Forbidden("This Mailgun token was already used for another message.")
    files = {name: (f.name, f.type) for name, f in
             ((n, request.files.get(n)) for n in (request.files or {})) if f is not None}
    return await _hand_off(request, tenant, credentials, parse_mailgun(form, files), "mailgun")


# --- SendGrid --------------------------------------------------------------------------------


@bp.post("/channels/<tenant_slug:str>/email/sendgrid")
async def sendgrid(request: Request, tenant_slug: str) -> HTTPResponse:
    tenant, credentials = await _tenant_for(request, tenant_slug, "sendgrid")
    verify_sendgrid(
        str(credentials.get("sendgrid_public_key") or ""),
        request.body or b"",
        request.headers.get(EventWebhookHeader.SIGNATURE),
        request.headers.get(EventWebhookHeader.TIMESTAMP),
    )
    parsed = parse_sendgrid(request.body or b"", request.headers.get("content-type", ""))
    return await _hand_off(request, tenant, credentials, parsed, "sendgrid")


# --- shared ----------------------------------------------------------------------------------


async def _tenant_for(
    request: Request, slug: str, provider: str
) -> tuple[Tenant, Mapping[str, Any]]:
    tenant = await request.app.ctx.resolve_tenant(slug)
    credentials = await request.app.ctx.channel_credentials(tenant, SECTION)
    if str(credentials.get("inbound") or "").lower() != provider:
        raise ChannelNotConfigured(f"This shop does not receive email through {provider}.")
    return tenant, credentials


def _is_auto_reply(headers: Mapping[str, str]) -> bool:
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and auto != "no":
        return True
    if headers.get("precedence", "").strip().lower() in _AUTO_PRECEDENCE:
        return True
    return "x-autoreply" in headers or "x-autorespond" in headers


def to_inbound(tenant: Tenant, credentials: Mapping[str, Any], mail: ParsedEmail,
               provider: str) -> InboundMessage | None:
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
        channel="email",
        user_key=mail.sender,
        # One question: the turn itself (greeting and sign-off lines dropped, so "Hi," does
        # not make the bot answer a greeting); several: the whole text, turns in `questions`.
        text=turns[0] if len(turns) == 1 else text,
        message_id=mail.message_id,
        media=mail.media,
        questions=tuple(turns) if len(turns) > 1 else (),
        reply_context={
            "to": address,
            "subject": mail.subject,
            "message_id": mail.message_id,
            "references": mail.references,
        },
        provider=provider,
    )


async def _hand_off(request: Request, tenant: Tenant, credentials: Mapping[str, Any],
                    mail: ParsedEmail, provider: str) -> HTTPResponse:
    inbound = to_inbound(tenant, credentials, mail, provider)
    if inbound is None:
        log.info("email ignored", extra={"tenant": tenant.slug, "provider": provider,
                                         "message_id": mail.message_id})
        return json_response({"status": "ignored"})
    new = await request.app.ctx.inbox.accept(inbound)
    log.info("email accepted", extra={"tenant": tenant.slug, "provider": provider,
                                      "message_id": mail.message_id, "duplicate": not new,
                                      "turns": len(inbound.turns()), "media": len(inbound.media)})
    return json_response({"status": "ok"})
