"""Email webhooks' signatures: Mailgun's HMAC and SendGrid's signed Inbound Parse.

- Mailgun: `signature` = hex HMAC-SHA256 of `timestamp` + `token`, keyed with the webhook
  signing key; compared in constant time. A timestamp more than 5 minutes off is refused, and so
  is a token seen before with other content (connectors/replay.py); the same content again is a
  redelivery and is deduplicated by Message-ID.
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
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook

from connectors.errors import Forbidden
from connectors.replay import ReplayGuard

log = logging.getLogger(__name__)

MAX_SKEW_SECONDS = 300
TOKEN_TTL_SECONDS = 2 * MAX_SKEW_SECONDS  # a token outlives the window it could be replayed in


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
