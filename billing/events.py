"""Stripe's webhook events, each handled once and in whatever order they arrive: what they
change in a shop's subscription state (billing_accounts, billing/tables.py).

The gateway verifies an event's signature (connectors/billing_webhook.py) and hands it to
`receive`, which stores it in `stripe_events` by its id and handles it in ONE transaction
with the state it changes: a crash half-way commits nothing and Stripe delivers it again.
A redelivery of a handled event is acknowledged and ignored; one whose handling failed (the
failure is recorded: handled_at NULL, error set) is handled again.

Stripe sends events more than once and out of order, so:
- the subscription's state (status, plan, period, cancel flag) changes only when the event's
  `created` is not older than `state_event_created`, the time of the newest event that set
  it; an older event only fills what is still unknown (a row an invoice event made has no
  plan yet) and records ids;
- a subscription that ended (canceled, incomplete_expired) never comes back, and the end of
  a shop's older subscription does not end the one it has now;
- the shop: `client_reference_id` / `metadata.tenant_id` (set at Checkout), the row already
  holding the subscription or the customer. An event no shop can be found for is stored with
  tenant_id NULL, logged and marked handled; when Checkout later links that customer or
  subscription to a shop, those events are handled again for it.

Handled types (HANDLERS): checkout.session.completed, customer.subscription.created, .updated,
.deleted, invoice.paid, invoice.payment_failed. Others are stored, marked handled, ignored.
Both API generations are read: periods on the subscription (before 2025-03-31) or on its
items, an invoice's subscription at `invoice.subscription` or
`invoice.parent.subscription_details.subscription`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.plans import ACTIVE_STATES, COMPED, NONE, PAST_DUE, Pricing
from billing.tables import BillingAccountRow, StripeEventRow
from core.db import utcnow
from tenants.models import TenantRow

log = logging.getLogger(__name__)

CHECKOUT_COMPLETED = "checkout.session.completed"
SUBSCRIPTION_CREATED = "customer.subscription.created"
SUBSCRIPTION_UPDATED = "customer.subscription.updated"
SUBSCRIPTION_DELETED = "customer.subscription.deleted"
INVOICE_PAID = "invoice.paid"
INVOICE_PAYMENT_FAILED = "invoice.payment_failed"

CANCELED = "canceled"
ENDED = frozenset({CANCELED, "incomplete_expired"})  # final: Stripe never revives these
# A paid invoice makes these active again (Stripe does the same to the subscription).
REVIVED_BY_PAYMENT = frozenset({NONE, COMPED, "incomplete", PAST_DUE, "unpaid"})
# A failed renewal payment moves these to past_due.
FAILABLE = frozenset({NONE, COMPED, PAST_DUE, *ACTIVE_STATES})
ORPHANS_WITHIN = timedelta(days=30)  # unlinked events handled again when Checkout links them
ORPHANS_MAX = 200
ERROR_MAX = 1000


class MalformedEvent(ValueError):
    """A verified body that is not a Stripe event (no id, type or created): a 400."""


class HandlingFailed(Exception):
    """Handling failed and was recorded; Stripe should deliver the event again (a 503)."""


@dataclass(frozen=True)
class StripeEvent:
    """The envelope of a Stripe event; `object` is its `data.object` (read tolerantly)."""

    id: str
    type: str
    created: int  # unix seconds
    object: Mapping[str, Any]
    payload: dict[str, Any]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> StripeEvent:
        event_id, kind, created = raw.get("id"), raw.get("type"), raw.get("created")
        data = raw.get("data")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
            raise MalformedEvent("The event has no id.")
        if not isinstance(kind, str) or not 0 < len(kind) <= 100:
            raise MalformedEvent("The event has no type.")
        if not isinstance(created, int) or isinstance(created, bool) or created < 0:
            raise MalformedEvent("The event has no created time.")
        if not isinstance(data, Mapping) or not isinstance(data.get("object"), Mapping):
            raise MalformedEvent("The event has no data.object.")
        return cls(id=event_id, type=kind, created=created, object=data["object"],
                   payload=dict(raw))

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.created, UTC)


@dataclass(frozen=True)
class Received:
    event_id: str
    type: str
    tenant_id: str | None  # the shop whose billing it touched (forget its cached state)
    duplicate: bool  # handled before: acknowledged, not handled again


# --- reading Stripe's objects (every field may be missing or null) ----------------------------


def _id(value: Any) -> str | None:
    """An expandable field: "cus_..." or the expanded object's id."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _tenant_hint(obj: Mapping[str, Any]) -> str | None:
    hint = _mapping(obj.get("metadata")).get("tenant_id")
    return hint if isinstance(hint, str) and hint else None


