"""Shopify order backend: REST Admin API for reading orders, GraphQL Admin API for returns.

Reading (REST, `GET /admin/api/{version}/orders.json`, shopify.dev/docs/api/admin-rest/2024-10/
resources/order, "Retrieve a list of orders"):
  * `name=#1001` filters by display name; `status=any` is required because the default
    (`open`) hides cancelled and archived orders, and shops auto-archive fulfilled ones.
    Without the `read_all_orders` scope only the last 60 days are visible; older orders
    then simply look like "not found".
  * Delivery dates come from fulfillment events (`GET .../orders/{id}/fulfillments/{fid}/
    events.json`, an event with `status: delivered` and its `happened_at`). They are only
    fetched once every fulfillment says `shipment_status: delivered`; if no such event
    exists we fall back to the fulfillment's `updated_at` (the moment Shopify recorded the
    delivered status) and say so in `Order.extra["delivered_at_source"]`.

Returns (GraphQL, `POST /admin/api/{version}/graphql.json`):
  * `returnRequest` creates a return with status REQUESTED that staff approve or decline in
    the admin -- the right fit for a support bot (`returnCreate` would open it directly).
  * It needs FulfillmentLineItem ids, which the REST order does not carry, so we first ask
    `returnableFulfillments(orderId:)` and map our (REST) line item ids onto them.
  * `returnRequest` takes no idempotency key (Shopify's `@idempotent` directive only exists
    for a few inventory/refund mutations). We therefore put a reference built from the key
    into each line's `customerNote` and, before creating anything, look for a return on the
    order that already carries it. Check + create is retried as one unit, so a lost response
    followed by a retry finds the first return instead of making a second one. (Residual
    gap: a request that times out on our side but is still executed by Shopify *after* our
    retry's check can yield a second REQUESTED return; staff would see both.)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime
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
    TransientBackendError,
    client_for,
    idempotency_ref,
    parse_datetime,
    request_json,
    retrying,
    same_email,
)
from core.destinations import Destinations

logger = logging.getLogger(__name__)

PLATFORM = "shopify"

# Only what we map; keeps protected customer data we don't need out of our process.
_ORDER_FIELDS = (
    "id,name,email,contact_email,created_at,processed_at,cancelled_at,closed_at,"
    "financial_status,fulfillment_status,line_items,fulfillments,refunds"
)

# One round trip for both halves of "check, then act": the order's existing returns (to find
# one we already made) and what Shopify considers returnable (fulfillment line item ids).
_RETURN_CONTEXT_QUERY = """
query ReturnContext($orderId: ID!) {
  order(id: $orderId) {
    id
    returns(first: 25) { nodes { id status
      returnLineItems(first: 50) { nodes { ... on ReturnLineItem { customerNote } } } } }
  }
  returnableFulfillments(orderId: $orderId, first: 20) { nodes { id
    returnableFulfillmentLineItems(first: 50) {
      nodes { quantity fulfillmentLineItem { id lineItem { id } } } } } }
}"""

_RETURN_REQUEST_MUTATION = """
mutation ReturnRequest($input: ReturnRequestInput!) {
  returnRequest(input: $input) { return { id status } userErrors { field message code } }
}"""

# ReturnReason enum (Admin GraphQL 2024-10). Free-text reasons that match nothing become
# OTHER; the visitor's own words always travel in customerNote.
_RETURN_REASONS = {
    "COLOR", "DEFECTIVE", "NOT_AS_DESCRIBED", "OTHER", "SIZE_TOO_LARGE",
    "SIZE_TOO_SMALL", "STYLE", "UNKNOWN", "UNWANTED", "WRONG_ITEM",
}
_REASON_HINTS = (
    ("too small", "SIZE_TOO_SMALL"), ("too big", "SIZE_TOO_LARGE"),
    ("too large", "SIZE_TOO_LARGE"), ("wrong item", "WRONG_ITEM"),
    ("not as described", "NOT_AS_DESCRIBED"), ("defect", "DEFECTIVE"),
    ("damaged", "DEFECTIVE"), ("broken", "DEFECTIVE"), ("colour", "COLOR"),
    ("color", "COLOR"), ("style", "STYLE"), ("changed my mind", "UNWANTED"),
    ("don't want", "UNWANTED"), ("no longer", "UNWANTED"),
)
_CUSTOMER_NOTE_MAX = 300  # ReturnRequestLineItemInput.customerNote limit


def _return_reason(reason: str) -> str:
    code = re.sub(r"[^A-Z]+", "_", reason.strip().upper()).strip("_")
    if code in _RETURN_REASONS:
        return code
    lowered = reason.lower()
    for hint, value in _REASON_HINTS:
        if hint in lowered:
            return value
    return "OTHER"


def _gid(kind: str, raw_id: str) -> str:
    return raw_id if raw_id.startswith("gid://") else f"gid://shopify/{kind}/{raw_id}"


def _as_int(value: object) -> int:
    return value if isinstance(value, int) else int(str(value or 0))


class ShopifyBackend:
    """`OrderBackend` for one Shopify shop, authenticated with an Admin API access token."""

    kind = "shopify"

    def __init__(
        self,
        shop_url: str,
        access_token: str,
        api_version: str = "2024-10",
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        destinations: Destinations | None = None,
    ) -> None:
        if not shop_url.strip() or not access_token.strip():
            raise BackendNotConfigured("shopify: shop URL and access token are required")
        base = shop_url.strip().rstrip("/")
        if "://" not in base:
            base = "https://" + base  # "example.myshopify.com" is what admins usually paste
        self._api = f"{base}/admin/api/{api_version}"
        self._shop_url = base
        self._token = access_token.strip()
        self._timeout = timeout
        self._owns_client = client is None
        # A client of our own connects to public addresses only, unless `destinations`
        # allows private ones; a shared one is the caller's (actions/runtime.py: the same).
        self._client = client or client_for(timeout, destinations)

    def __repr__(self) -> str:  # never show the token
        return f"ShopifyBackend(shop_url={self._shop_url!r})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # ------------------------------------------------------------------ reading orders

    async def find_order(self, number: str, email: str) -> Order | None:
        wanted = normalise_order_number(number)
        for name in self._name_candidates(wanted):
            payload = await self._get(
                "/orders.json", params={"name": name, "status": "any", "fields": _ORDER_FIELDS}
            )
            orders = payload.get("orders") if isinstance(payload, dict) else None
            if not isinstance(orders, list):
                raise BackendError("shopify: orders.json answered without an 'orders' list")
            for raw in orders:
                # The name filter is not documented as exact; compare ourselves.
                if not isinstance(raw, dict):
                    continue
                if normalise_order_number(str(raw.get("name", ""))) != wanted:
                    continue
                if not (same_email(raw.get("email"), email)
                        or same_email(raw.get("contact_email"), email)):
                    # Same answer as "no such order": a guessed number reveals nothing.
                    logger.debug("shopify: order %s found, email did not match", wanted)
                    return None
                try:
                    return await self._to_order(raw)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:  # nonsense
                    raise BackendError(f"shopify: unexpected order payload ({exc!r})") from exc
        return None

    @staticmethod
    def _name_candidates(number: str) -> list[str]:
        # Default order names are "#" + number. Shops with a custom prefix/suffix ("EU-1001")
        # arrive with letters kept by normalise_order_number, so try them verbatim first.
        return [f"#{number}"] if number.isdigit() else [number, f"#{number}"]

    async def _to_order(self, raw: JSONDict) -> Order:
        fulfillments = [f for f in raw.get("fulfillments") or [] if f.get("status") == "success"]
        fulfillments.sort(key=lambda f: str(f.get("created_at") or ""))
        latest = fulfillments[-1] if fulfillments else None
        state = self._state(raw, fulfillments)
        extra = {
            "name": str(raw.get("name", "")),
            "financial_status": str(raw.get("financial_status") or ""),
            "fulfillment_status": str(raw.get("fulfillment_status") or ""),
        }
        delivered_at: datetime | None = None
        if state is OrderState.DELIVERED:
            delivered_at, source = await self._delivered_at(raw, fulfillments)
            extra["delivered_at_source"] = source
        if latest is not None and latest.get("shipment_status"):
            extra["shipment_status"] = str(latest["shipment_status"])
        all_numbers = [n for f in fulfillments for n in self._tracking_numbers(f)]
        if len(all_numbers) > 1:
            extra["tracking_numbers"] = ",".join(all_numbers)
        placed_at = parse_datetime(raw.get("processed_at")) or parse_datetime(raw.get("created_at"))
        if placed_at is None:
            raise BackendError("shopify: order without a creation date")
        return Order(
            number=normalise_order_number(str(raw.get("name", ""))),
            email=str(raw.get("email") or raw.get("contact_email") or "").strip().lower(),
            state=state,
            placed_at=placed_at,
            items=tuple(
                LineItem(id=str(li["id"]), name=str(li.get("name") or li.get("title") or ""),
                         quantity=_as_int(li.get("quantity", 1)), sku=li.get("sku") or None)
                for li in raw.get("line_items") or []
            ),
            shipment=self._shipment(latest) if latest is not None else None,
            shipped_at=parse_datetime(latest.get("created_at")) if latest else None,
            delivered_at=delivered_at,
            cancelled_at=parse_datetime(raw.get("cancelled_at")),
            backend_id=str(raw["id"]),
            extra=extra,
        )

    @staticmethod
    def _state(raw: JSONDict, fulfillments: list[JSONDict]) -> OrderState:
        if raw.get("cancelled_at"):
            return OrderState.CANCELLED
        if _fully_refunded(raw):
            # Money is back with the customer: after shipping that means the goods came back
            # (or were written off); before shipping nothing is going to be sent any more.
            return OrderState.RETURNED if fulfillments else OrderState.CANCELLED
        if not fulfillments:
            return OrderState.PENDING
        everything_shipped = raw.get("fulfillment_status") == "fulfilled"
        delivered = all(f.get("shipment_status") == "delivered" for f in fulfillments)
        if everything_shipped and delivered:
            return OrderState.DELIVERED
        return OrderState.SHIPPED

    @staticmethod
    def _tracking_numbers(fulfillment: JSONDict) -> list[str]:
        numbers = [str(n) for n in fulfillment.get("tracking_numbers") or [] if n]
        single = fulfillment.get("tracking_number")
        if single and str(single) not in numbers:
            numbers.insert(0, str(single))
        return numbers

    def _shipment(self, fulfillment: JSONDict) -> Shipment | None:
        numbers = self._tracking_numbers(fulfillment)
        urls = [str(u) for u in fulfillment.get("tracking_urls") or [] if u]
        url = fulfillment.get("tracking_url") or (urls[0] if urls else None)
        if not numbers and not fulfillment.get("tracking_company"):
            return None  # shipped without tracking (e.g. local delivery): nothing to show
        return Shipment(
            carrier=fulfillment.get("tracking_company") or None,
            tracking_number=numbers[0] if numbers else None,
            tracking_url=str(url) if url else None,
        )

    async def _delivered_at(
        self, raw: JSONDict, fulfillments: list[JSONDict]
    ) -> tuple[datetime | None, str]:
        latest: datetime | None = None
        source = "fulfillment_event"
        for fulfillment in fulfillments:
            when = None
            when_source = "fulfillment_event"
            try:
                payload = await self._get(
                    f"/orders/{raw['id']}/fulfillments/{fulfillment['id']}/events.json",
                    allow_404=True,
                )
                events = (payload or {}).get("fulfillment_events") or []
                delivered = [parse_datetime(e.get("happened_at")) for e in events
                             if e.get("status") == "delivered"]
                when = max((d for d in delivered if d is not None), default=None)
            except BackendNotConfigured:
                raise
            except BackendError as exc:
                # The state is already certain; only the date is missing. Degrade, don't fail.
                logger.warning("shopify: fulfillment events unavailable (%s)", exc)
            if when is None:
                when = parse_datetime(fulfillment.get("updated_at"))
                when_source = "fulfillment_updated_at"
            if when is not None and (latest is None or when > latest):
                latest, source = when, when_source
        return latest, source

    # ------------------------------------------------------------------ returns

    async def create_return(
        self, order: Order, items: Sequence[LineItem], reason: str, idempotency_key: str
    ) -> PlatformReturn | None:
        if not items:
            raise BackendError("shopify: a return needs at least one item")
        order_gid = _gid("Order", order.backend_id)
        ref = f"({idempotency_ref(idempotency_key)})"
        note = f"{reason.strip()[: _CUSTOMER_NOTE_MAX - len(ref) - 1]} {ref}".strip()
        async for attempt in retrying(logger, PLATFORM):
            with attempt:
                data = await self._graphql(_RETURN_CONTEXT_QUERY, {"orderId": order_gid})
                if not data.get("order"):
                    raise BackendError(f"shopify: order {order.number} not visible to GraphQL")
                existing = self._find_existing(data["order"], ref)
                if existing is not None:
                    logger.info("shopify: return for order %s already requested", order.number)
                    return existing
                lines = self._allocate(data, items)
                if lines is None:
                    # Not (or no longer) returnable on Shopify, e.g. not fulfilled yet: staff
                    # can still decide, so let the caller record a request for them.
                    logger.info("shopify: items of order %s not returnable via API", order.number)
                    return None
                reason_code = _return_reason(reason)
                for line in lines:
                    line.update(returnReason=reason_code, customerNote=note)
                variables = {"input": {"orderId": order_gid, "returnLineItems": lines}}
                result = await self._graphql(_RETURN_REQUEST_MUTATION, variables)
                return self._platform_return(result)
        raise BackendError("shopify: retry loop ended without an outcome")  # pragma: no cover

    @staticmethod
    def _find_existing(order: JSONDict, ref: str) -> PlatformReturn | None:
        for ret in (order.get("returns") or {}).get("nodes") or []:
            notes = ((ret.get("returnLineItems") or {}).get("nodes")) or []
            if any(ref in str((n or {}).get("customerNote") or "") for n in notes):
                return PlatformReturn(platform_id=str(ret["id"]), status=str(ret["status"]))
        return None

    @staticmethod
    def _allocate(data: JSONDict, items: Sequence[LineItem]) -> list[JSONDict] | None:
        """Spread each requested quantity over the fulfillment line items that hold it."""
        available: dict[str, list[list[Any]]] = {}
        for fulfillment in (data.get("returnableFulfillments") or {}).get("nodes") or []:
            conn = fulfillment.get("returnableFulfillmentLineItems") or {}
            for node in conn.get("nodes") or []:
                fli = node.get("fulfillmentLineItem") or {}
                line_gid = str((fli.get("lineItem") or {}).get("id") or "")
                slot = [fli.get("id"), _as_int(node.get("quantity"))]
                available.setdefault(line_gid, []).append(slot)
        lines: list[JSONDict] = []
        for item in items:
            wanted = item.quantity
            for slot in available.get(_gid("LineItem", item.id), []):
                take = min(wanted, slot[1])
                if take > 0:
                    lines.append({"fulfillmentLineItemId": slot[0], "quantity": take})
                    slot[1] -= take
                    wanted -= take
            if wanted > 0:
                return None
        return lines

    @staticmethod
    def _platform_return(data: JSONDict) -> PlatformReturn:
        payload = data.get("returnRequest") or {}
        errors = payload.get("userErrors") or []
        if errors:
            messages = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
            raise BackendError(f"shopify: return request refused: {messages}")
        ret = payload.get("return") or {}
        if not ret.get("id"):
            raise BackendError("shopify: returnRequest answered without a return")
        return PlatformReturn(platform_id=str(ret["id"]), status=str(ret.get("status") or ""))

    # ------------------------------------------------------------------ transport

    def _headers(self) -> dict[str, str]:
        return {"X-Shopify-Access-Token": self._token, "Accept": "application/json"}

    async def _get(
        self, path: str, *, params: dict[str, str] | None = None, allow_404: bool = False
    ) -> Any:
        return await request_json(
            self._client, "GET", self._api + path, platform=PLATFORM, timeout=self._timeout,
            log=logger, headers=self._headers(), params=params, allow_404=allow_404,
        )

    async def _graphql(self, query: str, variables: JSONDict) -> JSONDict:
        """One GraphQL call, not retried here: callers retry whole check-then-act units."""
        operation = re.search(r"(?:query|mutation)\s+(\w+)", query)
        body = {"query": query, "variables": variables,
                "operationName": operation.group(1) if operation else None}
        payload = await request_json(
            self._client, "POST", self._api + "/graphql.json", platform=PLATFORM,
            timeout=self._timeout, log=logger, retry=False, headers=self._headers(), json=body,
        )
        if not isinstance(payload, dict):
            raise BackendError("shopify: GraphQL answered with something other than an object")
        errors = [e for e in payload.get("errors") or [] if isinstance(e, dict)]
        if errors:
            codes = {str((e.get("extensions") or {}).get("code")) for e in errors}
            if "THROTTLED" in codes:  # cost bucket empty; refills within about a second
                raise TransientBackendError("shopify: GraphQL throttled", retry_after=1.0)
            if "ACCESS_DENIED" in codes:  # e.g. app lacks read_returns / write_returns
                raise BackendNotConfigured("shopify: GraphQL access denied (missing scopes?)")
            messages = "; ".join(str(e.get("message")) for e in errors)
            raise BackendError(f"shopify: GraphQL error: {messages[:300]}")
        data = payload.get("data")
        if not isinstance(data, dict):
            raise BackendError("shopify: GraphQL answered without data")
        return data


def _fully_refunded(raw: JSONDict) -> bool:
    if raw.get("financial_status") == "refunded":
        return True
    refunded: dict[str, int] = {}
    for refund in raw.get("refunds") or []:
        for rli in refund.get("refund_line_items") or []:
            key = str(rli.get("line_item_id"))
            refunded[key] = refunded.get(key, 0) + _as_int(rli.get("quantity"))
    line_items = raw.get("line_items") or []
    return bool(line_items) and all(
        refunded.get(str(li.get("id")), 0) >= _as_int(li.get("quantity")) for li in line_items
    )
