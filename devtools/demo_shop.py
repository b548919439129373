"""The `demo` shop: its settings, channel credentials, fixed orders and knowledge base.

Seeding restores the shop completely, matched by its fixed id: whatever a developer or a test
changed (slug, name, greeting, return window, order backend, LLM settings, widget), the next
`python -m devtools.bootstrap` puts the demo values back. Channel credentials keep their
secrets when they are complete (a running sandbox or try_channel keeps working); sections that
are missing or incomplete get fresh development secrets. Order dates are relative to the moment
of seeding, so "shipped 2 days ago" stays true; return requests are left alone.

Under `make run` (devtools/bootstrap.py `main`, not the seeding tests use) it is also comped on the
development pricing's `pro` plan (`comp_demo_plan`, billing/plans.yml), so the demo answers
every visitor and keeps all its channels whatever the free plan allows; an owner can still
take a plan through the sandbox's Checkout, which makes it a subscription like any shop's
(and the next bootstrap leaves that alone).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions.commerce.tables import DemoOrderItemRow, DemoOrderRow
from billing.plans import COMPED, NONE
from billing.tables import BillingAccountRow
from core.db import utcnow
from tenants.crypto import CredentialsBox, CredentialsError
from tenants.models import TenantRow

log = logging.getLogger(__name__)

DEMO_TENANT_ID = "7d3c1a52-8a1e-4c4b-9f0e-5d2a6b3c0001"
DEMO_SLUG = "demo"
DEMO_NAME = "Demo Outfitters"
DEMO_RETURN_WINDOW_DAYS = 30
DEMO_ORDER_BACKEND = "demo"


@dataclass(frozen=True)
class _DemoOrder:
    number: str
    email: str
    status: str
    placed_days_ago: int
    items: tuple[tuple[str, str], ...]  # (sku, name)
    shipped_days_ago: int | None = None
    delivered_days_ago: int | None = None
    cancelled_days_ago: int | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None


DEMO_ORDERS = (
    _DemoOrder("1001", "alex@example.com", "shipped", 4,
               (("SHOE-RUN-42", "Running shoes"), ("SOCK-3PK", "Socks")),
               shipped_days_ago=2, carrier="UPS", tracking_number="1Z999AA10123456784",
               tracking_url="https://www.ups.com/track?tracknum=1Z999AA10123456784"),
    _DemoOrder("1002", "sam@example.com", "delivered", 14,
               (("JKT-DENIM-M", "Denim jacket"), ("SCARF-WOOL", "Scarf")),
               shipped_days_ago=12, delivered_days_ago=10, carrier="DHL",
               tracking_number="JD014600006281230704",
               tracking_url="https://www.dhl.com/en/express/tracking.html?AWB=JD014600006281230704"),
    _DemoOrder("1003", "sam@example.com", "delivered", 65,
               (("COAT-WOOL-L", "Wool coat"),),
               shipped_days_ago=63, delivered_days_ago=60, carrier="UPS",
               tracking_number="1Z999AA10123456791"),
    _DemoOrder("1004", "kim@example.com", "pending", 1, (("BAG-BACK-20", "Backpack"),)),
    _DemoOrder("1005", "kim@example.com", "cancelled", 6, (("BTL-STEEL-750", "Water bottle"),),
               cancelled_days_ago=5),
)

# The demo shop's knowledge base: policies, FAQ and catalogue (python -m devtools.bootstrap
# ingests it).
DEMO_KNOWLEDGE = Path(__file__).resolve().parent / "demo_knowledge"

DEMO_GREETING = (
    "Hi, welcome to Demo Outfitters! I can check where your order is, start a return, "
    "or get you to someone from our team. How can I help?"
)


# The web widget's public key (it is in every page that embeds the widget: not a secret).
DEMO_WIDGET_KEY = "pk_demo_outfitters"
DEMO_WIDGET_THEME = {"primary": "#1f6f5c", "text": "#ffffff", "title": "Demo Outfitters",
                     "position": "right"}
# Where the demo shop's channels are reached. `make run` points the providers' APIs and SMTP
# at the local sandbox (devtools/sandbox.py); try it with `python -m devtools.try_channel`.
DEMO_SMS_NUMBER = "+15005550006"
DEMO_WHATSAPP_NUMBER = "+14155238886"
DEMO_PHONE_NUMBER_ID = "106540352242922"
DEMO_EMAIL = "support@demo-outfitters.example"
SANDBOX_SMTP_PORT = 2525  # the sandbox's default; ProcessSettings.sandbox_smtp_port moves it

# The made-up parts of each channel's credentials. A section with all of them is complete and
# keeps them on every seed; the rest of the section is reset to the demo values.
_SECRETS = {
    "twilio": ("account_sid", "auth_token"),
    "meta_whatsapp": ("app_secret", "verify_token", "access_token"),
    "email": ("mailgun_signing_key",),
}


class DemoShopConflict(RuntimeError):
    """Another tenant holds the demo shop's slug or widget key."""


