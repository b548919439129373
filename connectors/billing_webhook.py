"""Stripe's webhooks on the gateway: verify, store, acknowledge.

    POST /billing/stripe/webhook
    Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">
    <a Stripe event, JSON>
    -> 200 {"received": true}: stored and handled, or a redelivery of one that was
       400 {"detail"}: no or a bad signature, older than 300 s, or not an event (also: JSON
           nested past core/nesting.py's bound); nothing stored
       503 {"detail"}: STRIPE_WEBHOOK_SECRET is not set, or handling failed (recorded; Stripe
           delivers it again, and the next delivery handles it)

Verification is Stripe's own `stripe.Webhook.construct_event` (the signature over the raw
body, and the default 300 s tolerance against replays) with each comma-separated secret of
STRIPE_WEBHOOK_SECRET in turn, so an endpoint's secret can be rotated without refusing
events signed with the one before. Handling is billing/events.py; it is database work only
(no call to Stripe), so Stripe hears back well within its timeout. The shop's billing state
cached in this process is dropped at once; other processes see it within their cache's TTL.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from billing.account import Accounts
from billing.events import HANDLERS, HandlingFailed, MalformedEvent, receive
from billing.plans import pricing
from connectors import metrics
from core import nesting
from core.metrics import bounded
from core.settings import Settings

log = logging.getLogger(__name__)

PATH = "/billing/stripe/webhook"
# Stripe documents no maximum; an event is a few KB, an invoice with many lines some
# hundreds: 1 MB leaves room and still bounds what an unsigned request makes us read.
BODY_LIMIT = 1024 * 1024
EVENT_TYPES = tuple(HANDLERS)


class Refused(ValueError):
    """Not a verified Stripe event: answered 400, nothing stored."""


def secrets_of(settings: Settings) -> tuple[str, ...]:
    configured = settings.stripe_webhook_secret
    if configured is None:
        return ()
    return tuple(s.strip() for s in configured.reveal().split(",") if s.strip())


def verified(body: bytes, signature: str | None, secrets: tuple[str, ...]) -> dict[str, Any]:
    """The event in `body` when one of `secrets` signed it within the tolerance."""
    if not signature:
        raise Refused("The Stripe-Signature header is missing.")
    for secret in secrets:
        try:
            stripe.Webhook.construct_event(body, signature, secret)
            event = nesting.loads(body)
        except stripe.SignatureVerificationError:
            continue
        except (RecursionError, nesting.TooDeep):  # construct_event parses it too
            raise Refused(f"The body is not a Stripe event: JSON nested more than "
                          f"{nesting.MAX_DEPTH} levels deep.") from None
        except ValueError:  # not UTF-8, not JSON, not a snapshot event
            raise Refused("The body is not a Stripe event.") from None
        if not isinstance(event, dict):
            raise Refused("The body is not a Stripe event.")
        return event
    raise Refused("The Stripe-Signature does not verify (wrong secret, altered body, or "
                  "older than 300 seconds).")


def answer(detail: str, status: int) -> HTTPResponse:
    return json_response({"detail": detail}, status=status)


def routes(settings: Settings) -> Blueprint:
    bp = Blueprint("stripe_webhook")
    secrets = secrets_of(settings)

    @bp.post(PATH, ctx_body_limit=BODY_LIMIT)
    async def stripe_webhook(request: Request) -> HTTPResponse:
        if not secrets:
            metrics.stripe_event("other", "not_configured")
            return answer("Stripe webhooks are not configured here (STRIPE_WEBHOOK_SECRET).",
                          503)
        try:
            raw = verified(request.body or b"", request.headers.get("stripe-signature"),
                           secrets)
            received = await receive(request.app.ctx.sessions, pricing(settings), raw)
        except (Refused, MalformedEvent) as exc:
            metrics.stripe_event("other", "refused")
            log.warning("Stripe webhook refused", extra={"reason": str(exc)})
            return answer(str(exc), 400)
        except HandlingFailed:
            metrics.stripe_event(bounded(raw.get("type"), EVENT_TYPES), "failed")
            return answer("The event could not be handled now; deliver it again.", 503)
        if received.tenant_id is not None:
            billing: Accounts = request.app.ctx.billing
            billing.forget(received.tenant_id)
        outcome = ("duplicate" if received.duplicate
                   else "handled" if received.tenant_id is not None or received.type
                   not in HANDLERS else "unknown_shop")
        metrics.stripe_event(bounded(received.type, EVENT_TYPES), outcome)
        log.info("Stripe event received", extra={
            "event_id": received.event_id, "event_type": received.type,
            "tenant_id": received.tenant_id, "duplicate": received.duplicate})
        return json_response({"received": True})

    return bp
