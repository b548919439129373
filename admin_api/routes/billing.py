"""The shop's billing for its owners: plan, subscription, usage against the plan's limits and
invoices (GET /billing), the plans on offer (GET /billing/plans), and the Stripe pages that
change them: Checkout to subscribe (POST /billing/checkout), the customer portal for payment
methods, cancellation and plan changes (POST /billing/portal). Owners only.

What the page shows comes from our database, kept by Stripe's webhooks (billing/events.py on
the gateway): a plan bought in Checkout shows here once Stripe's events arrive, not when the
owner comes back from Checkout. Only the invoices are read from Stripe on each request; when
Stripe fails the page still answers, with no invoices and `invoices_unavailable`.

An owner whose subscription is active asking for another plan gets the portal's confirmation
page for that change (flow subscription_update_confirm) instead of a second subscription.
Stripe down: 502 `{"detail"}`; Stripe refusing the request: 409. Billing off (no
STRIPE_API_KEY): GET /billing shows the plan "unlimited" without limits, the pages are 409.
Links back from Stripe open the owner page's billing section (/app/#billing) on
ADMIN_PUBLIC_URL, or on the origin of the request (as invitations do).

What a plan costs is its Stripe Price's (amount, currency, interval), read from Stripe so the
page never states a price Checkout would not charge: an owner should see it before being sent
to Stripe. A Price's amount and interval cannot change once created (Stripe makes a new Price
instead), so each is read once per process and kept; one Stripe cannot answer for now is
`price: null` (the page says Checkout shows it) and asked for again next time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import weakref
from datetime import datetime
from typing import Any

import stripe
from pydantic import Field
from sqlalchemy import select

from admin_api.api import API, Call, Model
from admin_api.audit import record
from admin_api.errors import ApiError, BadGateway, Conflict, NotFound, Unprocessable
from admin_api.plan_limits import agent_seats, configured_channels, document_count
from admin_api.principal import OWNERS
from admin_api.training.models import ready_count
from billing.account import BillingState
from billing.plans import ACTIVE_STATES, COMPED, PAST_DUE, Limits, Loss, Plan, losses
from billing.stripe_api import StripeApi, StripeFailure, StripeUnavailable, ensure_customer
from billing.usage import monthly_usage
from connectors.channels import CHANNELS
from core.db import utcnow
from tenants.crypto import CredentialsError
from tenants.models import TenantRow

log = logging.getLogger(__name__)

PAGE = "/app/"
SECTION = "#billing"


class LimitsOut(Model):
    """What the plan allows; null: no limit."""

    conversations_per_month: int | None
    channels: int | None = Field(description="channels besides the web widget")
    knowledge_documents: int | None
    llm_tokens_per_month: int | None
    own_models: bool = Field(description="designers may train the shop's own models")
    agents: int | None = Field(description="people with the agent role (owners uncounted)")

    @classmethod
    def of(cls, limits: Limits) -> LimitsOut:
        return cls(**limits.as_dict())


class UsageOut(Model):
    month: str = Field(description="the calendar month (UTC) counted, e.g. 2026-11")
    conversations: int = Field(description="conversations the bot served this month")
    conversations_refused: int = Field(
        description="conversations started past the monthly limit (the visitor got a short "
                    "message with the shop's contact)")
    llm_answers: int = Field(description="knowledge answers the LLM wrote this month")
    llm_tokens: int = Field(description="their input and output tokens")
    channels: int = Field(description="configured channels besides the web widget")
    knowledge_documents: int
    agents: int = Field(description="agent seats: agent_people + agent_api_keys")
    agent_people: int = Field(description="people with the agent role, pending invitations "
                                          "as agents included (owners uncounted)")
    agent_api_keys: int = Field(description="unrevoked agent API keys (a key claims and "
                                            "answers conversations as a person does)")
    shop_models: int = Field(description="the shop's own trained models")


class InvoiceOut(Model):
    number: str | None
    amount: int = Field(description="the total in the currency's smallest unit (cents)")
    currency: str
    status: str | None = Field(description="draft, open, paid, uncollectible or void")
    hosted_invoice_url: str | None
    created: datetime


class BillingOut(Model):
    enabled: bool = Field(description="false: this deployment does not charge (no limits)")
    plan: str = Field(description="the plan whose limits bind the shop now")
    subscribed_plan: str | None = Field(
        description="the subscription's plan, whatever its state (it differs from `plan` "
                    "after the grace period of a failed payment, or once cancelled)")
    status: str = Field(description="Stripe's subscription status (active, trialing, "
                                    "past_due, canceled, ...) or none")
    customer_id: str | None
    period_end: datetime | None
    cancel_at_period_end: bool = Field(description="cancelled: the plan ends at period_end")
    grace_ends: datetime | None = Field(
        description="past_due: when the limits tighten to the free plan's unless paid")
    usage: UsageOut
    limits: LimitsOut
    invoices: list[InvoiceOut] = Field(description="the latest invoices, newest first")
    invoices_unavailable: bool = Field(description="Stripe could not be asked for them now")


class PriceOut(Model):
    """A Stripe Price as an owner reads it."""

    amount: int | None = Field(description="per interval (or per unit used, metered) in the "
                                           "currency's smallest unit (cents); null: tiered")
    currency: str = Field(description="ISO code, lower case as Stripe gives it (usd)")
    interval: str | None = Field(description="day, week, month or year; null: one-time")
    interval_count: int = Field(description="intervals between charges (1: every month)")
    metered: bool = Field(description="charged per unit used, not flat")
    meters: str | None = Field(
        description="what a metered Price counts, named as the pricing's meters are: "
                    "conversations or llm_tokens (its Stripe Billing Meter's event name); "
                    "null: flat, or Stripe's Price names no meter of this deployment")


class PlanOut(Model):
    name: str
    price_id: str | None = Field(description="the Stripe Price; null: free, no checkout")
    price: PriceOut | None = Field(
        description="what price_id charges; null for a free plan, or when Stripe could not "
                    "say now (Checkout shows it)")
    usage_prices: list[PriceOut] = Field(
        description="usage-based Prices Checkout adds to the flat one (`meters` says per "
                    "what), those Stripe could say now")
    limits: LimitsOut
    current: bool = Field(description="the plan whose limits bind the shop now")


class CheckoutIn(Model):
    plan: str = Field(min_length=1, max_length=64, description="a plan of GET /billing/plans")
    confirm_losses: bool = Field(
        False, description="the owner saw the 409's `losses` (what the plan allows less of "
                           "than the shop has now) and goes on")


class LossOut(Model):
    """A limit the chosen plan lowers, or that the shop's use is over on it."""

    limit: str = Field(description="a name of `limits` (own_models: the feature)")
    now: int | bool | None = Field(description="the current plan's; null: no limit")
    allowed: int | bool | None = Field(description="the chosen plan's; null: no limit")
    used: int = Field(description="the shop's use now (`usage`: this month for the monthly "
                                  "ones; own_models: the shop's models)")
    over: bool = Field(description="used is more than the chosen plan allows")