def demo_channel_credentials(smtp_port: int = SANDBOX_SMTP_PORT) -> dict[str, dict[str, Any]]:
    """Development credentials for every channel, with secrets made up for this database."""
    return {
        "twilio": {"account_sid": "AC" + secrets.token_hex(16),
                   "auth_token": secrets.token_hex(16),
                   "sms_numbers": [DEMO_SMS_NUMBER], "whatsapp_numbers": [DEMO_WHATSAPP_NUMBER]},
        "meta_whatsapp": {"app_secret": secrets.token_hex(16),
                          "verify_token": secrets.token_urlsafe(16),
                          "access_token": "EAAG" + secrets.token_urlsafe(32),
                          "phone_number_id": DEMO_PHONE_NUMBER_ID,
                          # Meta's pre-approved sample template, for replies outside 24 h.
                          "template": {"name": "hello_world", "language": "en_US"}},
        "email": {"address": DEMO_EMAIL, "inbound": "mailgun", "from_name": "Demo Outfitters",
                  "mailgun_signing_key": "key-" + secrets.token_hex(16),
                  "smtp": {"host": "127.0.0.1", "starttls": False, "port": smtp_port}},
    }


def restored_channel_credentials(current: dict[str, Any],
                                 smtp_port: int = SANDBOX_SMTP_PORT) -> dict[str, Any]:
    """The demo channel sections as they should be: complete ones keep their secrets (a
    running sandbox or try_channel keeps working), missing or incomplete ones get fresh ones;
    numbers, addresses and the SMTP port are the demo values. Other sections are kept."""
    restored = dict(current)
    for name, fresh in demo_channel_credentials(smtp_port).items():
        section = current.get(name)
        keys = _SECRETS[name]
        if isinstance(section, dict) and all(isinstance(section.get(k), str) and section[k]
                                             for k in keys):
            fresh = {**fresh, **{k: section[k] for k in keys}}
        restored[name] = fresh
    return restored


def _restore_channels(row: TenantRow, box: CredentialsBox | None, smtp_port: int) -> None:
    if box is None:
        return
    current: dict[str, Any] = {}
    if row.credentials_encrypted:
        try:
            current = box.open(row.credentials_encrypted)
        except CredentialsError:
            # Sealed with another key (e.g. var/dev.env regenerated over a kept database):
            # nothing in it is readable, so every channel gets fresh development secrets.
            log.warning("demo shop credentials unreadable with this key: writing fresh ones",
                        extra={"tenant_id": row.id})
    restored = restored_channel_credentials(current, smtp_port)
    if restored != current:
        row.credentials_encrypted = box.seal(restored)


def _column_default(name: str) -> Any:
    """The tenants table's default for a column (the demo shop uses the defaults)."""
    return TenantRow.__table__.c[name].default.arg


async def _check_no_conflict(session: AsyncSession) -> None:
    others = (await session.execute(
        select(TenantRow.id, TenantRow.slug, TenantRow.widget_key)
        .where(TenantRow.id != DEMO_TENANT_ID)
        .where(or_(TenantRow.slug == DEMO_SLUG, TenantRow.widget_key == DEMO_WIDGET_KEY))
    )).all()
    if not others:
        return
    held = "; ".join(
        f"tenant {other.id} (slug {other.slug!r}) holds "
        + " and ".join(what for what, taken in (
            (f"the slug {DEMO_SLUG!r}", other.slug == DEMO_SLUG),
            (f"the widget key {DEMO_WIDGET_KEY!r}", other.widget_key == DEMO_WIDGET_KEY)) if taken)
        for other in others)
    message = (f"cannot restore the demo shop ({DEMO_TENANT_ID}): {held}. Give that tenant "
               f"another slug or widget key, then run the bootstrap again.")
    log.error("demo shop conflict", extra={"conflicting_tenants": [o.id for o in others]})
    raise DemoShopConflict(message)


