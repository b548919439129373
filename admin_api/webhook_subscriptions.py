"""Shops' webhook subscriptions: which URLs a shop's events may be POSTed to, the
subscriptions themselves (the secret is made here, shown once, sealed at rest) and the
delivery log the owner reads. admin_api/webhooks.py sends the events.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from admin_api.webhook_tables import (
    PENDING,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookRow,
)
from core.db import utcnow
from core.destinations import Destinations, numeric_address
from core.handoffs import ConversationEventRow
from tenants.crypto import CredentialsBox

SECRET_PREFIX = "whsec_"
MAX_PER_SHOP = 20  # subscriptions; each one is one more POST per event
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


# -- URLs ------------------------------------------------------------------------------------
class BadUrl(ValueError):
    """A URL we will not POST to; the message says why (the API's 422 detail)."""


def _loopback(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    address = numeric_address(name)
    return address is not None and address.is_loopback


def check_url(raw: str, destinations: Destinations) -> str:
    """The URL a subscription may POST to: https, or http to this host (development);
    no credentials in it; a public host unless the deployment allows private destinations
    (core/destinations.py; ALLOW_PRIVATE_DESTINATIONS, development and tests)."""
    url = raw.strip()
    if any(c.isspace() or not c.isprintable() for c in url):
        raise BadUrl("a URL has no spaces or control characters (percent-encode them)")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port out of range or not a number
    except ValueError:
        raise BadUrl("not a URL") from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise BadUrl("expected an https:// URL with a host")
    if parts.username or parts.password:
        raise BadUrl("put no credentials in the URL: verify our signature instead")
    if parts.fragment:
        raise BadUrl("a URL with a #fragment cannot be posted to")
    if parts.scheme == "http" and not _loopback(host):
        raise BadUrl("use https:// (plain http only to this host, for development)")
    refused = destinations.refusal(host)
    if refused:
        raise BadUrl(f"this URL {refused}")
    return url


# -- subscriptions ---------------------------------------------------------------------------
class NoSuchWebhook(LookupError):
    pass


class TooManyWebhooks(ValueError):
    pass


@dataclass(frozen=True)
class Subscription:
    id: int
    url: str
    events: list[str]
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: WebhookRow) -> Subscription:
        return cls(row.id, row.url, list(row.events), row.created_by, row.created_at)


async def subscribe(sessions: async_sessionmaker, box: CredentialsBox, tenant_id: str,
                    url: str, events: Sequence[str], actor: str) -> tuple[Subscription, str]:
    """A new subscription to the shop's events from now on; returns it and its secret (the
    only time the secret leaves the database, where it is sealed with the credentials key)."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(WebhookRow).where(
            WebhookRow.tenant_id == tenant_id))
        if (count or 0) >= MAX_PER_SHOP:
            raise TooManyWebhooks(f"a shop has at most {MAX_PER_SHOP} webhooks")
        latest = await session.scalar(select(func.max(ConversationEventRow.id)).where(
            ConversationEventRow.tenant_id == tenant_id))
        row = WebhookRow(tenant_id=tenant_id, url=url, events=sorted(set(events)),
                         secret_sealed=box.seal({"secret": secret}),
                         last_event_id=latest or 0, created_by=actor, created_at=utcnow())
        session.add(row)
        await session.commit()
        return Subscription.of(row), secret


async def subscriptions(sessions: async_sessionmaker, tenant_id: str) -> list[Subscription]:
    async with sessions() as session:
        rows = (await session.scalars(select(WebhookRow).where(
            WebhookRow.tenant_id == tenant_id).order_by(WebhookRow.id))).all()
    return [Subscription.of(row) for row in rows]


async def subscription(sessions: async_sessionmaker, tenant_id: str,
                       webhook_id: int) -> Subscription:
    async with sessions() as session:
        row = await session.get(WebhookRow, webhook_id)
    if row is None or row.tenant_id != tenant_id:
        raise NoSuchWebhook("no such webhook in your shop")
    return Subscription.of(row)


async def unsubscribe(sessions: async_sessionmaker, tenant_id: str,
                      webhook_id: int) -> Subscription:
    """Delete the subscription, its pending deliveries and its log."""
    async with sessions() as session:
        row = await session.get(WebhookRow, webhook_id)
        if row is None or row.tenant_id != tenant_id:
            raise NoSuchWebhook("no such webhook in your shop")
        gone = Subscription.of(row)
        ids = select(WebhookDeliveryRow.id).where(WebhookDeliveryRow.webhook_id == webhook_id)
        await session.execute(delete(WebhookAttemptRow).where(
            WebhookAttemptRow.delivery_id.in_(ids)))
        await session.execute(delete(WebhookDeliveryRow).where(
            WebhookDeliveryRow.webhook_id == webhook_id))
        await session.execute(delete(WebhookRow).where(WebhookRow.id == webhook_id))
        await session.commit()
    return gone


@dataclass(frozen=True)
class Attempt:
    number: int
    at: datetime
    http_status: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class Delivery:
    id: int
    event_id: int
    kind: str
    status: str
    attempts: int
    last_status: int | None
    error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    tries: list[Attempt]


async def deliveries(sessions: async_sessionmaker, tenant_id: str, webhook_id: int,
                     offset: int, limit: int) -> tuple[list[Delivery], int]:
    """One page of a subscription's deliveries, the latest event first, with their tries."""
    await subscription(sessions, tenant_id, webhook_id)
    d = WebhookDeliveryRow
    async with sessions() as session:
        total = await session.scalar(select(func.count()).select_from(d).where(
            d.webhook_id == webhook_id))
        rows = (await session.scalars(select(d).where(d.webhook_id == webhook_id)
                                      .order_by(d.event_id.desc())
                                      .offset(offset).limit(limit))).all()
        tries: dict[int, list[Attempt]] = {row.id: [] for row in rows}
        if rows:
            for a in (await session.scalars(select(WebhookAttemptRow).where(
                    WebhookAttemptRow.delivery_id.in_(list(tries)))
                    .order_by(WebhookAttemptRow.id))).all():
                tries[a.delivery_id].append(
                    Attempt(a.number, a.at, a.http_status, a.error, a.duration_ms))
    return [Delivery(r.id, r.event_id, r.kind, r.status, r.attempts, r.last_status, r.error,
                     r.created_at, r.next_attempt_at if r.status == PENDING else None,
                     r.last_attempt_at, r.delivered_at, tries[r.id]) for r in rows], total or 0