class UrlOut(Model):
    url: str = Field(description="the Stripe page to open")


def _stripe(call: Call[Any, Any]) -> StripeApi:
    api: StripeApi | None = getattr(call.ctx, "stripe", None)
    if api is None or not call.ctx.billing.enabled:
        raise Conflict("billing is not enabled on this deployment (STRIPE_API_KEY is unset)")
    return api


def _back_to(call: Call[Any, Any], query: str = "") -> str:
    base = call.ctx.settings.admin_public_url or f"{call.request.scheme}://{call.request.host}"
    return f"{base.rstrip('/')}{PAGE}{query}{SECTION}"


def _failed(exc: StripeFailure) -> ApiError:
    if isinstance(exc, StripeUnavailable):
        return BadGateway(exc.detail)
    return Conflict(exc.detail)


async def _channel_count(call: Call[Any, Any]) -> int:
    async with call.ctx.sessions() as session:
        row = (await session.execute(select(TenantRow).where(TenantRow.id == call.shop))
               ).scalar_one_or_none()
    if row is None:
        raise NotFound("no such shop")
    try:
        credentials = call.ctx.box.open(row.credentials_encrypted)
    except CredentialsError:
        credentials = {}  # unreadable here: the gateway cannot use them either
    return len(configured_channels(credentials, {c.name: c.section for c in CHANNELS}))