async def seed_demo_tenant(session: AsyncSession, box: CredentialsBox | None = None,
                           smtp_port: int = SANDBOX_SMTP_PORT) -> TenantRow:
    """Create the demo shop or put every one of its settings back to the demo values.

    With `box` (the credentials key is known), its channel credentials are restored too.
    Raises DemoShopConflict when another tenant holds the slug or the widget key.
    """
    await _check_no_conflict(session)
    row = await session.get(TenantRow, DEMO_TENANT_ID)
    if row is None:
        row = TenantRow(id=DEMO_TENANT_ID)
        session.add(row)
    row.slug = DEMO_SLUG
    row.name = DEMO_NAME
    row.greeting = DEMO_GREETING
    row.return_window_days = DEMO_RETURN_WINDOW_DAYS
    row.order_backend = DEMO_ORDER_BACKEND
    row.llm_model = _column_default("llm_model")
    row.llm_max_tokens = _column_default("llm_max_tokens")
    row.llm_temperature = _column_default("llm_temperature")
    row.widget_key = DEMO_WIDGET_KEY
    row.widget_theme = dict(DEMO_WIDGET_THEME)
    _restore_channels(row, box, smtp_port)
    await session.flush()
    return row


def _ago(now: datetime, days: int | None) -> datetime | None:
    return None if days is None else now - timedelta(days=days)


async def seed_demo_orders(session: AsyncSession, now: datetime | None = None) -> None:
    """(Re)write the demo shop's orders in the built-in demo store, dated relative to `now`."""
    now = now or utcnow()
    await session.execute(delete(DemoOrderRow).where(DemoOrderRow.tenant_id == DEMO_TENANT_ID))
    for spec in DEMO_ORDERS:
        session.add(
            DemoOrderRow(
                tenant_id=DEMO_TENANT_ID,
                number=spec.number,
                email=spec.email,
                status=spec.status,
                placed_at=now - timedelta(days=spec.placed_days_ago),
                shipped_at=_ago(now, spec.shipped_days_ago),
                delivered_at=_ago(now, spec.delivered_days_ago),
                cancelled_at=_ago(now, spec.cancelled_days_ago),
                carrier=spec.carrier,
                tracking_number=spec.tracking_number,
                tracking_url=spec.tracking_url,
                items=[DemoOrderItemRow(sku=sku, name=name) for sku, name in spec.items],
            )
        )


DEMO_PLAN = "pro"


async def comp_demo_plan(sessions: async_sessionmaker) -> None:
    """Comp the demo shop on DEMO_PLAN, unless it holds a subscription of its own."""
    async with sessions() as session:
        row = await session.get(BillingAccountRow, DEMO_TENANT_ID)
        if row is None:
            session.add(BillingAccountRow(tenant_id=DEMO_TENANT_ID, plan=DEMO_PLAN,
                                          status=COMPED, cancel_at_period_end=False,
                                          state_event_created=0))
        elif row.status in (NONE, COMPED) and row.stripe_subscription_id is None:
            row.plan, row.status = DEMO_PLAN, COMPED
        await session.commit()


async def seed_demo(sessions: async_sessionmaker, now: datetime | None = None,
                    box: CredentialsBox | None = None,
                    smtp_port: int = SANDBOX_SMTP_PORT) -> None:
    """Restore the demo shop and its orders, in one transaction (see the module's docstring)."""
    async with sessions() as session:
        await seed_demo_tenant(session, box, smtp_port)
        await seed_demo_orders(session, now)
        await session.commit()
    log.info("demo tenant seeded", extra={"tenant_id": DEMO_TENANT_ID, "orders": len(DEMO_ORDERS)})
