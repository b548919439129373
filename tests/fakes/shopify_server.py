"""A local stand-in for the Shopify Admin API (REST orders + the GraphQL returns slice).

Serves `tests/fixtures/shopify/order_*.json` with the real URL shapes:

* `GET /admin/api/{version}/orders.json?name=...&status=...&fields=...` -- `status` defaults
  to `open` like the real API, so cancelled and archived (closed) orders are only listed with
  `status=any`; `name` is an exact match; `fields` trims the returned keys.
* `GET /admin/api/{version}/orders/{id}/fulfillments/{fid}/events.json`
* `POST /admin/api/{version}/graphql.json` -- operations `ReturnContext` (order.returns +
  returnableFulfillments) and `ReturnRequest` (creates a REQUESTED return, validating the
  fulfillment line items and quantities, and remembering it for later `ReturnContext` calls).

Auth: the `X-Shopify-Access-Token` header must equal the token given to the constructor.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from tests.fakes import FIXTURES, FakeServer, RecordedRequest, Response, load_fixture

_API = re.compile(r"^/admin/api/(?P<version>\d{4}-\d{2})(?P<rest>/.*)$")
_EVENTS = re.compile(r"^/orders/(?P<oid>\d+)/fulfillments/(?P<fid>\d+)/events\.json$")
_ORDER = re.compile(r"^/orders/(?P<oid>\d+)\.json$")
_COST = {
    "requestedQueryCost": 12,
    "actualQueryCost": 8,
    "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1992,
                       "restoreRate": 100.0},
}


def is_graphql(operation: str) -> Callable[[RecordedRequest], bool]:
    """A `match=` predicate for failures aimed at one GraphQL operation."""

    def match(request: RecordedRequest) -> bool:
        if not request.path.endswith("/graphql.json"):
            return False
        return bool((request.json() or {}).get("operationName") == operation)

    return match


class ShopifyFake(FakeServer):
    def __init__(self, token: str = "shpat_test_token") -> None:
        super().__init__()
        self.token = token
        self.orders: dict[int, dict[str, Any]] = {}
        for path in sorted((FIXTURES / "shopify").glob("order_*.json")):
            order = load_fixture("shopify", path.name)["order"]
            self.orders[int(order["id"])] = order
        self.returns: dict[int, list[dict[str, Any]]] = {}  # order id -> created returns
        self._returnable: dict[int, dict[str, Any]] = {}
        self._next_return_id = 945000954
        self._queued_graphql: list[tuple[str | None, Any]] = []

    # -- test controls ------------------------------------------------------------------
    def queue_graphql_response(self, payload: Any, *, operation: str | None = None) -> None:
        """Answer the next GraphQL call (of `operation`, if given) with this body."""
        self._queued_graphql.append((operation, payload))

    def order_by_number(self, number: int) -> dict[str, Any]:
        return next(o for o in self.orders.values() if o["order_number"] == number)

    # -- FakeServer ------------------------------------------------------------------------
    def authorized(self, request: RecordedRequest) -> bool:
        return request.headers.get("x-shopify-access-token") == self.token

    def unauthorized(self, request: RecordedRequest) -> Response:
        message = "[API] Invalid API key or access token (unrecognized login or wrong password)"
        return 401, {}, {"errors": message}

    def route(self, request: RecordedRequest) -> Response:
        api = _API.match(request.path)
        if api is None:
            return 404, {}, {"errors": "Not Found"}
        rest = api.group("rest")
        headers = {
            "X-Shopify-API-Version": api.group("version"),
            "X-Shopify-Shop-Api-Call-Limit": "1/40",
        }
        if request.method == "GET" and rest == "/orders.json":
            return 200, headers, {"orders": self._list_orders(request)}
        if request.method == "GET" and (m := _ORDER.match(rest)):
            order = self.orders.get(int(m.group("oid")))
            if order is None:
                return 404, headers, {"errors": "Not Found"}
            return 200, headers, {"order": order}
        if request.method == "GET" and (m := _EVENTS.match(rest)):
            name = f"fulfillment_events_{m.group('fid')}.json"
            if not (FIXTURES / "shopify" / name).exists():
                return 404, headers, {"errors": "Not Found"}
            return 200, headers, load_fixture("shopify", name)
        if request.method == "POST" and rest == "/graphql.json":
            return 200, headers, self._graphql(request)
        return 404, headers, {"errors": "Not Found"}

    # -- REST ------------------------------------------------------------------------------
    def _list_orders(self, request: RecordedRequest) -> list[dict[str, Any]]:
        status = request.param("status") or "open"
        name = request.param("name")
        fields = [f for f in (request.param("fields") or "").split(",") if f]
        found = []
        for order in self.orders.values():
            if name is not None and order["name"] != name:
                continue
            cancelled, closed = order["cancelled_at"] is not None, order["closed_at"] is not None
            if status == "open" and (cancelled or closed):
                continue
            if status == "closed" and not closed:
                continue
            if status == "cancelled" and not cancelled:
                continue
            found.append({k: v for k, v in order.items() if not fields or k in fields})
        return found

    # -- GraphQL -----------------------------------------------------------------------------
    def _graphql(self, request: RecordedRequest) -> Any:
        body = request.json() or {}
        operation = body.get("operationName")
        for index, (wanted, payload) in enumerate(self._queued_graphql):
            if wanted is None or wanted == operation:
                del self._queued_graphql[index]
                return payload
        variables = body.get("variables") or {}
        if operation == "ReturnContext":
            data = self._return_context(variables["orderId"])
        elif operation == "ReturnRequest":
            data = self._return_request(variables["input"])
        else:
            return {"errors": [{"message": f"unsupported operation {operation!r} in this fake"}]}
        return {"data": data, "extensions": {"cost": _COST}}

    def _returnable_for(self, order_id: int) -> dict[str, Any]:
        if order_id not in self._returnable:
            name = f"returnable_fulfillments_{order_id}.json"
            if (FIXTURES / "shopify" / name).exists():
                payload = load_fixture("shopify", name)["returnableFulfillments"]
            else:
                payload = {"nodes": []}
            self._returnable[order_id] = copy.deepcopy(payload)
        return self._returnable[order_id]

    def _return_context(self, order_gid: str) -> dict[str, Any]:
        order_id = int(order_gid.rsplit("/", 1)[-1])
        if order_id not in self.orders:
            return {"order": None, "returnableFulfillments": {"nodes": []}}
        returns = [
            {
                "id": r["id"],
                "status": r["status"],
                "returnLineItems": {
                    "nodes": [{"customerNote": li.get("customerNote")} for li in r["lines"]]
                },
            }
            for r in self.returns.get(order_id, [])
        ]
        returnable = self._returnable_for(order_id)
        visible = {"nodes": [
            {**f, "returnableFulfillmentLineItems": {"nodes": [
                n for n in f["returnableFulfillmentLineItems"]["nodes"] if n["quantity"] > 0]}}
            for f in returnable["nodes"]
        ]}
        return {
            "order": {"id": order_gid, "returns": {"nodes": returns}},
            "returnableFulfillments": visible,
        }

    def _return_request(self, data: dict[str, Any]) -> dict[str, Any]:
        order_id = int(str(data["orderId"]).rsplit("/", 1)[-1])
        slots = {n["fulfillmentLineItem"]["id"]: n
                 for f in self._returnable_for(order_id)["nodes"]
                 for n in f["returnableFulfillmentLineItems"]["nodes"]}
        errors = []
        for index, line in enumerate(data.get("returnLineItems") or []):
            slot = slots.get(line.get("fulfillmentLineItemId"))
            field = ["input", "returnLineItems", str(index)]
            if slot is None:
                errors.append({"field": [*field, "fulfillmentLineItemId"], "code": "NOT_FOUND",
                               "message": "Fulfillment line item does not exist."})
            elif int(line.get("quantity", 0)) > slot["quantity"]:
                errors.append({"field": [*field, "quantity"], "code": "INVALID",
                               "message": "Quantity exceeds the returnable quantity."})
        if errors:
            return {"returnRequest": {"return": None, "userErrors": errors}}
        for line in data["returnLineItems"]:
            slots[line["fulfillmentLineItemId"]]["quantity"] -= int(line["quantity"])
        created = {"id": f"gid://shopify/Return/{self._next_return_id}", "status": "REQUESTED",
                   "lines": copy.deepcopy(data["returnLineItems"])}
        self._next_return_id += 1
        self.returns.setdefault(order_id, []).append(created)
        return {"returnRequest": {"return": {"id": created["id"], "status": created["status"]},
                                  "userErrors": []}}