async def _invoices(call: Call[Any, Any], state: BillingState) -> tuple[list[InvoiceOut], bool]:
    api: StripeApi | None = getattr(call.ctx, "stripe", None)
    if api is None or state.customer_id is None:
        return [], False
    try:
        found = await api.invoices(state.customer_id)
    except StripeFailure:
        return [], True  # the page still answers; billing/stripe_api.py logged why
    return [InvoiceOut(**invoice.as_dict()) for invoice in found], False


async def _usage(call: Call[Any, Any]) -> UsageOut:
    month = await monthly_usage(call.ctx.sessions, call.shop, utcnow())
    people, keys = await agent_seats(call)
    return UsageOut(**month.as_dict(), channels=await _channel_count(call),
                    knowledge_documents=await document_count(call),
                    agents=people + keys, agent_people=people, agent_api_keys=keys,
                    shop_models=await ready_count(call.ctx.sessions, call.shop))


@API.route("GET", "/billing", roles=OWNERS, response=BillingOut,
           summary="The shop's plan, subscription, usage against its limits, and invoices")
async def get_billing(call: Call[None, None]) -> BillingOut:
    """Usage counts this calendar month (UTC) for conversations and the LLM; channels,
    documents and agents as they are now. `limits` are the binding plan's."""
    state = await call.ctx.billing.state(call.shop)
    usage = await _usage(call)
    invoices, unavailable = await _invoices(call, state)
    return BillingOut(enabled=call.ctx.billing.enabled, plan=state.plan.name,
                      subscribed_plan=state.subscribed_plan, status=state.status,
                      customer_id=state.customer_id, period_end=state.period_end,
                      cancel_at_period_end=state.cancel_at_period_end,
                      grace_ends=state.grace_ends, usage=usage,
                      limits=LimitsOut.of(state.plan.limits), invoices=invoices,
                      invoices_unavailable=unavailable)


# Prices read from Stripe, per StripeApi (one per app, so per deployment's Stripe account).
_PRICES: weakref.WeakKeyDictionary[StripeApi, dict[str, PriceOut]] = (
    weakref.WeakKeyDictionary())


def _price_of(raw: dict[str, Any], meters: str | None) -> PriceOut:
    recurring = raw.get("recurring") or {}
    amount = raw.get("unit_amount")
    return PriceOut(amount=int(amount) if isinstance(amount, int) else None,
                    currency=str(raw.get("currency") or ""),
                    interval=recurring.get("interval"),
                    interval_count=int(recurring.get("interval_count") or 1),
                    metered=recurring.get("usage_type") == "metered", meters=meters)


async def _meter_of(api: StripeApi, raw: dict[str, Any], events: dict[str, str]) -> str | None:
    """Which of the pricing's meters (conversations, llm_tokens) a metered Price bills from:
    Stripe's Price names its Billing Meter, whose event name is the one billing/meters.py
    reports to. The plan file only lists a plan's metered Prices, so this is the one place
    that says per what an owner pays; a Price of no meter of ours is None ("per unit")."""
    meter_id = (raw.get("recurring") or {}).get("meter")
    if not meter_id:
        return None
    meter = (await api.client.v1.billing.meters.retrieve_async(str(meter_id))).to_dict()
    return next((name for name, event in sorted(events.items())
                 if event == meter.get("event_name")), None)


