"""Billing: shops pay through Stripe for a plan whose limits the product enforces.

- `plans`: the pricing file (plans, Stripe Prices, limits) and which plan binds a shop now.
- `tables`: subscriptions as Stripe told us, Stripe's events, billed conversations, usage
  waiting for Stripe's meters, limit warnings sent.
- `account`: a shop's billing state for the other packages (cached for the hot path).
- `stripe_api`: every call to Stripe, through Stripe's library, each write with an
  idempotency key.
- `events`: Stripe's webhook events, stored by id and handled once, out of order safely.
- `usage`: what a shop used this month against its limits.
- `conversations`: conversations counted as they start, and refused politely past the limit.
- `meters`: usage reported to Stripe's Billing Meters.

Without STRIPE_API_KEY billing is off and nothing is limited. The gateway receives Stripe's
webhooks (POST /billing/stripe/webhook) and counts conversations; the admin service serves
the owners' routes (/api/v1/billing...), reports usage and mails limit warnings.
Layering: billing imports core, tenants and knowledge (LLM spend); connectors, actions and
admin_api import it.
"""
