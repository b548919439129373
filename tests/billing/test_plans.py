"""The pricing file and which plan binds a shop: active, cancelled at the period's end,
past due within and after the grace period, never subscribed; billing off is unlimited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from billing.plans import UNLIMITED, effective_plan, parse_pricing, pricing
from billing.tables import BillingAccountRow
from core.settings import ROOT, ConfigError, Settings
from tests.core.test_settings import SECRETS

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
GRACE = timedelta(days=7)
PRICING = parse_pricing(yaml.safe_load((ROOT / "billing" / "plans.yml").read_text()), "plans")


def account(status: str, plan: str = "pro", **fields: object) -> BillingAccountRow:
    return BillingAccountRow(tenant_id="t", plan=plan, status=status,
                             cancel_at_period_end=fields.pop("cancel_at_period_end", False),
                             **fields)


def test_the_development_pricing_reads_and_maps_prices_to_plans() -> None:
    assert PRICING.default == "free" and PRICING.default_plan.price_id is None
    pro = PRICING.plans["pro"]
    assert PRICING.by_price(pro.price_id) is pro and PRICING.by_price("price_unknown") is None
    assert pro.limits.own_models and not PRICING.plans["free"].limits.own_models
    assert PRICING.plans["free"].limits.conversations_per_month == 100
    assert pro.limits.channels is None  # no limit


def test_a_subscription_binds_while_active_and_a_cancelled_one_until_its_period_ends() -> None:
    assert effective_plan(PRICING, None, NOW, GRACE).name == "free"
    assert effective_plan(PRICING, account("active"), NOW, GRACE).name == "pro"
    assert effective_plan(PRICING, account("trialing", "starter"), NOW, GRACE).name == "starter"
    cancelling = account("active", cancel_at_period_end=True,
                         current_period_end=NOW + timedelta(days=3))
    assert effective_plan(PRICING, cancelling, NOW, GRACE).name == "pro"
    assert effective_plan(PRICING, cancelling, NOW + timedelta(days=3), GRACE).name == "free"
    # Renewing (not cancelled): a late renewal event does not drop the shop to free.
    renewing = account("active", current_period_end=NOW - timedelta(days=2))
    assert effective_plan(PRICING, renewing, NOW, GRACE).name == "pro"
    for ended in ("canceled", "unpaid", "incomplete", "incomplete_expired", "none"):
        assert effective_plan(PRICING, account(ended), NOW, GRACE).name == "free"
    assert effective_plan(PRICING, account("active", plan="retired"), NOW, GRACE).name == "free"
    # Comped by the platform (the demo shop under `make run`): its plan, no period to end.
    assert effective_plan(PRICING, account("comped"), NOW, GRACE).name == "pro"


def test_past_due_keeps_the_plan_for_the_grace_period_then_the_default_plan_binds() -> None:
    failed = account("past_due", past_due_since=NOW - timedelta(days=6, hours=23))
    assert effective_plan(PRICING, failed, NOW, GRACE).name == "pro"
    assert effective_plan(PRICING, failed, NOW + timedelta(hours=1), GRACE).name == "free"
    assert effective_plan(PRICING, account("past_due"), NOW, GRACE).name == "free"


@pytest.mark.parametrize(("raw", "message"), [
    ({"plans": {}}, "non-empty `plans`"),
    ({"default": "gold", "plans": {"free": {}}}, "`default` must name"),
    ({"default": "free", "plans": {"free": {"limits": {"seats": 3}}}}, "unknown limits seats"),
    ({"default": "free", "plans": {"free": {"limits": {"agents": -1}}}}, "agents must be"),
    ({"default": "free", "plans": {"free": {"limits": {"own_models": "yes"}}}}, "own_models"),
    ({"default": "a", "plans": {"a": {"price_id": "p"}, "b": {"price_id": "p"}}}, "two plans"),
    ({"default": "free", "plans": {"free": {}}, "meters": {"seats": "x"}}, "meters"),
])
def test_a_malformed_pricing_file_is_a_config_error_naming_it(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_pricing(raw, "plans.yml")


def test_billing_off_is_unlimited_and_the_settings_name_the_pricing_file(tmp_path: Path) -> None:
    assert all(value in (None, True) for value in UNLIMITED.limits.as_dict().values())
    custom = tmp_path / "plans.yml"
    custom.write_text("default: basic\nplans:\n  basic:\n    limits: {agents: 2}\n")
    settings = Settings.from_env({**SECRETS, "BILLING_PLANS": str(custom)})
    assert pricing(settings).default_plan.limits.agents == 2
    broken = tmp_path / "broken.yml"
    broken.write_text("plans: [")
    with pytest.raises(ConfigError, match="BILLING_PLANS"):
        pricing(Settings.from_env({**SECRETS, "BILLING_PLANS": str(broken)}))