async def _price(api: StripeApi, price_id: str, events: dict[str, str]) -> PriceOut | None:
    known = _PRICES.setdefault(api, {})
    if price_id in known:
        return known[price_id]
    try:
        raw = (await api.client.v1.prices.retrieve_async(price_id)).to_dict()
        meters = await _meter_of(api, raw, events)
    except stripe.StripeError as exc:
        log.warning("stripe price read failed", extra={
            "price_id": price_id, "stripe_error": type(exc).__name__,
            "http_status": exc.http_status})
        return None
    known[price_id] = _price_of(raw, meters)
    return known[price_id]


async def _prices(call: Call[Any, Any], plans: list[Plan]) -> dict[str, PriceOut]:
    """The plans' Prices Stripe could tell now, by id (none with billing off)."""
    api: StripeApi | None = getattr(call.ctx, "stripe", None)
    wanted = sorted({p for plan in plans for p in (plan.price_id, *plan.metered_price_ids)
                     if p})
    if api is None or not wanted:
        return {}
    events = call.ctx.billing.pricing.meters
    found = await asyncio.gather(*(_price(api, price_id, events) for price_id in wanted))
    return {price_id: price for price_id, price in zip(wanted, found, strict=True)
            if price is not None}


@API.route("GET", "/billing/plans", roles=OWNERS, response=list[PlanOut],
           summary="The plans on offer with their limits and prices")
async def list_plans(call: Call[None, None]) -> list[PlanOut]:
    """Empty when billing is off (nothing is charged or limited). Prices are Stripe's."""
    pricing = call.ctx.billing.pricing
    if pricing is None:
        return []
    state = await call.ctx.billing.state(call.shop)
    plans = list(pricing.plans.values())
    prices = await _prices(call, plans)
    return [PlanOut(name=plan.name, price_id=plan.price_id,
                    price=prices.get(plan.price_id) if plan.price_id else None,
                    usage_prices=[prices[p] for p in plan.metered_price_ids if p in prices],
                    limits=LimitsOut.of(plan.limits), current=plan.name == state.plan.name)
            for plan in plans]


def _plan(call: Call[CheckoutIn, None]) -> Plan:
    plans = call.ctx.billing.pricing.plans
    plan: Plan | None = plans.get(call.body.plan)
    if plan is None:
        raise Unprocessable(f"no plan called {call.body.plan[:64]!r} (one of: "
                            f"{', '.join(plans)})")
    if plan.price_id is None:
        raise Unprocessable(
            f"the {plan.name} plan is free and needs no checkout; to leave a paid plan, "
            "cancel it in the customer portal (POST /api/v1/billing/portal)")
    return plan


# What each limit counts, as the 409 of a plan with less says it.
_NOUNS = {"conversations_per_month": "conversations a month",
          "llm_tokens_per_month": "LLM tokens a month",
          "channels": "channels besides the web widget",
          "knowledge_documents": "knowledge documents",
          "agents": "agent seats (people with the agent role and agent API keys)"}
_USED = {"conversations_per_month": "conversations", "llm_tokens_per_month": "llm_tokens",
         "channels": "channels", "knowledge_documents": "knowledge_documents",
         "agents": "agents", "own_models": "shop_models"}


def _loss_words(loss: Loss) -> str:
    if loss.limit == "own_models":
        return "no own models (designers cannot train the shop's own models)"
    now = "no limit" if loss.now is None else f"{loss.now:,}"
    said = f"{loss.allowed:,} {_NOUNS.get(loss.limit, loss.limit)} (now {now}"
    return f"{said}; the shop has {loss.used:,}, more than that)" if loss.over else f"{said})"


