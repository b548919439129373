"""WooCommerce order backend (WooCommerce REST API v3, `/wp-json/wc/v3`).

Finding an order by the number a customer sees (woocommerce.github.io/woocommerce-rest-api-docs
"Retrieve an order", "List all orders"):
  * Out of the box the order number *is* the post/order id, so `GET /orders/{number}` is tried
    first -- but only accepted when the returned order's `number` equals what was asked.
  * Sequential-order-number plugins give orders numbers that differ from their ids (and may
    collide with another order's id). v3 has no `number` filter, so we fall back to
    `GET /orders?search={email}&per_page=100` -- core order search covers the billing email,
    and one customer's orders are few, whereas searching the number would LIKE-match every
    order whose number merely contains it -- and keep only an exact `number` match.

Statuses: core `pending`, `processing`, `on-hold`, `completed`, `cancelled`, `refunded`,
`failed`, plus the custom `delivered` / `partial-shipped` / `shipped` slugs that the common
shipment-tracking plugins register. Core WooCommerce records no delivery at all, so
`completed` (the merchant's "fulfilled") maps to SHIPPED, never to DELIVERED.

Tracking comes from the "WooCommerce Shipment Tracking" extension, which stores a list under
the order meta key `_wc_shipment_tracking_items` (tracking_provider, custom_tracking_provider,
custom_tracking_link, tracking_number, date_shipped as a Unix timestamp).

Returns: WooCommerce has none. `create_return` leaves a private order note for staff
(`POST /orders/{id}/notes`, `customer_note: false`, so the customer is not emailed) and
returns None, so the caller records a return request for staff.

Auth: HTTP Basic with consumer key/secret. WooCommerce only accepts that over HTTPS; over
plain HTTP it wants OAuth 1.0a, which we deliberately do not implement (the query-string
variant would put the secret into every URL and access log).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from actions.commerce.base import (
    BackendError,
    BackendNotConfigured,
    LineItem,
    Order,
    OrderState,
    PlatformReturn,
    Shipment,
    normalise_order_number,
)
from actions.commerce.http import (
    JSONDict,
    client_for,
    idempotency_ref,
    parse_datetime,
    request_json,
    retrying,
    same_email,
)
from core.destinations import Destinations

logger = logging.getLogger(__name__)

PLATFORM = "woocommerce"
TRACKING_META_KEY = "_wc_shipment_tracking_items"

# Display names and public tracking pages for the providers most shops use; the extension
# stores a slug. Unknown slugs are shown prettified and without a link.
_PROVIDERS: dict[str, tuple[str, str | None]] = {
    "ups": ("UPS", "https://www.ups.com/track?loc=en_US&tracknum={n}"),
    "usps": ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={n}"),
    "fedex": ("FedEx", "https://www.fedex.com/fedextrack/?trknbr={n}"),
    "dhl": ("DHL", "https://www.dhl.com/en/express/tracking.html?AWB={n}"),
    "dhl-us": ("DHL US", "https://www.dhl.com/en/express/tracking.html?AWB={n}"),
    "royal-mail": ("Royal Mail", "https://www.royalmail.com/track-your-item#/tracking-results/{n}"),
    "canada-post": (
        "Canada Post", "https://www.canadapost-postescanada.ca/track-reperage/en#/details/{n}"
    ),
    "australia-post": ("Australia Post", "https://auspost.com.au/mypost/track/#/details/{n}"),
}

_PENDING = {"pending", "processing", "on-hold", "checkout-draft"}
_SHIPPED = {"completed", "shipped", "partial-shipped"}


class WooCommerceBackend:
    """`OrderBackend` for one WooCommerce store, authenticated with a REST API key pair."""

    kind = "woocommerce"

    def __init__(
        self,
        store_url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        destinations: Destinations | None = None,
    ) -> None:
        if not store_url.strip() or not consumer_key.strip() or not consumer_secret.strip():
            raise BackendNotConfigured("woocommerce: store URL, key and secret are required")
        base = store_url.strip().rstrip("/")
        if "://" not in base:
            base = "https://" + base
        local = base.startswith(("http://127.0.0.1", "http://localhost"))
        if base.startswith("http://") and not local:
            logger.warning("woocommerce: %s is not https; Basic auth will be refused", base)
        self._store_url = base
        self._api = f"{base}/wp-json/wc/v3"
        self._auth = httpx.BasicAuth(consumer_key.strip(), consumer_secret.strip())
        self._timeout = timeout
        self._owns_client = client is None
        # A client of our own connects to public addresses only, unless `destinations`
        # allows private ones; a shared one is the caller's (actions/runtime.py: the same).
        self._client = client or client_for(timeout, destinations)

    def __repr__(self) -> str:  # never show key or secret
        return f"WooCommerceBackend(store_url={self._store_url!r})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # ------------------------------------------------------------------ reading orders

    async def find_order(self, number: str, email: str) -> Order | None:
        wanted = normalise_order_number(number)
        raw = await self._locate(wanted, email.strip())
        if raw is None:
            # Wrong email and no such order look the same, down to the requests we made.
            return None
        try:
            return self._to_order(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # nonsense
            raise BackendError(f"woocommerce: unexpected order payload ({exc!r})") from exc

    async def _locate(self, number: str, email: str) -> JSONDict | None:
        """The order with this number *and* billing email, or None."""

        def wanted(raw: object) -> bool:
            return (isinstance(raw, dict)
                    and str(raw.get("number", "")).upper() == number
                    and same_email((raw.get("billing") or {}).get("email"), email))

        if number.isdigit():
            raw = await self._request("GET", f"/orders/{number}", allow_404=True)
            if isinstance(raw, dict) and wanted(raw):
                return raw
        # Not found by id, renumbered, or not this customer's: search the customer's orders.
        # (Also keeps "wrong email" and "no such order" at the same two requests.)
        found = await self._request("GET", "/orders", params={"search": email, "per_page": 100})
        if not isinstance(found, list):
            raise BackendError("woocommerce: order search did not answer with a list")
        return next((raw for raw in found if isinstance(raw, dict) and wanted(raw)), None)

    def _to_order(self, raw: JSONDict) -> Order:
        status = str(raw.get("status") or "")
        trackings = _tracking_items(raw.get("meta_data"))
        latest = trackings[-1] if trackings else None
        completed_at = parse_datetime(raw.get("date_completed_gmt"))
        modified_at = parse_datetime(raw.get("date_modified_gmt"))
        state = _state(status, bool(trackings), completed_at is not None)
        extra = {"platform_status": status, "number": str(raw.get("number", ""))}
        if len(trackings) > 1:
            extra["tracking_numbers"] = ",".join(t["tracking_number"] for t in trackings)

        shipped_at = None
        if state in (OrderState.SHIPPED, OrderState.DELIVERED, OrderState.RETURNED):
            shipped_at = _shipped_at(latest) or completed_at
        delivered_at = None
        if state is OrderState.DELIVERED:
            # The plugins' "delivered" status carries no date of its own; the status change is
            # normally the order's last modification. Errs late, i.e. in the customer's favour
            # when a return window is counted from it.
            delivered_at = modified_at
            extra["delivered_at_source"] = "date_modified_gmt"
        cancelled_at = modified_at if state is OrderState.CANCELLED else None  # no own field

        placed_at = parse_datetime(raw.get("date_created_gmt"))
        if placed_at is None:
            raise BackendError("woocommerce: order without a creation date")
        return Order(
            number=normalise_order_number(str(raw.get("number", ""))),
            email=str((raw.get("billing") or {}).get("email") or "").strip().lower(),
            state=state,
            placed_at=placed_at,
            items=tuple(
                LineItem(
                    id=str(li["id"]),
                    name=html.unescape(str(li.get("name") or "")),  # Woo sends "&ndash;" etc.
                    quantity=int(li.get("quantity") or 1),
                    sku=li.get("sku") or None,
                )
                for li in raw.get("line_items") or []
            ),
            shipment=_shipment(latest) if latest is not None else None,
            shipped_at=shipped_at,
            delivered_at=delivered_at,
            cancelled_at=cancelled_at,
            backend_id=str(raw["id"]),
            extra=extra,
        )

    # ------------------------------------------------------------------ returns

    async def create_return(
        self, order: Order, items: Sequence[LineItem], reason: str, idempotency_key: str
    ) -> PlatformReturn | None:
        if not items:
            raise BackendError("woocommerce: a return needs at least one item")
        marker = idempotency_ref(idempotency_key)
        note = _return_note(order, items, reason, marker)
        notes_path = f"/orders/{order.backend_id}/notes"
        # The notes API takes no idempotency key, so look for our marker first and retry the
        # look-then-post pair as one unit: a POST whose answer got lost is found, not repeated.
        async for attempt in retrying(logger, PLATFORM):
            with attempt:
                existing = await self._request(
                    "GET", notes_path, params={"type": "internal"}, retry=False
                )
                if isinstance(existing, list) and any(
                    marker in str((n or {}).get("note") or "") for n in existing
                ):
                    logger.info("woocommerce: return note for order %s already there", order.number)
                    return None
                await self._request(
                    "POST", notes_path, json={"note": note, "customer_note": False}, retry=False
                )
                logger.info("woocommerce: return note added to order %s", order.number)
                return None
        raise BackendError("woocommerce: retry loop ended without an outcome")  # pragma: no cover

    # ------------------------------------------------------------------ transport

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: Any = None,
        retry: bool = True,
        allow_404: bool = False,
    ) -> Any:
        return await request_json(
            self._client, method, self._api + path, platform=PLATFORM, timeout=self._timeout,
            log=logger, retry=retry, allow_404=allow_404, params=params, json=json,
            auth=self._auth, headers={"Accept": "application/json"},
        )


def _state(status: str, has_tracking: bool, was_completed: bool) -> OrderState:
    if status in ("cancelled", "failed", "trash"):
        # "failed" = payment failed or was declined: nothing will ship unless the customer
        # pays again (then the status changes). extra["platform_status"] keeps the nuance.
        return OrderState.CANCELLED
    if status == "refunded":
        # Fully refunded. After fulfilment that means the goods came back (or were written
        # off); before it, the order simply will not ship.
        return OrderState.RETURNED if (was_completed or has_tracking) else OrderState.CANCELLED
    if status == "delivered":
        return OrderState.DELIVERED
    if status in _SHIPPED:
        return OrderState.SHIPPED
    if status in ("processing", "on-hold") and has_tracking:
        return OrderState.SHIPPED  # labels are often added before the order is completed
    if status not in _PENDING:
        logger.info("woocommerce: unknown order status %r treated as pending", status)
    return OrderState.PENDING


def _tracking_items(meta_data: object) -> list[dict[str, str]]:
    """Shipment Tracking entries, oldest first; tolerant of odd shapes from other plugins."""
    if not isinstance(meta_data, list):
        return []
    items: list[dict[str, str]] = []
    for meta in meta_data:
        if not isinstance(meta, dict) or meta.get("key") != TRACKING_META_KEY:
            continue
        for entry in meta.get("value") or []:
            if isinstance(entry, dict) and entry.get("tracking_number"):
                items.append({k: str(v) for k, v in entry.items() if v not in (None, "")})
    items.sort(key=lambda t: int(t["date_shipped"]) if t.get("date_shipped", "").isdigit() else 0)
    return items


def _shipped_at(tracking: dict[str, str] | None) -> datetime | None:
    stamp = (tracking or {}).get("date_shipped", "")
    return datetime.fromtimestamp(int(stamp), tz=UTC) if stamp.isdigit() else None


def _shipment(tracking: dict[str, str]) -> Shipment:
    number = tracking["tracking_number"]
    slug = tracking.get("tracking_provider", "").strip().lower()
    name, template = _PROVIDERS.get(slug, (slug.replace("-", " ").title() or None, None))
    carrier = tracking.get("custom_tracking_provider") or name
    url = tracking.get("custom_tracking_link") or (template.format(n=number) if template else None)
    return Shipment(carrier=carrier, tracking_number=number, tracking_url=url)


def _return_note(order: Order, items: Sequence[LineItem], reason: str, marker: str) -> str:
    lines = [f"Return requested via the Switchboard support chat (order {order.number})."]
    for item in items:
        sku = f", SKU {item.sku}" if item.sku else ""
        lines.append(f"- {item.quantity} x {html.escape(item.name)} (line item {item.id}{sku})")
    # The reason is the visitor's own text: escaped, since staff see notes in the WP admin.
    lines.append(f"Reason: {html.escape(reason.strip()) or 'not given'}")
    lines.append("WooCommerce has no returns feature: please approve or decline with the customer.")
    lines.append(f"[{marker}]")
    return "\n".join(lines)
