"""Every call to Stripe, through Stripe's library (`stripe.StripeClient`, its `*_async` methods
over httpx: nothing blocks the event loop).

Every write carries an idempotency key, and a retried call reuses it: the library's own
retries (connection errors, 409, 5xx) resend the key they were given, and the keys of writes
that must happen once are derived from what they are about (a meter event's identifier, the
shop for its customer), so a retry by our code reuses them too. Stripe keeps keys 24 hours
and refuses a key reused with other parameters, so keyed parameters never change for a key.

Stripe's errors become two typed exceptions: `StripeUnavailable` (Stripe down, overloaded or
refusing our key: the admin API answers 502) and `StripeRejected` (Stripe refused this
request: 4xx). The secret key never reaches a log.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from billing.plans import Plan
from billing.tables import BillingAccountRow
from core.settings import Settings

log = logging.getLogger(__name__)

# The library retries connection failures, 409s and 5xx with backoff (0.5 s, then 1 s), each
# retry with the same idempotency key; two retries keep an owner's click under ~30 s at worst.
MAX_NETWORK_RETRIES = 2
# Per request; Stripe answers in well under a second, the library's default (80 s) would hold
# an owner's request far past any proxy's timeout.
TIMEOUT_SECONDS = 10.0
INVOICES_SHOWN = 12


class StripeFailure(Exception):
    """A Stripe call failed; `detail` is safe to show an owner."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class StripeUnavailable(StripeFailure):
    """Stripe could not be reached, failed, throttled us or refused our key (502)."""


class StripeRejected(StripeFailure):
    """Stripe refused the request itself (4xx): a missing customer or price, a bad state."""


@dataclass(frozen=True)
class Invoice:
    number: str | None
    amount: int  # the invoice's total, in the currency's smallest unit
    currency: str
    status: str | None  # draft, open, paid, uncollectible, void
    hosted_invoice_url: str | None
    created: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "amount": self.amount, "currency": self.currency,
                "status": self.status, "hosted_invoice_url": self.hosted_invoice_url,
                "created": self.created.isoformat()}


def _failure(exc: stripe.StripeError) -> StripeFailure:
    if isinstance(exc, stripe.InvalidRequestError | stripe.IdempotencyError | stripe.CardError):
        return StripeRejected(f"Stripe refused the request: {exc.user_message or exc.code or ''}"
                              .rstrip(": "))
    return StripeUnavailable("Stripe is unavailable, try again in a moment")