async def _confirmed(call: Call[CheckoutIn, None], current: Plan, plan: Plan) -> list[str]:
    """409 with `losses` when `plan` allows less than `current` or than the shop uses, until
    the owner confirms (`confirm_losses`): a plan change that takes something away is said
    before Stripe is asked. The confirmed losses' names (for the audit log)."""
    usage = (await _usage(call)).model_dump()
    found = losses(current, plan, {limit: usage[name] for limit, name in _USED.items()})
    if found and not call.body.confirm_losses:
        raise Conflict(
            f"the {plan.name} plan allows less than the shop has now on the {current.name} "
            f"plan: {'; '.join(_loss_words(loss) for loss in found)}. Send confirm_losses: "
            "true to go on", extra={"losses": [LossOut(**dataclasses.asdict(loss)).model_dump()
                                               for loss in found],
                                    "confirm": "confirm_losses"})
    return [loss.limit for loss in found]


@API.route("POST", "/billing/checkout", roles=OWNERS, body=CheckoutIn, response=UrlOut,
           summary="Subscribe to a plan (Stripe Checkout) or change plan (customer portal)",
           errors=(409, 502))
async def start_checkout(call: Call[CheckoutIn, None]) -> UrlOut:
    """Without an active subscription: a Stripe Checkout page for the plan. With one: the
    customer portal's page confirming the change to the plan. The plan applies once Stripe's
    events arrive (GET /billing shows it). A free plan or an unknown one: 422.

    A plan that allows less than the one binding now (a lower limit, no own models), or less
    than the shop uses (an agent seat, channel, document or this month's conversations over
    its limit): 409 `{"detail", "losses": [{limit, now, allowed, used, over}], "confirm":
    "confirm_losses"}` before Stripe is asked; the same body with `confirm_losses: true`
    goes on. Comped shops too: a smaller paid plan ends the comped one."""
    api = _stripe(call)
    plan = _plan(call)
    state = await call.ctx.billing.state(call.shop)
    mode = "checkout"
    lost: list[str] = []
    try:
        if state.status in ACTIVE_STATES and state.subscription_id and state.customer_id:
            if state.subscribed_plan == plan.name:
                raise Conflict(f"the shop is on the {plan.name} plan already; manage it in "
                               "the customer portal (POST /api/v1/billing/portal)")
            lost = await _confirmed(call, state.plan, plan)
            mode = "plan_change"
            url = await api.portal_session(
                customer_id=state.customer_id, return_url=_back_to(call),
                subscription_id=state.subscription_id, new_price_id=plan.price_id)
        elif state.status == PAST_DUE:
            raise Conflict("a payment failed: update the payment method in the customer "
                           "portal first (POST /api/v1/billing/portal)")
        elif state.status == COMPED and state.subscribed_plan == plan.name:
            raise Conflict(f"the shop has the {plan.name} plan at no charge already; "
                           "subscribing to it would charge for what it has")
        else:
            lost = await _confirmed(call, state.plan, plan)
            customer = await ensure_customer(api, call.ctx.sessions, call.shop)
            url = await api.checkout_session(
                plan=plan, customer_id=customer, tenant_id=call.shop,
                success_url=_back_to(call, "?checkout=done"),
                cancel_url=_back_to(call, "?checkout=cancelled"))
    except StripeFailure as exc:
        raise _failed(exc) from None
    await record(call, "billing.checkout", target=plan.name,
                 before={"plan": state.subscribed_plan, "status": state.status},
                 after={"plan": plan.name, "mode": mode, "losses_confirmed": lost})
    return UrlOut(url=url)


@API.route("POST", "/billing/portal", roles=OWNERS, response=UrlOut,
           summary="Open the Stripe customer portal (payment methods, cancellation, invoices)",
           errors=(409, 502))
async def open_portal(call: Call[None, None]) -> UrlOut:
    """409 until the shop has a Stripe customer (its first checkout makes one)."""
    api = _stripe(call)
    state = await call.ctx.billing.state(call.shop)
    if state.customer_id is None:
        raise Conflict("choose a plan first (GET /api/v1/billing/plans, then POST "
                       "/api/v1/billing/checkout)")
    try:
        url = await api.portal_session(customer_id=state.customer_id,
                                       return_url=_back_to(call))
    except StripeFailure as exc:
        raise _failed(exc) from None
    return UrlOut(url=url)
