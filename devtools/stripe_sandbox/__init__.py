"""A stand-in for Stripe (development and tests only): its REST API as stripe-python speaks it,
Checkout and customer-portal pages, and the signed webhook events that follow.

- `api`: the objects (customers, Checkout and portal sessions, subscriptions, invoices, meter
  events) and the /v1 routes, with Stripe's errors and idempotency; test hooks to inspect
  calls and inject failures.
- `sandbox`: `StripeSandbox`, what happens behind the API (Checkout completed, cancellations,
  plan switches, failed and paid invoices) and the events it sends.
- `app`: `add_routes(app, sandbox)`, the API and the pages on a Sanic app.

`make run` mounts it in devtools/sandbox.py (port 8025); tests run it on a free port
(tests/fakes/stripe_server.py). Not for production: nothing is charged, keys are whatever
the sandbox was given.
"""

from __future__ import annotations

from pathlib import Path

from devtools.stripe_sandbox.api import Call, Price, Reply, StripeApi, StripeError
from devtools.stripe_sandbox.sandbox import Delivery, StripeSandbox

# What the development pricing's Prices cost in the sandbox (billing/plans.yml names them;
# amounts in cents a month, or a unit for a metered Price).
DEV_AMOUNTS = {"price_sb_starter_monthly": 2900, "price_sb_pro_monthly": 9900,
               "price_sb_pro_conversations": 1}
# The development pricing's usage Prices and the meter (billing/plans.yml `meters`) each bills.
DEV_METERS = {"price_sb_pro_conversations": "conversations"}


def prices_from_plans(path: Path) -> dict[str, Price]:
    """The Prices a plans file names (billing/plans.yml's format), nicknamed after their plan."""
    import yaml

    from billing.plans import parse_pricing

    prices: dict[str, Price] = {}
    pricing = parse_pricing(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    for plan in pricing.plans.values():
        if plan.price_id:
            prices[plan.price_id] = Price(plan.price_id, plan.name.capitalize(),
                                          DEV_AMOUNTS.get(plan.price_id, 1000))
        for metered in plan.metered_price_ids:
            meter = pricing.meters.get(DEV_METERS.get(metered, ""))
            prices[metered] = Price(metered, f"{plan.name.capitalize()} usage",
                                    DEV_AMOUNTS.get(metered, 1), metered=True,
                                    meter_event=meter)
    return prices


__all__ = ["Call", "DEV_AMOUNTS", "Delivery", "Price", "Reply", "StripeApi", "StripeError",
           "StripeSandbox", "prices_from_plans"]
