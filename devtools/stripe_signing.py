"""Stripe's webhook signature scheme, for the sandbox and the tests that play Stripe.

`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, keyed with the
endpoint's whsec_ secret as the string it is (Stripe's docs, "Verify signatures manually";
`stripe.WebhookSignature` checks exactly this). The product only verifies, with
`stripe.Webhook.construct_event`.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"