class StripeApi:
    """The calls the product makes to Stripe (one per process, on `app.ctx.stripe`)."""

    def __init__(self, api_key: str, api_base: str,
                 max_network_retries: int = MAX_NETWORK_RETRIES,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        # Stripe's library logs every request and response at INFO (its logger "stripe"); our
        # own lines say what was done, once, with the shop (and never a key).
        logging.getLogger("stripe").setLevel(logging.WARNING)
        self._http = stripe.HTTPXClient(timeout=timeout)
        self.client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base}, http_client=self._http,
            max_network_retries=max_network_retries)

    @classmethod
    def from_settings(cls, settings: Settings) -> StripeApi | None:
        """None when billing is off (no STRIPE_API_KEY)."""
        if settings.stripe_api_key is None:
            return None
        return cls(settings.stripe_api_key.reveal(), settings.stripe_api_base)

    async def aclose(self) -> None:
        await self._http.close_async()

    async def meter_event(self, event_name: str, customer_id: str, value: int,
                          identifier: str, timestamp: datetime) -> None:
        """Report usage to a Billing Meter. Stripe dedupes on `identifier` (24 h) and the
        idempotency key derived from it makes a retried report the same request."""
        params: Any = {"event_name": event_name, "identifier": identifier,
                       "payload": {"stripe_customer_id": customer_id, "value": str(value)},
                       "timestamp": int(timestamp.timestamp())}
        try:
            await self.client.v1.billing.meter_events.create_async(
                params, options={"idempotency_key": f"meter-{identifier}"})
        except stripe.StripeError as exc:
            log.warning("stripe meter event failed", extra={
                "event_name": event_name, "identifier": identifier,
                "stripe_error": type(exc).__name__, "http_status": exc.http_status})
            raise _failure(exc) from None

    async def create_customer(self, tenant_id: str) -> str:
        """The shop's Stripe customer. The key is the shop's: two first checkouts at once (or
        a retry after a lost answer) get the same customer back from Stripe."""
        params: Any = {"metadata": {"tenant_id": tenant_id}}
        customer = await self._write(self.client.v1.customers.create_async, params,
                                     f"customer-{tenant_id}", "customer")
        return str(customer.id)

    async def checkout_session(self, *, plan: Plan, customer_id: str, tenant_id: str,
                               success_url: str, cancel_url: str) -> str:
        """A Checkout Session subscribing the customer to the plan; its URL."""
        items: list[dict[str, Any]] = [{"price": plan.price_id, "quantity": 1}]
        items += [{"price": price} for price in plan.metered_price_ids]  # usage: no quantity
        params: Any = {
            "mode": "subscription", "customer": customer_id, "line_items": items,
            "client_reference_id": tenant_id, "metadata": {"tenant_id": tenant_id},
            "subscription_data": {"metadata": {"tenant_id": tenant_id}},
            "success_url": success_url, "cancel_url": cancel_url}
        # One key per owner's request (a second click is a second session, as on Stripe's
        # own pages); the library's retries of this request reuse it.
        session = await self._write(self.client.v1.checkout.sessions.create_async, params,
                                    f"checkout-{tenant_id}-{plan.name}-{uuid.uuid4().hex}",
                                    "checkout session")
        return str(session.url)

    async def portal_session(self, *, customer_id: str, return_url: str,
                             subscription_id: str | None = None,
                             new_price_id: str | None = None) -> str:
        """A customer portal session's URL. With a subscription and a new Price: the portal's
        confirmation of that plan change (flow subscription_update_confirm)."""
        params: dict[str, Any] = {"customer": customer_id, "return_url": return_url}
        if subscription_id is not None and new_price_id is not None:
            item = await self._subscription_item(subscription_id)
            params["flow_data"] = {
                "type": "subscription_update_confirm",
                "subscription_update_confirm": {
                    "subscription": subscription_id,
                    "items": [{"id": item, "price": new_price_id, "quantity": 1}]},
                "after_completion": {"type": "redirect",
                                     "redirect": {"return_url": return_url}}}
        session = await self._write(self.client.v1.billing_portal.sessions.create_async,
                                    params, f"portal-{customer_id}-{uuid.uuid4().hex}",
                                    "portal session")
        return str(session.url)

    async def invoices(self, customer_id: str, limit: int = INVOICES_SHOWN) -> list[Invoice]:
        """The customer's latest invoices, newest first."""
        try:
            page = await self.client.v1.invoices.list_async(
                {"customer": customer_id, "limit": limit})
        except stripe.StripeError as exc:
            log.warning("stripe invoices failed", extra={
                "stripe_error": type(exc).__name__, "http_status": exc.http_status})
            raise _failure(exc) from None
        raw = [inv.to_dict() for inv in page.data]
        return [Invoice(number=inv.get("number"), amount=int(inv.get("total") or 0),
                        currency=str(inv.get("currency") or ""), status=inv.get("status"),
                        hosted_invoice_url=inv.get("hosted_invoice_url"),
                        created=datetime.fromtimestamp(int(inv.get("created") or 0), UTC))
                for inv in raw]

    async def _subscription_item(self, subscription_id: str) -> str:
        """The id of the subscription's flat-price item (the one a plan change replaces)."""
        try:
            sub = await self.client.v1.subscriptions.retrieve_async(subscription_id)
        except stripe.StripeError as exc:
            log.warning("stripe subscription read failed", extra={
                "stripe_error": type(exc).__name__, "http_status": exc.http_status})
            raise _failure(exc) from None
        for item in (sub.to_dict().get("items") or {}).get("data") or []:
            price = item.get("price")
            usage = (price.get("recurring") or {}).get("usage_type") if price else None
            if usage != "metered":
                return str(item["id"])
        raise StripeRejected("the subscription has no plan item to change")

    async def _write(self, call: Any, params: Any, key: str, what: str) -> Any:
        try:
            return await call(params, options={"idempotency_key": key})
        except stripe.StripeError as exc:
            log.warning("stripe write failed", extra={
                "stripe_call": what, "stripe_error": type(exc).__name__,
                "http_status": exc.http_status})
            raise _failure(exc) from None


async def ensure_customer(api: StripeApi, sessions: async_sessionmaker, tenant_id: str) -> str:
    """The shop's Stripe customer id, created at its first checkout and kept in
    billing_accounts. Safe when two first checkouts race: Stripe returns one customer for the
    shop's idempotency key and only one row is written."""
    async with sessions() as session:
        known = (await session.execute(select(BillingAccountRow.stripe_customer_id).where(
            BillingAccountRow.tenant_id == tenant_id))).scalar_one_or_none()
    if known:
        return str(known)
    customer_id = await api.create_customer(tenant_id)
    async with sessions() as session:
        try:
            async with session.begin():
                session.add(BillingAccountRow(tenant_id=tenant_id,
                                              stripe_customer_id=customer_id))
        except IntegrityError:  # the row came first (a racing checkout, or a webhook)
            await session.rollback()
            async with session.begin():
                await session.execute(update(BillingAccountRow).where(
                    BillingAccountRow.tenant_id == tenant_id,
                    BillingAccountRow.stripe_customer_id.is_(None)).values(
                    stripe_customer_id=customer_id))
    async with sessions() as session:
        stored = (await session.execute(select(BillingAccountRow.stripe_customer_id).where(
            BillingAccountRow.tenant_id == tenant_id))).scalar_one()
    log.info("stripe customer for shop", extra={"tenant_id": tenant_id,
                                                 "customer_id": stored})
    return str(stored)
