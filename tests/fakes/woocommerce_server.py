"""A local stand-in for the WooCommerce REST API v3 (orders and order notes).

Serves `tests/fixtures/woocommerce/order_*.json` with the real URL shapes:

* `GET /wp-json/wc/v3/orders/{id}` -- by *id*; 404 `woocommerce_rest_shop_order_invalid_id`
  otherwise, exactly as WooCommerce answers.
* `GET /wp-json/wc/v3/orders?search=...&per_page=...` -- a loose search like the real one:
  exact id, or a substring of the order number, billing email/name or an item name.
* `GET/POST /wp-json/wc/v3/orders/{id}/notes` -- notes kept in memory (seeded from
  `notes_{id}.json`), `type=internal|customer|any` honoured, POST answers 201 with the note.

Auth: HTTP Basic with consumer key and secret; 401 `woocommerce_rest_cannot_view` otherwise.
"""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

from tests.fakes import FIXTURES, FakeServer, RecordedRequest, Response, load_fixture

_PREFIX = "/wp-json/wc/v3"
_SHOP = "https://shop.example.com"
_ORDER = re.compile(r"^/orders/(?P<id>\d+)$")
_NOTES = re.compile(r"^/orders/(?P<id>\d+)/notes$")
_NO_ROUTE = {
    "code": "rest_no_route",
    "message": "No route was found matching the URL and request method.",
    "data": {"status": 404},
}


class WooCommerceFake(FakeServer):
    def __init__(
        self, consumer_key: str = "ck_test_key", consumer_secret: str = "cs_test_secret"
    ) -> None:
        super().__init__()
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.orders: dict[int, dict[str, Any]] = {}
        for path in sorted((FIXTURES / "woocommerce").glob("order_*.json")):
            order = load_fixture("woocommerce", path.name)
            self.orders[int(order["id"])] = order
        self.notes: dict[int, list[dict[str, Any]]] = {}
        for order_id in self.orders:
            name = f"notes_{order_id}.json"
            seeded = (FIXTURES / "woocommerce" / name).exists()
            self.notes[order_id] = (copy.deepcopy(load_fixture("woocommerce", name))
                                    if seeded else [])
        self._next_note_id = 6001

    def authorized(self, request: RecordedRequest) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:]).decode("utf-8")
        except ValueError:
            return False
        return decoded == f"{self.consumer_key}:{self.consumer_secret}"

    def unauthorized(self, request: RecordedRequest) -> Response:
        return 401, {}, load_fixture("woocommerce", "error_unauthorized.json")

    def route(self, request: RecordedRequest) -> Response:
        if not request.path.startswith(_PREFIX):
            return 404, {}, _NO_ROUTE
        rest = request.path[len(_PREFIX):]
        if request.method == "GET" and rest == "/orders":
            found = self._search(request.param("search") or "")
            per_page = int(request.param("per_page") or 10)
            return 200, {"X-WP-Total": str(len(found)), "X-WP-TotalPages": "1"}, found[:per_page]
        if m := _ORDER.match(rest):
            order = self.orders.get(int(m.group("id")))
            if order is None:
                return 404, {}, load_fixture("woocommerce", "error_invalid_id.json")
            return 200, {}, order
        if m := _NOTES.match(rest):
            order_id = int(m.group("id"))
            if order_id not in self.orders:
                return 404, {}, load_fixture("woocommerce", "error_invalid_id.json")
            if request.method == "POST":
                return 201, {}, self._add_note(order_id, request.json() or {})
            kind = request.param("type") or "any"
            notes = [n for n in self.notes[order_id]
                     if kind == "any" or n["customer_note"] == (kind == "customer")]
            return 200, {}, notes
        return 404, {}, _NO_ROUTE

    def _search(self, term: str) -> list[dict[str, Any]]:
        needle = term.strip().lower()
        found = []
        newest_first = sorted(self.orders.values(), key=lambda o: o["date_created_gmt"],
                              reverse=True)
        for order in newest_first:
            billing = order["billing"]
            haystack = [order["number"], billing["email"], billing["first_name"],
                        billing["last_name"], *(li["name"] for li in order["line_items"])]
            exact_id = needle == str(order["id"])
            if not needle or exact_id or any(needle in str(h).lower() for h in haystack):
                found.append(order)
        return found

    def _add_note(self, order_id: int, body: dict[str, Any]) -> dict[str, Any]:
        note = {
            "id": self._next_note_id,
            "author": "WooCommerce",
            "date_created": "2024-11-12T10:00:00",
            "date_created_gmt": "2024-11-12T15:00:00",
            "note": str(body.get("note", "")),
            "customer_note": bool(body.get("customer_note", False)),
            "_links": {"up": [{"href": f"{_SHOP}/wp-json/wc/v3/orders/{order_id}"}]},
        }
        self._next_note_id += 1
        self.notes[order_id].insert(0, note)
        return note