@dataclass(frozen=True)
class Subscription:
    """What a subscription object says about the shop's state."""

    id: str
    customer: str | None
    status: str
    price_ids: tuple[str, ...]
    period_start: datetime | None
    period_end: datetime | None
    cancel_at_period_end: bool
    tenant_hint: str | None

    @classmethod
    def of(cls, obj: Mapping[str, Any], deleted: bool = False) -> Subscription | None:
        sub_id = _id(obj)
        if sub_id is None:
            return None
        items = [i for i in _mapping(obj.get("items")).get("data") or []
                 if isinstance(i, Mapping)]
        prices = tuple(p for p in (_id(i.get("price")) or _id(i.get("plan")) for i in items) if p)
        # Older API versions: the period is the subscription's; newer: each item's.
        first = items[0] if items else {}
        start = _time(obj.get("current_period_start")) or _time(first.get("current_period_start"))
        end = _time(obj.get("current_period_end")) or _time(first.get("current_period_end"))
        status = obj.get("status")
        return cls(id=sub_id, customer=_id(obj.get("customer")),
                   status=CANCELED if deleted else (status if isinstance(status, str)
                                                    and status else NONE),
                   price_ids=prices, period_start=start, period_end=end,
                   cancel_at_period_end=obj.get("cancel_at_period_end") is True,
                   tenant_hint=_tenant_hint(obj))


