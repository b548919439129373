"""The `demo` tenant and its fixed orders in the built-in demo store.

Order dates are relative to the moment of seeding, so "shipped 2 days ago" stays true: every
bootstrap refreshes the demo orders (and nothing else, so return requests survive).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from actions.commerce.tables import DemoOrderItemRow, DemoOrderRow
from core.db import utcnow
from tenants.crypto import CredentialsBox
from tenants.models import TenantRow

log = logging.getLogger(__name__)

DEMO_TENANT_ID = "7d3c1a52-8a1e-4c4b-9f0e-5d2a6b3c0001"
DEMO_SLUG = "demo"


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

# The demo shop's knowledge base: policies, FAQ and catalogue (python -m core.bootstrap ingests it).
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
# at the local sandbox (connectors/sandbox.py); try it with `python -m connectors.try_channel`.
DEMO_SMS_NUMBER = "+15005550006"
DEMO_WHATSAPP_NUMBER = "+14155238886"
DEMO_PHONE_NUMBER_ID = "106540352242922"
DEMO_EMAIL = "support@demo-outfitters.example"
SANDBOX_SMTP_PORT = 2525  # SANDBOX_SMTP_PORT in the environment moves it (tests)


def demo_channel_credentials() -> dict[str, dict]:
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
                  "smtp": {"host": "127.0.0.1", "starttls": False,
                           "port": int(os.environ.get("SANDBOX_SMTP_PORT", SANDBOX_SMTP_PORT))}},
    }


def _with_channels(row: TenantRow, box: CredentialsBox | None) -> None:
    """Give the demo shop credentials for the channels it lacks (existing ones are kept)."""
    if box is None:
        return
    current = box.open(row.credentials_encrypted)
    missing = {k: v for k, v in demo_channel_credentials().items() if k not in current}
    if missing:
        row.credentials_encrypted = box.seal({**current, **missing})


def _ago(now: datetime, days: int | None) -> datetime | None:
    return None if days is None else now - timedelta(days=days)


async def seed_demo(sessions: async_sessionmaker, now: datetime | None = None,
                    box: CredentialsBox | None = None) -> None:
    """Create the demo tenant if missing and (re)write its orders relative to `now`.

    With `box` (the credentials key is known), the demo shop also gets a widget key and
    development credentials for every channel.
    """
    now = now or utcnow()
    async with sessions() as session:
        tenant = (
            await session.execute(select(TenantRow).where(TenantRow.id == DEMO_TENANT_ID))
        ).scalar_one_or_none()
        if tenant is None:
            session.add(
                TenantRow(
                    id=DEMO_TENANT_ID,
                    slug=DEMO_SLUG,
                    name="Demo Outfitters",
                    greeting=DEMO_GREETING,
                    return_window_days=30,
                    order_backend="demo",
                )
            )
            await session.flush()
            tenant = (await session.execute(
                select(TenantRow).where(TenantRow.id == DEMO_TENANT_ID))).scalar_one()
        if tenant.widget_key is None:
            tenant.widget_key, tenant.widget_theme = DEMO_WIDGET_KEY, dict(DEMO_WIDGET_THEME)
        _with_channels(tenant, box)
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
        await session.commit()
    log.info("demo tenant seeded", extra={"tenant_id": DEMO_TENANT_ID, "orders": len(DEMO_ORDERS)})
