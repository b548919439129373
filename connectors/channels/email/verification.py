"""Email webhooks' signatures: Mailgun's HMAC and SendGrid's signed Inbound Parse.

- Mailgun: `signature` = hex HMAC-SHA256 of `timestamp` + `token`, keyed with the webhook
  signing key; compared in constant time. A timestamp more than 5 minutes off is refused, and so
  is a token seen before with other content (connectors/replay.py); the same content again is a
  redelivery and is deduplicated by Message-ID. The three signed fields travel inside the form
  they sign (urlencoded, or multipart when attachments come along), in no documented order, so
  they are read from the raw body first (`mailgun_signed_fields`) and the form is parsed only
  once they verify: urlencoded, by finding `&name=` directly; multipart, by walking the part
  boundaries of at most `MAX_PARTS_SCANNED` parts and reading only the headers of each and
  the value of these three (each at most `MAX_SIGNED_FIELD` bytes). Nothing is decoded,
  copied or stored for any other field; an unsigned 32 MB body costs one pass of `bytes.find`.
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
A missing or bad signature is 403 and nothing is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook

from connectors.errors import Forbidden
from connectors.replay import ReplayGuard

log = logging.getLogger(__name__)

MAX_SKEW_SECONDS = 300
TOKEN_TTL_SECONDS = 2 * MAX_SKEW_SECONDS  # a token outlives the window it could be replayed in

MAILGUN_SIGNED = ("timestamp", "token", "signature")
MAX_SIGNED_FIELD = 256  # a Unix time, a 50-character token, 64 hex digits, with room
# Mailgun's form has some 20 fields plus one per attachment: the signed ones are among them.
MAX_PARTS_SCANNED = 500
_MAX_PART_HEADERS = 1024
_BOUNDARY = re.compile(r'boundary="?([^";,\s]{1,70})"?', re.IGNORECASE)
_PART_NAME = re.compile(rb'content-disposition:[^\r\n]*?[;\s]name="([^"\r\n]{1,40})"',
                        re.IGNORECASE)


def mailgun_signed_fields(body: bytes, content_type: str) -> dict[str, str]:
    """Mailgun's timestamp, token and signature from the raw body, without parsing the form
    (see the module's docstring); missing ones are absent."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return _urlencoded_fields(body)
    boundary = _BOUNDARY.search(content_type)
    if kind == "multipart/form-data" and boundary:
        return _multipart_fields(body, boundary.group(1).encode("latin-1"))
    return {}


def _urlencoded_fields(body: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in MAILGUN_SIGNED:
        key = name.encode() + b"="
        # The first `name=` that starts a field (values are percent-encoded: no bare '=').
        if body.startswith(key):
            start = len(key)
        else:
            at = body.find(b"&" + key)
            if at == -1:
                continue
            start = at + 1 + len(key)
        end = body.find(b"&", start, start + MAX_SIGNED_FIELD + 1)
        if end == -1:
            end = len(body) if len(body) - start <= MAX_SIGNED_FIELD else -1
        if end != -1:
            found[name] = unquote_plus(body[start:end].decode("ascii", errors="replace"))
    return found


def _multipart_fields(body: bytes, boundary: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    delimiter = b"\r\n--" + boundary
    # The first delimiter may open the body without the CRLF before it.
    pos = 0 if body.startswith(delimiter[2:]) else body.find(delimiter)
    if pos == 0:
        pos = -2  # as if the CRLF were there
    for _ in range(MAX_PARTS_SCANNED):
        if pos == -1 or len(found) == len(MAILGUN_SIGNED):
            break
        start = pos + len(delimiter)
        if body[start:start + 2] != b"\r\n":  # "--": the closing delimiter
            break
        start += 2
        following = body.find(delimiter, start)
        if following == -1:
            break
        head_end = body.find(b"\r\n\r\n", start, min(following, start + _MAX_PART_HEADERS))
        if head_end != -1:
            named = _PART_NAME.search(body, start, head_end)
            name = named.group(1).decode("latin-1") if named else ""
            value = body[head_end + 4:following] if following - head_end - 4 <= (
                MAX_SIGNED_FIELD) else None
            if name in MAILGUN_SIGNED and name not in found and value is not None:
                found[name] = value.decode("utf-8", errors="replace").strip()
        pos = following
    return found


async def token_fits(replay: ReplayGuard, token: str, form: Mapping[str, Any]) -> bool:
    """False when this signed Mailgun token was already used for other content."""
    content = hashlib.sha256(json.dumps(sorted(form.items()), default=str).encode()).hexdigest()
    return await replay.first_use(f"mailgun:{token}", content, TOKEN_TTL_SECONDS)


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