def invoice_subscription(invoice: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(subscription id, tenant hint) of an invoice, in either API generation."""
    details = _mapping(_mapping(invoice.get("parent")).get("subscription_details"))
    sub = _id(details.get("subscription")) or _id(invoice.get("subscription"))
    hint = (_tenant_hint(details) or _tenant_hint(_mapping(invoice.get("subscription_details")))
            or _tenant_hint(invoice))
    return sub, hint


# --- finding the shop ------------------------------------------------------------------------


async def _one(session: AsyncSession, *where: Any) -> BillingAccountRow | None:
    # FOR UPDATE (PostgreSQL): two events of one shop handled at once apply one after the other.
    query = select(BillingAccountRow).where(*where).with_for_update().limit(1)
    return (await session.execute(query)).scalar_one_or_none()


async def _shop_exists(session: AsyncSession, tenant_id: str) -> bool:
    found = await session.execute(select(TenantRow.id).where(TenantRow.id == tenant_id))
    return found.first() is not None


async def _account(session: AsyncSession, *, subscription_id: str | None = None,
                   tenant_hints: tuple[str | None, ...] = (),
                   customer_id: str | None = None) -> BillingAccountRow | None:
    """The shop's row: the one holding the subscription, else the shop a hint names (its row,
    or a new one), else the one holding the customer; None: no shop."""
    if subscription_id is not None:
        row = await _one(session, BillingAccountRow.stripe_subscription_id == subscription_id)
        if row is not None:
            return row
    for hint in tenant_hints:
        if hint is None or len(hint) > 36:
            continue
        row = await _one(session, BillingAccountRow.tenant_id == hint)
        if row is not None:
            return row
        if await _shop_exists(session, hint):
            row = BillingAccountRow(tenant_id=hint, status=NONE, cancel_at_period_end=False,
                                    state_event_created=0)
            session.add(row)
            return row
    if customer_id is not None:
        return await _one(session, BillingAccountRow.stripe_customer_id == customer_id)
    return None


async def _link_customer(session: AsyncSession, row: BillingAccountRow,
                         customer_id: str | None) -> None:
    """Record the shop's Stripe customer, unless another shop's row holds it (unique)."""
    if customer_id is None or row.stripe_customer_id == customer_id:
        return
    other = await _one(session, BillingAccountRow.stripe_customer_id == customer_id,
                       BillingAccountRow.tenant_id != row.tenant_id)
    if other is not None:
        log.warning("Stripe customer belongs to another shop; not linked",
                    extra={"tenant_id": row.tenant_id, "other_tenant_id": other.tenant_id})
        return
    row.stripe_customer_id = customer_id


# --- changing the state ----------------------------------------------------------------------


def _set_status(row: BillingAccountRow, status: str, at: datetime) -> None:
    row.status = status
    if status == PAST_DUE:
        row.past_due_since = row.past_due_since or at
    else:
        row.past_due_since = None


def _plan_of(pricing: Pricing, sub: Subscription) -> str | None:
    plan = next((p for p in map(pricing.by_price, sub.price_ids) if p is not None), None)
    if plan is None:
        log.warning("subscription's prices match no plan", extra={
            "subscription_id": sub.id, "prices": ",".join(sub.price_ids)})
    return plan.name if plan is not None else None


def _apply_subscription(row: BillingAccountRow, sub: Subscription, event: StripeEvent,
                        pricing: Pricing) -> bool:
    """The subscription's state onto the shop's row when this event is the newest word on it;
    True when the state changed."""
    current = row.stripe_subscription_id
    if current not in (None, sub.id) and sub.status in ENDED:
        return False  # an older subscription of the shop ended: the current one stands
    if current == sub.id and row.status in ENDED:
        return False  # ended is final, whatever arrives late
    if event.created < row.state_event_created:
        if current in (None, sub.id):  # older, but it may know what we do not yet
            row.stripe_subscription_id = sub.id
            if row.plan is None:
                row.plan = _plan_of(pricing, sub)
            row.current_period_start = row.current_period_start or sub.period_start
            row.current_period_end = row.current_period_end or sub.period_end
        return False
    row.stripe_subscription_id = sub.id
    row.plan = _plan_of(pricing, sub)
    _set_status(row, sub.status, event.at)
    row.current_period_start = sub.period_start
    row.current_period_end = sub.period_end
    row.cancel_at_period_end = sub.cancel_at_period_end
    row.state_event_created = event.created
    return True


@dataclass(frozen=True)
class Handling:
    session: AsyncSession
    pricing: Pricing
    event: StripeEvent


Handler = Callable[[Handling], Awaitable[str | None]]  # -> the shop it touched


async def _subscription_changed(h: Handling) -> str | None:
    sub = Subscription.of(h.event.object, deleted=h.event.type == SUBSCRIPTION_DELETED)
    if sub is None:
        return None
    row = await _account(h.session, subscription_id=sub.id, tenant_hints=(sub.tenant_hint,),
                         customer_id=sub.customer)
    if row is None:
        return None
    await _link_customer(h.session, row, sub.customer)
    applied = _apply_subscription(row, sub, h.event, h.pricing)
    log.info("subscription state" if applied else "subscription state not newer", extra={
        "tenant_id": row.tenant_id, "event_id": h.event.id, "status": row.status,
        "plan": row.plan})
    return row.tenant_id


async def _invoice(h: Handling, paid: bool) -> str | None:
    invoice = h.event.object
    sub_id, hint = invoice_subscription(invoice)
    customer = _id(invoice.get("customer"))
    if sub_id is None:  # a one-off invoice: no subscription state to change
        row = await _account(h.session, customer_id=customer)
        return row.tenant_id if row is not None else None
    row = await _account(h.session, subscription_id=sub_id, tenant_hints=(hint,),
                         customer_id=customer)
    if row is None:
        return None
    await _link_customer(h.session, row, customer)
    if row.stripe_subscription_id not in (None, sub_id):
        return row.tenant_id  # an invoice of another (older) subscription of the shop
    row.stripe_subscription_id = sub_id
    allowed = REVIVED_BY_PAYMENT if paid else FAILABLE
    if h.event.created >= row.state_event_created and row.status in allowed:
        _set_status(row, "active" if paid else PAST_DUE, h.event.at)
        row.state_event_created = h.event.created
    return row.tenant_id


async def _invoice_paid(h: Handling) -> str | None:
    return await _invoice(h, paid=True)


async def _invoice_payment_failed(h: Handling) -> str | None:
    return await _invoice(h, paid=False)


async def _checkout_completed(h: Handling) -> str | None:
    """Links the shop (client_reference_id, metadata.tenant_id) to its Stripe customer and
    subscription; the subscription's state comes from its own events."""
    session_obj = h.event.object
    reference = session_obj.get("client_reference_id")
    customer, sub_id = _id(session_obj.get("customer")), _id(session_obj.get("subscription"))
    row = await _account(h.session, tenant_hints=(
        reference if isinstance(reference, str) else None, _tenant_hint(session_obj)),
        customer_id=customer)
    if row is None:
        return None
    await _link_customer(h.session, row, customer)
    if sub_id is not None and (row.stripe_subscription_id is None
                               or h.event.created >= row.state_event_created):
        row.stripe_subscription_id = sub_id
    await h.session.flush()
    await _adopt_orphans(h, row)
    return row.tenant_id


