"""The pricing: plans, the Stripe Prices they map to, their limits, and which plan a shop is on.

Plans come from the file BILLING_PLANS names (billing/plans.yml is the format), read once per
process and checked at start-up: a malformed file stops the process with a ConfigError naming
the file, never a shop silently without limits.

Which plan binds a shop (`effective_plan`) follows its subscription's state in our database
(billing/tables.py, kept by Stripe's webhooks: billing/events.py):
- comped: its plan, for as long as the platform keeps it so;
- active or trialing: its plan, also after a cancellation was asked for, until the period ends
  (Stripe then sends customer.subscription.deleted; if that event is late, the period's end
  decides);
- past_due (a payment failed): its plan for BILLING_GRACE_DAYS after the failure, then the
  default plan's limits until a payment succeeds;
- anything else (none, incomplete, canceled, unpaid, ...): the default plan.
Without STRIPE_API_KEY billing is off: `UNLIMITED` binds every shop.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from billing.tables import BillingAccountRow
from core.settings import ConfigError, Settings

# Subscription states (Stripe's, plus "none": the shop never subscribed, and "comped": the
# platform put the shop on a plan without Stripe, e.g. the demo shop under `make run`; a
# Checkout makes it a subscription like any other).
NONE = "none"
COMPED = "comped"
ACTIVE_STATES = frozenset({"active", "trialing"})
PAST_DUE = "past_due"


@dataclass(frozen=True)
class Limits:
    """What a plan allows; None: no limit."""

    conversations_per_month: int | None = None
    channels: int | None = None
    knowledge_documents: int | None = None
    llm_tokens_per_month: int | None = None
    own_models: bool = True
    agents: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Plan:
    name: str
    price_id: str | None  # the flat monthly Stripe Price; None: free, no Checkout
    limits: Limits
    metered_price_ids: tuple[str, ...] = ()  # usage-based Prices added to its Checkout


@dataclass(frozen=True)
class Pricing:
    plans: dict[str, Plan]
    default: str  # the plan of shops without a (good) subscription
    meters: dict[str, str] = field(default_factory=dict)  # "conversations"/"llm_tokens" -> event

    @property
    def default_plan(self) -> Plan:
        return self.plans[self.default]

    def by_price(self, price_id: str | None) -> Plan | None:
        """The plan whose flat Price this is (a subscription's item tells its plan)."""
        if not price_id:
            return None
        return next((p for p in self.plans.values() if p.price_id == price_id), None)


@dataclass(frozen=True)
class Loss:
    """One limit a plan change lowers, or that the shop's use is over on the new plan."""

    limit: str  # a Limits field
    now: int | bool | None  # the current plan's (None: no limit; own_models: yes/no)
    allowed: int | bool | None  # the new plan's
    used: int  # what the shop has or used this month now
    over: bool  # used is more than the new plan allows (own_models: models it has)


def losses(current: Plan, new: Plan, used: Mapping[str, int]) -> list[Loss]:
    """What the shop would lose going from `current` to `new` (in Limits' order): every
    limit `new` lowers (own_models taken away included) and every one its use `used` (by
    limit name) is over on `new` even if not lowered (a limit it outgrew while comped)."""
    found: list[Loss] = []
    for name in (f.name for f in fields(Limits)):
        before, after = getattr(current.limits, name), getattr(new.limits, name)
        count = used.get(name, 0)
        if name == "own_models":
            if before and not after:
                found.append(Loss(name, before, after, count, over=count > 0))
            continue
        lowered = after is not None and (before is None or after < before)
        over = after is not None and count > after
        if lowered or over:
            found.append(Loss(name, before, after, count, over))
    return found


# Billing off: no plan, no limit (a deployment that does not charge its shops).
UNLIMITED = Plan(name="unlimited", price_id=None, limits=Limits())


def _limits(raw: Any, where: str) -> Limits:
    if raw is None:
        return Limits()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: limits must be a mapping")
    known = {f.name for f in fields(Limits)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown limits {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "own_models":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: own_models must be true or false")
        elif value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                    or value < 0):
            raise ConfigError(f"{where}: {name} must be a whole number >= 0 or null")
        values[name] = value
    values.setdefault("own_models", False)
    return Limits(**values)


def parse_pricing(raw: Any, source: str) -> Pricing:
    """The pricing in a plans file's parsed YAML; ConfigError naming `source` when malformed."""
    if not isinstance(raw, dict) or not isinstance(raw.get("plans"), dict) or not raw["plans"]:
        raise ConfigError(f"{source}: expected a mapping with a non-empty `plans` mapping")
    plans: dict[str, Plan] = {}
    prices: set[str] = set()
    for name, spec in raw["plans"].items():
        where = f"{source}: plan {name!r}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a mapping")
        price = spec.get("price_id")
        metered = spec.get("metered_price_ids") or []
        if price is not None and not isinstance(price, str):
            raise ConfigError(f"{where}: price_id must be a string or null")
        if not isinstance(metered, list) or not all(isinstance(m, str) for m in metered):
            raise ConfigError(f"{where}: metered_price_ids must be a list of strings")
        for p in [price, *metered]:
            if p and p in prices:
                raise ConfigError(f"{where}: price {p} belongs to two plans")
            if p:
                prices.add(p)
        plans[str(name)] = Plan(name=str(name), price_id=price,
                                limits=_limits(spec.get("limits"), where),
                                metered_price_ids=tuple(metered))
    default = raw.get("default")
    if default not in plans:
        raise ConfigError(f"{source}: `default` must name one of the plans")
    meters = raw.get("meters") or {}
    if not isinstance(meters, dict) or not all(
            k in ("conversations", "llm_tokens") and isinstance(v, str)
            for k, v in meters.items()):
        raise ConfigError(f"{source}: `meters` maps conversations/llm_tokens to event names")
    return Pricing(plans=plans, default=str(default), meters=dict(meters))


@functools.cache
def _load(path: Path) -> Pricing:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"BILLING_PLANS: cannot read {path}: {exc}") from None
    return parse_pricing(raw, str(path))


def pricing(settings: Settings) -> Pricing:
    """The deployment's pricing (read once per file and process)."""
    return _load(settings.billing_plans)


def billing_enabled(settings: Settings) -> bool:
    return settings.stripe_api_key is not None


def effective_plan(pricing: Pricing, account: BillingAccountRow | None, now: datetime,
                   grace: timedelta) -> Plan:
    """The plan whose limits bind a shop now, from its subscription's state (module doc)."""
    chosen = pricing.plans.get(account.plan or "") if account is not None else None
    if account is None or chosen is None:
        return pricing.default_plan
    if account.status == COMPED:
        return chosen
    if account.status in ACTIVE_STATES:
        end = account.current_period_end
        if account.cancel_at_period_end and end is not None and now >= end:
            return pricing.default_plan  # cancelled, and the deleted event is late
        return chosen
    since = account.past_due_since
    if account.status == PAST_DUE and since is not None and now < since + grace:
        return chosen
    return pricing.default_plan
