"""What Stripe does after the API calls: Checkout completes, the portal changes a subscription,
payments fail and succeed, and each of these reaches the product as signed webhook events.

Every action updates the objects (devtools/stripe_sandbox/api.py) as Stripe would and sends
Stripe's events in Stripe's order, each in Stripe's envelope (`id` evt_..., `object` "event",
`api_version`, `created`, `data.object` (+ `previous_attributes` on updates), `livemode`
false, `pending_webhooks`, `request`, `type`), POSTed with a `Stripe-Signature` made by
devtools/stripe_signing.py, retried briefly when the receiver fails (Stripe retries for days;
the sandbox a few times within a second or two).

The pages (devtools/stripe_sandbox/app.py) and tests call the same methods; tests may also
build events without sending them (`send=False`), send them in another order, with another
`created`, or again (`redeliver`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import stripe

from devtools.stripe_sandbox.api import Json, Price, StripeApi, StripeError, missing, new_id
from devtools.stripe_signing import signature_header

log = logging.getLogger(__name__)
MONTH = 30 * 86400  # the sandbox's billing period

# (url, body, headers) -> the receiver's HTTP status; raises httpx.HTTPError when unreachable.
Post = Callable[[str, bytes, dict[str, str]], Awaitable[int]]


@dataclass(frozen=True)
class Delivery:
    event_id: str
    type: str
    attempt: int
    status: int | None  # None: the receiver could not be reached


async def http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.post(url, content=body, headers=headers)).status_code


class StripeSandbox(StripeApi):
    """Stripe's API in memory plus what happens behind it (module doc).

    `webhook_url` and `webhook_secret` name the product's endpoint (None: events are made
    and kept in `events`, not sent); `post` replaces the HTTP POST (a test may hand events to
    an in-process app)."""

    def __init__(self, api_key: str | None = None, prices: dict[str, Price] | None = None,
                 base_url: str = "http://127.0.0.1:8025", *, webhook_url: str | None = None,
                 webhook_secret: str | None = None, post: Post = http_post,
                 retry_delays: tuple[float, ...] = (0.1, 0.5, 1.0)) -> None:
        super().__init__(api_key, prices, base_url)
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.post = post
        self.retry_delays = retry_delays
        self.events: list[Json] = []  # every event made, in order
        self.deliveries: list[Delivery] = []

    # -- events ------------------------------------------------------------------------------
    def event(self, type_: str, obj: Json, *, created: int | None = None,
              previous: Json | None = None) -> Json:
        """A new event about (a snapshot of) `obj`, kept in `events`, not sent."""
        data: Json = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {"id": new_id("evt"), "object": "event", "api_version": stripe.api_version,
                 "created": int(time.time()) if created is None else created, "data": data,
                 "livemode": False, "pending_webhooks": 1,
                 "request": {"id": None, "idempotency_key": None}, "type": type_}
        self.events.append(event)
        return event

    def signed(self, event: Json, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers Stripe would POST for `event`."""
        if not self.webhook_secret:
            raise RuntimeError("the sandbox has no webhook secret")
        body = json.dumps(event, indent=2).encode()
        return body, {"Content-Type": "application/json; charset=utf-8",
                      "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                      "Stripe-Signature": signature_header(body, self.webhook_secret, timestamp)}

    async def send(self, event: Json) -> int | None:
        """POST `event` to the webhook URL, retried briefly; the last status (None: unreachable)."""
        if not self.webhook_url:
            return None
        status: int | None = None
        for attempt, delay in enumerate((0.0, *self.retry_delays), start=1):
            if delay:
                await asyncio.sleep(delay)
            body, headers = self.signed(event)  # signed anew: a retry has a fresh timestamp
            try:
                status = await self.post(self.webhook_url, body, headers)
            except httpx.HTTPError:
                status = None
            self.deliveries.append(Delivery(event["id"], event["type"], attempt, status))
            log.info("stripe sandbox event sent", extra={
                "event": event["id"], "type": event["type"], "status": status,
                "attempt": attempt})
            if status is not None and 200 <= status < 300:
                return status
        log.warning("stripe sandbox event not delivered", extra={
            "event": event["id"], "type": event["type"], "status": status,
            "url": self.webhook_url})
        return status

    async def redeliver(self, event_id: str) -> int | None:
        """Send an already made event again (Stripe redelivers)."""
        return await self.send(next(e for e in self.events if e["id"] == event_id))

    async def _emit(self, events: list[Json], send: bool) -> list[Json]:
        if send:
            for event in events:
                await self.send(event)
        return events

    # -- Checkout -------------------------------------------------------------------------------
    async def complete_checkout(self, session_id: str, *, send: bool = True) -> list[Json]:
        """The customer paid: subscription active, first invoice paid, and the events
        checkout.session.completed, customer.subscription.created, invoice.paid."""
        session = self.checkout_sessions.get(session_id)
        if session is None:
            raise missing("checkout.session", session_id)
        if session["status"] != "open":
            raise ValueError(f"checkout session {session_id} is {session['status']}")
        customer_id = session["customer"]
        if not customer_id:
            customer_id = self.create_customer({"email": session["customer_email"]})["id"]
        now = int(time.time())
        sub_id = new_id("sub")
        items = [{"id": new_id("si"), "object": "subscription_item", "created": now,
                  "price": li["price"], "quantity": li["quantity"], "subscription": sub_id,
                  "current_period_start": now, "current_period_end": now + MONTH,
                  "metadata": {}} for li in self.line_items[session_id]]
        subscription = {
            "id": sub_id, "object": "subscription", "customer": customer_id,
            "status": "active", "created": now, "start_date": now, "livemode": False,
            "current_period_start": now, "current_period_end": now + MONTH,
            "cancel_at_period_end": False, "cancel_at": None, "canceled_at": None,
            "ended_at": None, "collection_method": "charge_automatically",
            "metadata": dict((session["subscription_data"] or {}).get("metadata") or {}),
            "items": {"object": "list", "data": items, "has_more": False,
                      "url": f"/v1/subscription_items?subscription={sub_id}"},
            "latest_invoice": None}
        self.subscriptions[sub_id] = subscription
        invoice = self._invoice(subscription, paid=True)
        session.update(status="complete", payment_status="paid", customer=customer_id,
                       subscription=sub_id, invoice=invoice["id"])
        return await self._emit([
            self.event("checkout.session.completed", self.public_session(session_id)),
            self.event("customer.subscription.created", subscription),
            self.event("invoice.paid", invoice)], send)

    def _invoice(self, subscription: Json, *, paid: bool) -> Json:
        now = int(time.time())
        lines = [{"id": new_id("il"), "object": "line_item",
                  "amount": item["price"]["unit_amount"] * (item["quantity"] or 0),
                  "pricing": {"price_details": {"price": item["price"]["id"]}},
                  "price": item["price"], "quantity": item["quantity"],
                  "period": {"start": item["current_period_start"],
                             "end": item["current_period_end"]}}
                 for item in subscription["items"]["data"]]
        amount = sum(line["amount"] for line in lines)
        id_ = new_id("in")
        invoice = {
            "id": id_, "object": "invoice", "customer": subscription["customer"],
            "subscription": subscription["id"],  # older API versions; newer: parent
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"subscription": subscription["id"],
                                                "metadata": subscription["metadata"]}},
            "status": "paid" if paid else "open", "paid": paid, "attempted": True,
            "attempt_count": 1, "amount_due": amount, "amount_paid": amount if paid else 0,
            "amount_remaining": 0 if paid else amount, "total": amount, "currency": "usd",
            "created": now, "livemode": False,
            "number": f"SBX-{len(self.invoices) + 1:04d}",
            "period_start": subscription["current_period_start"],
            "period_end": subscription["current_period_end"],
            "hosted_invoice_url": f"{self.base_url}/stripe/invoices/{id_}",
            "invoice_pdf": f"{self.base_url}/stripe/invoices/{id_}.pdf",
            "status_transitions": {"paid_at": now if paid else None},
            "lines": {"object": "list", "data": lines, "has_more": False,
                      "url": f"/v1/invoices/{id_}/lines"}}
        self.invoices[id_] = invoice
        subscription["latest_invoice"] = id_
        return invoice

    # -- the customer portal ---------------------------------------------------------------------
    def _updated(self, subscription: Json, previous: Json) -> Json:
        return self.event("customer.subscription.updated", subscription, previous=previous)

    async def cancel(self, subscription_id: str, *, at_period_end: bool = True,
                     send: bool = True) -> list[Json]:
        """Cancel at the period's end (customer.subscription.updated with
        cancel_at_period_end) or now (customer.subscription.deleted, status canceled)."""
        sub = self.subscription(subscription_id)
        now = int(time.time())
        if at_period_end:
            previous = {"cancel_at_period_end": sub["cancel_at_period_end"],
                        "cancel_at": sub["cancel_at"], "canceled_at": sub["canceled_at"]}
            sub.update(cancel_at_period_end=True, cancel_at=sub["current_period_end"],
                       canceled_at=now)
            return await self._emit([self._updated(sub, previous)], send)
        sub.update(status="canceled", canceled_at=now, ended_at=now)
        return await self._emit([self.event("customer.subscription.deleted", sub)], send)

    async def renew(self, subscription_id: str, *, send: bool = True) -> list[Json]:
        """Undo a cancellation at the period's end."""
        sub = self.subscription(subscription_id)
        previous = {"cancel_at_period_end": True, "cancel_at": sub["cancel_at"],
                    "canceled_at": sub["canceled_at"]}
        sub.update(cancel_at_period_end=False, cancel_at=None, canceled_at=None)
        return await self._emit([self._updated(sub, previous)], send)

    async def change_price(self, subscription_id: str, price_id: str, *,
                           send: bool = True) -> list[Json]:
        """Switch the subscription's (first licensed) item to another Price."""
        sub = self.subscription(subscription_id)
        price = self.price(price_id, "price")
        previous = {"items": copy.deepcopy(sub["items"])}
        item = next((i for i in sub["items"]["data"]
                     if i["price"]["recurring"]["usage_type"] == "licensed"),
                    sub["items"]["data"][0])
        item["price"] = price.as_stripe()
        if price.metered:
            item["quantity"] = None
        elif item["quantity"] is None:
            item["quantity"] = 1
        return await self._emit([self._updated(sub, previous)], send)

    async def fail_payment(self, subscription_id: str, *, send: bool = True) -> list[Json]:
        """A renewal's payment failed: invoice.payment_failed, then the subscription
        past_due (customer.subscription.updated)."""
        sub = self.subscription(subscription_id)
        invoice = self._invoice(sub, paid=False)
        previous = {"status": sub["status"]}
        sub["status"] = "past_due"
        return await self._emit([self.event("invoice.payment_failed", invoice),
                                 self._updated(sub, previous)], send)

    async def pay(self, subscription_id: str, *, send: bool = True) -> list[Json]:
        """The open invoice is paid (or a new period's): invoice.paid, then the
        subscription active again (customer.subscription.updated)."""
        sub = self.subscription(subscription_id)
        invoice = self.invoices.get(sub["latest_invoice"] or "")
        if invoice is None or invoice["status"] != "open":
            invoice = self._invoice(sub, paid=True)
        else:
            now = int(time.time())
            invoice.update(status="paid", paid=True, amount_paid=invoice["amount_due"],
                           amount_remaining=0, attempt_count=invoice["attempt_count"] + 1,
                           status_transitions={"paid_at": now})
        previous = {"status": sub["status"]}
        sub["status"] = "active"
        return await self._emit([self.event("invoice.paid", invoice),
                                 self._updated(sub, previous)], send)

    def customer_subscriptions(self, customer_id: str) -> list[Json]:
        return [s for s in self.subscriptions.values() if s["customer"] == customer_id]


__all__ = ["Delivery", "Price", "StripeError", "StripeSandbox", "http_post"]