async def _adopt_orphans(h: Handling, row: BillingAccountRow) -> None:
    """Events of this customer or subscription that arrived before any shop was known for
    them: handled again now, oldest first, for this shop."""
    ids = {row.stripe_customer_id, row.stripe_subscription_id} - {None}
    if not ids:
        return
    orphans = (await h.session.execute(
        select(StripeEventRow).where(
            StripeEventRow.tenant_id.is_(None), StripeEventRow.id != h.event.id,
            StripeEventRow.type.in_([t for t in HANDLERS if t != CHECKOUT_COMPLETED]),
            StripeEventRow.received_at > utcnow() - ORPHANS_WITHIN)
        .order_by(StripeEventRow.created, StripeEventRow.id).limit(ORPHANS_MAX))).scalars()
    for orphan in orphans:
        try:
            event = StripeEvent.parse(orphan.payload)
        except MalformedEvent:
            continue
        obj = event.object
        mentioned = {_id(obj), _id(obj.get("customer")), invoice_subscription(obj)[0]}
        if not ids & mentioned:
            continue
        orphan.tenant_id = await HANDLERS[event.type](Handling(h.session, h.pricing, event))
        log.info("Stripe event handled for the shop Checkout linked", extra={
            "event_id": event.id, "event_type": event.type, "tenant_id": orphan.tenant_id})


async def _ignored(h: Handling) -> str | None:
    return None


HANDLERS: dict[str, Handler] = {
    CHECKOUT_COMPLETED: _checkout_completed,
    SUBSCRIPTION_CREATED: _subscription_changed,
    SUBSCRIPTION_UPDATED: _subscription_changed,
    SUBSCRIPTION_DELETED: _subscription_changed,
    INVOICE_PAID: _invoice_paid,
    INVOICE_PAYMENT_FAILED: _invoice_payment_failed,
}


# --- receiving -------------------------------------------------------------------------------


class _AlreadyReceived(Exception):
    """Another delivery of the same event inserted it first (and handled it)."""


async def receive(sessions: async_sessionmaker, pricing: Pricing,
                  raw: Mapping[str, Any]) -> Received:
    """Store a verified event by its id and handle it once (module doc). MalformedEvent when
    it is not an event; HandlingFailed when handling failed (recorded; deliver it again)."""
    event = StripeEvent.parse(raw)
    for attempt in (1, 2):
        try:
            return await _receive_once(sessions, pricing, event)
        except _AlreadyReceived:
            return Received(event.id, event.type, None, duplicate=True)
        except IntegrityError as exc:
            # Two events of one new shop at once both created its row: the loser's
            # transaction is gone, the row is there now; once more is enough.
            if attempt == 1:
                continue
            await _record_failure(sessions, event, exc)
        except Exception as exc:
            await _record_failure(sessions, event, exc)
        raise HandlingFailed(event.id)
    raise AssertionError("unreachable")


async def _receive_once(sessions: async_sessionmaker, pricing: Pricing,
                        event: StripeEvent) -> Received:
    async with sessions() as session, session.begin():
        stored = await session.get(StripeEventRow, event.id, with_for_update=True)
        if stored is not None and stored.handled_at is not None:
            return Received(event.id, event.type, stored.tenant_id, duplicate=True)
        if stored is None:
            stored = StripeEventRow(id=event.id, type=event.type, created=event.created,
                                    payload=event.payload)
            session.add(stored)
            try:
                await session.flush()
            except IntegrityError:
                raise _AlreadyReceived() from None
        tenant_id = await HANDLERS.get(event.type, _ignored)(Handling(session, pricing, event))
        if tenant_id is None and event.type in HANDLERS:
            log.warning("Stripe event for no known shop", extra={
                "event_id": event.id, "event_type": event.type})
        stored.tenant_id = tenant_id
        stored.handled_at = utcnow()
        stored.error = None
    return Received(event.id, event.type, tenant_id, duplicate=False)


async def _record_failure(sessions: async_sessionmaker, event: StripeEvent,
                          exc: BaseException) -> None:
    """Keep the event with why it failed (handled_at NULL): the next delivery handles it."""
    log.error("Stripe event not handled", exc_info=exc, extra={
        "event_id": event.id, "event_type": event.type, "error": type(exc).__name__})
    error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX]
    try:
        async with sessions() as session, session.begin():
            stored = await session.get(StripeEventRow, event.id)
            if stored is None:
                session.add(StripeEventRow(id=event.id, type=event.type, created=event.created,
                                           payload=event.payload, error=error))
            elif stored.handled_at is None:
                stored.error = error
    except Exception as failure:  # noqa: BLE001 - the database is down: Stripe retries anyway
        log.error("Stripe event's failure not recorded", extra={
            "event_id": event.id, "error": type(failure).__name__})
