"""Stripe events for tests, from the captured shapes in tests/fixtures/stripe/: a copy of one
with the few fields a test cares about changed (ids, time, status, price, shop)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe"
CUSTOMER = "cus_TVc1mQ8xYzA2bC"
SUBSCRIPTION = "sub_1SYcKo2eZvKYlo2CbR7tQ9wE"
STARTER, PRO = "price_sb_starter_monthly", "price_sb_pro_monthly"
KEEP = object()


@cache
def _fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


def stripe_event(name: str, *, id: str | None = None, created: int | None = None,
                 tenant: Any = KEEP, customer: str | None = None,
                 subscription: str | None = None, status: str | None = None,
                 price: str | None = None, cancel_at_period_end: bool | None = None,
                 period: tuple[int, int] | None = None) -> dict[str, Any]:
    """The fixture `name` (e.g. "customer.subscription.updated") changed as asked; `tenant`
    None removes the shop's id (metadata, client_reference_id)."""
    event = copy.deepcopy(_fixture(name))
    if id is not None:
        event["id"] = id
    if created is not None:
        event["created"] = created
    obj = event["data"]["object"]
    kind = obj["object"]
    if customer is not None:
        obj["customer"] = customer
    if tenant is not KEEP:
        metadata = (obj["parent"]["subscription_details"]["metadata"]
                    if kind == "invoice" and "parent" in obj else obj["metadata"])
        if tenant is None:
            metadata.pop("tenant_id", None)
        else:
            metadata["tenant_id"] = tenant
        if kind == "checkout.session":
            obj["client_reference_id"] = tenant
    if subscription is not None:
        if kind == "subscription":
            obj["id"] = subscription
        elif kind == "checkout.session":
            obj["subscription"] = subscription
        elif "parent" in obj:
            obj["parent"]["subscription_details"]["subscription"] = subscription
        else:
            obj["subscription"] = subscription
    if status is not None:
        obj["status"] = status
    if cancel_at_period_end is not None:
        obj["cancel_at_period_end"] = cancel_at_period_end
    if price is not None:
        for item in obj["items"]["data"]:
            item["price"]["id"] = item["plan"]["id"] = price
    if period is not None:
        holders = ([obj] if "current_period_start" in obj
                   else obj["items"]["data"])
        for holder in holders:
            holder["current_period_start"], holder["current_period_end"] = period
    return event


def body(event: dict[str, Any]) -> bytes:
    """As Stripe sends it: pretty-printed JSON (the signature covers these exact bytes)."""
    return json.dumps(event, indent=2).encode()
