"""The contract every order backend fulfils, and the plain data it speaks in.

Actions never talk to a shop platform directly: they ask an `OrderBackend` for an order
(always by number *and* email, so that a guessed order number reveals nothing) and, for
returns, ask it to create what the platform supports. Bookkeeping that is the same for every
platform (return references, idempotency, eligibility) lives in `actions.commerce.returns`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


class OrderState(enum.StrEnum):
    """Where an order is in its life, reduced to what a visitor cares about."""

    PENDING = "pending"  # placed and/or paid, not shipped yet
    SHIPPED = "shipped"  # handed to a carrier, not known to be delivered
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    RETURNED = "returned"  # every item already came back


@dataclass(frozen=True)
class LineItem:
    id: str  # the platform's line item id (stable, used for returns)
    name: str
    quantity: int = 1
    sku: str | None = None


@dataclass(frozen=True)
class Shipment:
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None = None


@dataclass(frozen=True)
class Order:
    number: str  # as the shop shows it, without "#": "1001"
    email: str
    state: OrderState
    placed_at: datetime
    items: tuple[LineItem, ...]
    shipment: Shipment | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    cancelled_at: datetime | None = None
    backend_id: str = ""  # the platform's own order id (Shopify numeric id, Woo id)
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class PlatformReturn:
    """What a platform created for a return, if it supports returns at all."""

    platform_id: str  # e.g. Shopify's gid://shopify/Return/123
    status: str  # the platform's own status word ("REQUESTED", "OPEN", ...)


class BackendError(Exception):
    """The shop platform could not be reached or answered nonsense.

    Actions turn this into a polite "try again later" and never into a wrong answer.
    """


class BackendNotConfigured(BackendError):
    """The tenant's backend lacks the credentials or settings it needs."""


@runtime_checkable
class OrderBackend(Protocol):
    """One shop platform, bound to one tenant's credentials."""

    kind: str  # "demo" | "shopify" | "woocommerce"

    async def find_order(self, number: str, email: str) -> Order | None:
        """The order with this number, only if `email` is the order's email.

        `number` is already normalised (no "#", no spaces). Email comparison is
        case-insensitive. Returns None both when the order does not exist and when the
        email does not match, so callers cannot tell the two apart.
        """
        ...

    async def create_return(
        self,
        order: Order,
        items: Sequence[LineItem],
        reason: str,
        idempotency_key: str,
    ) -> PlatformReturn | None:
        """Create a return on the platform if it supports one, else return None.

        None means "record a return request for staff"; the caller does that. The same
        `idempotency_key` must never create two returns on the platform.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def normalise_order_number(raw: str) -> str:
    """'#1001', ' 1001 ', 'no. 1001' -> '1001'. Keeps letters for platforms that use them."""
    text = raw.strip()
    for prefix in ("order number", "order no.", "order no", "order", "no.", "nr.", "#"):
        if text.lower().startswith(prefix):
            text = text[len(prefix):].strip()
    return text.lstrip("#").strip().upper()


def normalise_email(raw: str) -> str:
    return raw.strip().strip("<>.,;").lower()
