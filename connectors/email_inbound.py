"""Email channel, inbound: a Mailgun route (forward) or a SendGrid Inbound Parse webhook.

    POST /channels/{tenant_slug}/email/mailgun    (form: Mailgun's parsed-message fields)
    POST /channels/{tenant_slug}/email/sendgrid   (multipart: SendGrid Inbound Parse fields)

Each shop picks one provider (credentials["email"]["inbound"]); the other endpoint answers 404.
Verify → parse → check the receiving address → hand off to the inbox; the reply goes out later
through SMTP (connectors/email_sender.py) on the same thread.

Verification
- Mailgun: `signature` = hex HMAC-SHA256 of `timestamp` + `token`, keyed with the webhook
  signing key; compared in constant time. A timestamp more than 5 minutes off, or a token seen
  before (Redis SET NX EX when REDIS_URL, else an in-process TTL cache), is refused.
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

Parsing (stdlib `email`): the visitor is the From address (lower-cased; the envelope sender is
only a fallback because it is often a bounce/VERP address). The dedupe id is the Message-ID
header; a mail without one gets a stable synthetic id (a hash of From, Date, Subject and body,
"<sha256…@switchboard.invalid>") so provider retries still dedupe, instead of a 400 that
Mailgun and SendGrid would retry for hours. The text is the plain part, else the HTML part
flattened, then quoted history and signature are cut; several questions become several turns.
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
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32, default
from email.utils import getaddresses, parseaddr
from typing import Any, Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json as json_response
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from connectors.email_text import html_to_text, split_questions, strip_reply
from connectors.errors import BadRequest, ChannelNotConfigured, Forbidden
from connectors.messages import InboundMessage, Media
from tenants import Tenant

log = logging.getLogger(__name__)

bp = Blueprint("email_channel")

SECTION = "email"
MAX_SKEW_SECONDS = 300
TOKEN_TTL_SECONDS = 2 * MAX_SKEW_SECONDS  # a token outlives the window it could be replayed in
MAX_TEXT = 8000
_AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}


@dataclass(frozen=True)
class ParsedEmail:
    """An inbound email as the provider delivered it, validated and decoded."""

    sender: str  # lower-cased address of the visitor
    recipients: tuple[str, ...]  # lower-cased addresses the mail was delivered to
    subject: str
    message_id: str
    references: str
    text: str  # plain part, or the HTML part flattened; not yet stripped
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-cased names, first value
    media: tuple[Media, ...] = ()


# --- replay cache ----------------------------------------------------------------------------


class _TokenCache:
    """In-process memory of Mailgun tokens (embedded mode, one process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._seen: dict[str, float] = {}
        self._clock = clock

    def add(self, token: str, ttl: float) -> bool:
        now = self._clock()
        if len(self._seen) > 1000:
            self._seen = {t: exp for t, exp in self._seen.items() if exp > now}
        expires = self._seen.get(token)
        if expires is not None and expires > now:
            return False
        self._seen[token] = now + ttl
        return True


_tokens = _TokenCache()


async def _first_use(request: Request, token: str) -> bool:
    redis = getattr(request.app.ctx, "redis", None)
    if redis is None:
        return _tokens.add(token, TOKEN_TTL_SECONDS)
    key = f"switchboard:mailgun-token:{hashlib.sha256(token.encode()).hexdigest()}"
    return bool(await redis.set(key, "1", nx=True, ex=TOKEN_TTL_SECONDS))


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


# --- parsing helpers -------------------------------------------------------------------------


def _decode_words(value: str) -> str:
    """RFC 2047 encoded-words ("=?UTF-8?B?...?=") to text; plain text unchanged."""
    if not value:
        return ""
    try:
        return str(make_header(decode_header(value))).strip()
    except (UnicodeDecodeError, LookupError, ValueError):
        return value.strip()


def _address(value: str) -> str:
    return parseaddr(_decode_words(value))[1].strip().lower()


def _addresses(*values: str) -> tuple[str, ...]:
    found = [addr.strip().lower() for _, addr in getaddresses([v for v in values if v])]
    return tuple(a for a in found if "@" in a)


def _angle(message_id: str) -> str:
    value = " ".join(message_id.split())
    if not value:
        return ""
    return value if value.startswith("<") else f"<{value.strip('<>')}>"


def _synthetic_id(sender: str, headers: Mapping[str, str], subject: str, text: str) -> str:
    digest = hashlib.sha256(
        "\x1f".join((sender, headers.get("date", ""), subject, text)).encode()
    ).hexdigest()[:40]
    return f"<{digest}@switchboard.invalid>"


def _headers_from_pairs(pairs: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(pairs, list):
        for pair in pairs:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                headers.setdefault(str(pair[0]).lower(), str(pair[1]))
    return headers


def _headers_from_message(message: Message) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in message.items():
        headers.setdefault(name.lower(), str(value))
    return headers


def _mime_parts(message: Message) -> tuple[str, str, tuple[Media, ...]]:
    """Plain text, HTML and attachments of a full MIME message (SendGrid raw mode)."""
    plain, html, media = "", "", []
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        disposition = (part.get_content_disposition() or "").lower()
        content_type = part.get_content_type()
        if filename or disposition == "attachment":
            media.append(Media(f"attachment:{filename or 'unnamed'}", content_type))
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        try:
            decoded = payload.decode(charset, errors="replace")
        except LookupError:
            decoded = payload.decode("utf-8", errors="replace")
        if content_type == "text/plain" and not plain:
            plain = decoded
        elif content_type == "text/html" and not html:
            html = decoded
    return plain, html, tuple(media)


def _loads(value: str | None, fallback: Any) -> Any:
    if not value:
        return fallback
    try:
        return json.loads(value)
    except ValueError:
        return fallback


# --- Mailgun ---------------------------------------------------------------------------------


def parse_mailgun(form: Mapping[str, str], files: Mapping[str, tuple[str, str]]) -> ParsedEmail:
    """Mailgun's forward() fields → ParsedEmail. `files`: field name → (filename, type)."""
    headers = _headers_from_pairs(_loads(form.get("message-headers"), []))

    def header(name: str) -> str:
        return headers.get(name.lower()) or form.get(name) or form.get(name.title()) or ""

    sender = _address(form.get("from") or header("From")) or _address(form.get("sender", ""))
    if not sender:
        raise BadRequest("The email has no sender address.")
    subject = _decode_words(form.get("subject") or header("Subject"))
    text = form.get("body-plain") or ""
    if not text.strip() and form.get("body-html"):
        text = html_to_text(form["body-html"])
    media: list[Media] = []
    for item in _loads(form.get("attachments"), []) or []:  # store(notify) posts URLs
        if isinstance(item, dict) and item.get("url"):
            media.append(Media(str(item["url"]), item.get("content-type")))
    try:
        count = int(form.get("attachment-count") or 0)
    except ValueError:
        count = 0
    for index in range(1, count + 1):
        name, content_type = files.get(f"attachment-{index}", (f"attachment-{index}", None))
        media.append(Media(f"attachment:{name}", content_type))
    message_id = _angle(header("Message-Id")) or _synthetic_id(sender, headers, subject, text)
    return ParsedEmail(
        sender=sender,
        recipients=_addresses(form.get("recipient", "")),
        subject=subject,
        message_id=message_id,
        references=" ".join((header("References") or header("In-Reply-To")).split()),
        text=text,
        headers=headers,
        media=tuple(media),
    )


@bp.post("/channels/<tenant_slug:str>/email/mailgun")
async def mailgun(request: Request, tenant_slug: str) -> HTTPResponse:
    tenant, credentials = await _tenant_for(request, tenant_slug, "mailgun")
    form = {name: request.form.get(name) for name in (request.form or {})}
    verify_mailgun(str(credentials.get("mailgun_signing_key") or ""), form.get("timestamp", ""),
                   form.get("token", ""), form.get("signature", ""))
    if not await _first_use(request, form["token"]):
        raise Forbidden("This Mailgun token was already used.")
    files = {name: (f.name, f.type) for name, f in
             ((n, request.files.get(n)) for n in (request.files or {})) if f is not None}
    return await _hand_off(request, tenant, credentials, parse_mailgun(form, files), "mailgun")


# --- SendGrid --------------------------------------------------------------------------------


def parse_sendgrid(body: bytes, content_type: str) -> ParsedEmail:
    """SendGrid Inbound Parse multipart body → ParsedEmail (default and raw "send_raw" modes).

    Parsed with the stdlib so each field is decoded with the charset SendGrid names in
    `charsets` (fields keep the mail's original encoding)."""
    if "multipart/form-data" not in content_type.lower():
        raise BadRequest("SendGrid Inbound Parse posts multipart/form-data.")
    envelope = message_from_bytes(
        b"Content-Type: " + content_type.encode("latin-1", errors="replace")
        + b"\r\nMIME-Version: 1.0\r\n\r\n" + body,
        policy=compat32,
    )
    if not envelope.is_multipart():
        raise BadRequest("Unreadable multipart body.")
    raw_fields: dict[str, bytes] = {}
    files: dict[str, tuple[str, str]] = {}
    for part in envelope.get_payload():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        name = str(name)
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename:
            files[name] = (filename, part.get_content_type())
        else:
            raw_fields[name] = payload
    charsets = _loads(raw_fields.get("charsets", b"").decode("utf-8", "replace"), {}) or {}

    def field_text(name: str) -> str:
        data = raw_fields.get(name, b"")
        charset = charsets.get(name) if isinstance(charsets, dict) else None
        try:
            return data.decode(charset or "utf-8", errors="replace")
        except LookupError:
            return data.decode("utf-8", errors="replace")

    envelope_json = _loads(field_text("envelope"), {}) or {}
    if "email" in raw_fields:  # raw mode: the whole MIME message in one field
        mime = message_from_bytes(raw_fields["email"], policy=default)
        headers = _headers_from_message(mime)
        plain, html, media = _mime_parts(mime)
    else:
        parsed_headers = HeaderParser(policy=default).parsestr(field_text("headers"))
        headers = _headers_from_message(parsed_headers)
        plain, html = field_text("text"), field_text("html")
        info = _loads(field_text("attachment-info"), {}) or {}
        media_list: list[Media] = []
        for name, (filename, ctype) in sorted(files.items()):
            meta = info.get(name, {}) if isinstance(info, dict) else {}
            media_list.append(Media(f"attachment:{meta.get('filename') or filename}",
                                    meta.get("type") or ctype))
        media = tuple(media_list)
    text = plain if plain.strip() else html_to_text(html)
    sender = _address(field_text("from") or headers.get("from", "")) or _address(
        str(envelope_json.get("from", "")) if isinstance(envelope_json, dict) else ""
    )
    if not sender:
        raise BadRequest("The email has no sender address.")
    to = envelope_json.get("to") if isinstance(envelope_json, dict) else None
    recipients = _addresses(*to) if isinstance(to, list) else ()
    if not recipients:
        recipients = _addresses(field_text("to"), field_text("cc"))
    subject = _decode_words(field_text("subject") or headers.get("subject", ""))
    message_id = _angle(headers.get("message-id", "")) or _synthetic_id(
        sender, headers, subject, text
    )
    return ParsedEmail(
        sender=sender,
        recipients=recipients,
        subject=subject,
        message_id=message_id,
        references=" ".join(
            (headers.get("references") or headers.get("in-reply-to") or "").split()
        ),
        text=text,
        headers=headers,
        media=media,
    )


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
