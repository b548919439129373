"""The sandbox's Stripe API: the REST wire format stripe-python 16.1 speaks, on objects in memory.

Requests are what the library sends: form-encoded bodies in bracket notation
(`line_items[0][price]=...`, `payload[value]=1`), `Authorization: Bearer sk_...` (or curl's
`-u sk_...:`), `Stripe-Version`, and an `Idempotency-Key` on every POST. Answers are Stripe's:
the object as JSON, or `{"error": {"type", "message", "param"?, "code"?}}` with Stripe's
statuses (401 no or wrong key, 404 resource_missing, 400 invalid_request_error /
idempotency_error).

Idempotency as Stripe keeps it: a POST repeating a key with the same parameters gets the first
answer again (header `Idempotent-Replayed: true`), with other parameters a 400
idempotency_error. Meter events are deduplicated on `identifier` for 24 hours (accepted,
counted once), as Stripe's meters are.

Framework-free: `handle()` takes the request's parts and answers a `Reply`; devtools/
stripe_sandbox/app.py serves it with Sanic (`make run`'s sandbox, and the tests' server).
What happens after Checkout (the pages, the events) is in `sandbox.py`.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

Json = dict[str, Any]
DAY = 86400


@dataclass(frozen=True)
class Price:
    """A Stripe Price the sandbox knows: what the checkout page shows and invoices charge."""

    id: str
    nickname: str
    unit_amount: int  # cents per month (licensed) or per unit (metered)
    metered: bool = False
    currency: str = "usd"
    meter_event: str | None = None  # metered: the event name of the Billing Meter it bills

    @property
    def meter_id(self) -> str | None:
        return f"mtr_sb_{self.meter_event}" if self.metered and self.meter_event else None

    def as_stripe(self) -> Json:
        recurring: Json = {"interval": "month", "interval_count": 1,
                           "usage_type": "metered" if self.metered else "licensed"}
        if self.meter_id:
            recurring["meter"] = self.meter_id
        return {"id": self.id, "object": "price", "active": True, "currency": self.currency,
                "nickname": self.nickname, "unit_amount": self.unit_amount,
                "recurring": recurring, "type": "recurring", "livemode": False,
                "product": "prod_" + self.id.removeprefix("price_")}


@dataclass(frozen=True)
class Reply:
    status: int
    body: Json
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One API request as the sandbox received it (tests look at keys and parameters)."""

    method: str
    path: str
    params: Json
    idempotency_key: str | None
    stripe_version: str | None
    status: int
    replayed: bool = False


@dataclass
class _Failure:
    path: str
    mode: str  # "error": answer `status` unprocessed; "lose": process, answer `status`;
    #            "hang": process, then hold the answer `seconds` (the client times out)
    status: int
    seconds: float


class StripeError(Exception):
    def __init__(self, status: int, type_: str, message: str, *, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.reply = Reply(status, {"error": {k: v for k, v in {
            "type": type_, "message": message, "param": param, "code": code}.items()
            if v is not None}})


def missing(kind: str, id_: str, param: str = "id") -> StripeError:
    return StripeError(404, "invalid_request_error", f"No such {kind}: '{id_}'",
                       param=param, code="resource_missing")


def required(param: str) -> StripeError:
    return StripeError(400, "invalid_request_error", f"Missing required param: {param}.",
                       param=param, code="parameter_missing")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def api_key_of(authorization: str) -> str:
    """The key of `Bearer sk_...` (the libraries) or Basic `sk_...:` (curl -u, Stripe's docs)."""
    scheme, _, value = authorization.partition(" ")
    if scheme == "Bearer":
        return value.strip()
    if scheme == "Basic":
        try:
            return base64.b64decode(value.strip()).decode("utf-8").partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def parse_form(pairs: list[tuple[str, str]]) -> Json:
    """Bracket notation into nested dicts; dicts keyed 0..n become lists (`a[0][b]`, `a[]`)."""
    root: Json = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        parts = [head, *re.findall(r"\[([^\]]*)\]", key[len(head):])]
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


class StripeApi:
    """Stripe's objects in memory and the REST routes over them (module doc)."""

    def __init__(self, api_key: str | None = None, prices: dict[str, Price] | None = None,
                 base_url: str = "http://127.0.0.1:8025") -> None:
        self.api_key = api_key  # None: any sk_ key is accepted
        self.prices: dict[str, Price] = dict(prices or {})  # empty: any price id is accepted
        self.base_url = base_url  # where browsers reach the sandbox's pages
        self.customers: dict[str, Json] = {}
        self.checkout_sessions: dict[str, Json] = {}
        self.line_items: dict[str, list[Json]] = {}  # checkout session id -> its line items
        self.portal_sessions: dict[str, Json] = {}
        self.subscriptions: dict[str, Json] = {}
        self.invoices: dict[str, Json] = {}
        self.meter_events: list[Json] = []  # accepted and counted
        self.meter_received: dict[str, int] = {}  # identifier -> times received
        self.calls: list[Call] = []
        self._identifiers: dict[str, float] = {}  # identifier -> when first counted
        self._idempotent: dict[tuple[str, str], tuple[str, str, Json, Reply]] = {}
        self._failures: deque[_Failure] = deque()
        self._released = asyncio.Event()

    # -- test hooks ------------------------------------------------------------------------
    def fail_next(self, path: str, *, times: int = 1, status: int = 500, mode: str = "error",
                  seconds: float = 30.0) -> None:
        """The next `times` calls whose path contains `path` misbehave: "error" answers
        `status` without processing; "lose" processes the call (recorded, counted, remembered
        for its idempotency key) and answers `status`; "hang" processes it and holds the
        answer `seconds`, so the client times out."""
        if mode not in ("error", "lose", "hang"):
            raise ValueError(f"unknown failure mode {mode!r}")
        for _ in range(times):
            self._failures.append(_Failure(path, mode, status, seconds))

    def calls_to(self, path: str, method: str | None = None) -> list[Call]:
        return [c for c in self.calls
                if path in c.path and (method is None or c.method == method)]

    def meter_total(self, event_name: str, customer: str | None = None) -> int:
        """The sum of the counted meter events' values (what Stripe would bill)."""
        return sum(int(e["payload"]["value"]) for e in self.meter_events
                   if e["event_name"] == event_name
                   and (customer is None or e["payload"].get("stripe_customer_id") == customer))

    def release(self) -> None:
        """Answer hung calls now (the server is stopping)."""
        self._released.set()

    # -- the HTTP surface ----------------------------------------------------------------------
    async def handle(self, method: str, path: str, query: str, body: bytes,
                     headers: dict[str, str]) -> Reply:
        """Answer one request to /v1/...; `headers` with lower-case names."""
        pairs = parse_qsl(query if method == "GET" else body.decode("utf-8"),
                          keep_blank_values=True)
        params = parse_form(pairs)
        key = headers.get("idempotency-key") if method == "POST" else None
        token = api_key_of(headers.get("authorization", ""))
        if not token.startswith(("sk_", "rk_")) or (self.api_key and token != self.api_key):
            reply = StripeError(401, "invalid_request_error",
                                "Invalid API Key provided." if token else
                                "You did not provide an API key.").reply
            return self._record(method, path, params, key, headers, reply)
        failure = self._failure(path)
        if failure is not None and failure.mode == "error":
            reply = StripeError(failure.status, "api_error", "Injected failure.").reply
            return self._record(method, path, params, key, headers, reply)
        reply, replayed = self._idempotently(token, key, method, path, params)
        self._record(method, path, params, key, headers, reply, replayed)
        if failure is not None and failure.mode == "hang":
            try:
                await asyncio.wait_for(self._released.wait(), failure.seconds)
            except TimeoutError:
                pass
        if failure is not None and failure.mode == "lose":
            return StripeError(failure.status, "api_error", "Injected failure.").reply
        return reply

    def _failure(self, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.path in path:
                self._failures.remove(failure)
                return failure
        return None

    def _record(self, method: str, path: str, params: Json, key: str | None,
                headers: dict[str, str], reply: Reply, replayed: bool = False) -> Reply:
        self.calls.append(Call(method, path, params, key, headers.get("stripe-version"),
                               reply.status, replayed))
        return reply

    def _idempotently(self, token: str, key: str | None, method: str, path: str,
                      params: Json) -> tuple[Reply, bool]:
        if key is None:
            return self._route(method, path, params), False
        fingerprint = json.dumps(params, sort_keys=True)
        seen = self._idempotent.get((token, key))
        if seen is not None:
            first_path, first_params, _, reply = seen
            if (first_path, first_params) != (path, fingerprint):
                return StripeError(
                    400, "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.").reply, False
            return Reply(reply.status, reply.body,
                         {**reply.headers, "Idempotent-Replayed": "true"}), True
        reply = self._route(method, path, params)
        if reply.status < 500:  # Stripe saves the result once the endpoint ran
            self._idempotent[(token, key)] = (path, fingerprint, params, reply)
        return reply, False

    def _route(self, method: str, path: str, params: Json) -> Reply:
        for (verb, pattern), handler in _ROUTES.items():
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                try:
                    return Reply(200, copy.deepcopy(handler(self, params, *match.groups())))
                except StripeError as exc:
                    return exc.reply
        return StripeError(404, "invalid_request_error",
                           f"Unrecognized request URL ({method}: {path}).").reply

    # -- resources -------------------------------------------------------------------------------
    def customer(self, id_: str, param: str = "id") -> Json:
        if id_ not in self.customers:
            raise missing("customer", id_, param)
        return self.customers[id_]

    def price(self, id_: str, param: str) -> Price:
        if id_ in self.prices:
            return self.prices[id_]
        if self.prices:
            raise missing("price", id_, param)
        return Price(id_, id_, 1000)

    def meter(self, id_: str) -> Json:
        """A Billing Meter a Price bills from, as GET /v1/billing/meters/{id} answers."""
        event = next((p.meter_event for p in self.prices.values() if p.meter_id == id_), None)
        if event is None:
            raise missing("billing.meter", id_, "id")
        return {"id": id_, "object": "billing.meter", "status": "active",
                "event_name": event, "display_name": event.replace("_", " ").capitalize(),
                "default_aggregation": {"formula": "sum"}, "livemode": False}

    def create_customer(self, params: Json) -> Json:
        customer: Json = {"id": new_id("cus"), "object": "customer", "created": int(time.time()),
                          "email": params.get("email"), "name": params.get("name"),
                          "description": params.get("description"),
                          "metadata": params.get("metadata") or {}, "livemode": False,
                          "currency": None, "delinquent": False,
                          "invoice_settings": {"default_payment_method": None}}
        self.customers[customer["id"]] = customer
        return customer

    def create_checkout_session(self, params: Json) -> Json:
        if params.get("mode") not in ("subscription", "payment", "setup"):
            raise required("mode") if "mode" not in params else StripeError(
                400, "invalid_request_error", f"Invalid mode: {params['mode']}", param="mode")
        if params.get("customer"):
            self.customer(params["customer"], "customer")
        if not params.get("success_url"):
            raise required("success_url")
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise required("line_items")
        line_items: list[Json] = []
        for n, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("price"):
                raise required(f"line_items[{n}][price]")
            price = self.price(item["price"], f"line_items[{n}][price]")
            if price.metered and "quantity" in item:
                raise StripeError(400, "invalid_request_error",
                                  "Quantity should not be specified where usage_type is "
                                  "`metered`.", param=f"line_items[{n}][quantity]")
            line_items.append({"id": new_id("li"), "object": "item",
                               "price": price.as_stripe(),
                               "quantity": None if price.metered else int(
                                   item.get("quantity") or 1)})
        id_ = "cs_test_" + secrets.token_hex(16)
        now = int(time.time())
        session: Json = {"id": id_, "object": "checkout.session", "mode": params["mode"],
                         "status": "open", "payment_status": "unpaid", "created": now,
                         "expires_at": now + DAY, "customer": params.get("customer"),
                         "customer_email": params.get("customer_email"),
                         "client_reference_id": params.get("client_reference_id"),
                         "metadata": params.get("metadata") or {},
                         "subscription_data": params.get("subscription_data") or {},
                         "success_url": params["success_url"],
                         "cancel_url": params.get("cancel_url"),
                         "subscription": None, "invoice": None, "livemode": False,
                         "amount_total": sum((li["price"]["unit_amount"] * (li["quantity"] or 0))
                                             for li in line_items),
                         "currency": "usd", "url": f"{self.base_url}/stripe/checkout/{id_}"}
        # Not part of Stripe's object: subscription_data is a parameter, kept for completion.
        self.checkout_sessions[id_] = session
        self.line_items[id_] = line_items
        return self.public_session(id_)

    def public_session(self, id_: str) -> Json:
        if id_ not in self.checkout_sessions:
            raise missing("checkout.session", id_)
        session = dict(self.checkout_sessions[id_])
        session.pop("subscription_data", None)
        return session

    def create_portal_session(self, params: Json) -> Json:
        if not params.get("customer"):
            raise required("customer")
        self.customer(params["customer"], "customer")
        flow = params.get("flow_data")
        if flow is not None:
            if flow.get("type") != "subscription_update_confirm":
                raise StripeError(400, "invalid_request_error",
                                  "The sandbox knows flow_data[type]=subscription_update_confirm",
                                  param="flow_data[type]")
            confirm = flow.get("subscription_update_confirm") or {}
            sub = self.subscription(confirm.get("subscription") or "",
                                    "flow_data[subscription_update_confirm][subscription]")
            items = confirm.get("items") or []
            if not items or not items[0].get("price"):
                raise required("flow_data[subscription_update_confirm][items]")
            self.price(items[0]["price"], "flow_data[subscription_update_confirm][items][0][price]")
            if sub["customer"] != params["customer"]:
                raise StripeError(400, "invalid_request_error",
                                  "The subscription belongs to another customer.",
                                  param="flow_data[subscription_update_confirm][subscription]")
        id_ = new_id("bps")
        session = {"id": id_, "object": "billing_portal.session",
                   "configuration": "bpc_sandbox", "created": int(time.time()),
                   "customer": params["customer"], "flow": flow, "livemode": False,
                   "locale": None, "on_behalf_of": None, "return_url": params.get("return_url"),
                   "url": f"{self.base_url}/stripe/portal/{id_}"}
        self.portal_sessions[id_] = session
        return session

    def subscription(self, id_: str, param: str = "id") -> Json:
        if id_ not in self.subscriptions:
            raise missing("subscription", id_, param)
        return self.subscriptions[id_]

    def list_invoices(self, params: Json) -> Json:
        limit = int(params.get("limit") or 10)
        if not 1 <= limit <= 100:
            raise StripeError(400, "invalid_request_error",
                              "This value must be between 1 and 100.", param="limit")
        found = [i for i in self.invoices.values()
                 if (not params.get("customer") or i["customer"] == params["customer"])
                 and (not params.get("subscription") or i["subscription"] == params[
                     "subscription"])]
        found.sort(key=lambda i: i["created"], reverse=True)
        return {"object": "list", "url": "/v1/invoices", "has_more": len(found) > limit,
                "data": found[:limit]}

    def create_meter_event(self, params: Json) -> Json:
        for name in ("event_name", "payload"):
            if not params.get(name):
                raise required(name)
        payload = params["payload"]
        if not isinstance(payload, dict) or not payload.get("stripe_customer_id"):
            raise required("payload[stripe_customer_id]")
        value = payload.get("value")
        if value is None or not str(value).lstrip("-").isdigit():
            raise StripeError(400, "invalid_request_error",
                              "payload[value] must be a whole number.", param="payload[value]")
        now = time.time()
        identifier = params.get("identifier") or new_id("mev")
        event = {"object": "billing.meter_event", "created": int(now),
                 "event_name": params["event_name"], "identifier": identifier,
                 "livemode": False, "payload": payload,
                 "timestamp": int(params.get("timestamp") or now)}
        self.meter_received[identifier] = self.meter_received.get(identifier, 0) + 1
        first = self._identifiers.get(identifier)
        if first is None or now - first >= DAY:
            self._identifiers[identifier] = now
            self.meter_events.append(event)
        return event


_ROUTES: dict[tuple[str, str], Any] = {
    ("POST", r"/v1/customers"): lambda api, p: api.create_customer(p),
    ("GET", r"/v1/customers/([^/]+)"): lambda api, p, id_: api.customer(id_),
    ("GET", r"/v1/prices/([^/]+)"): lambda api, p, id_: api.price(id_, "id").as_stripe(),
    ("GET", r"/v1/billing/meters/([^/]+)"): lambda api, p, id_: api.meter(id_),
    ("POST", r"/v1/checkout/sessions"): lambda api, p: api.create_checkout_session(p),
    ("GET", r"/v1/checkout/sessions/([^/]+)"): lambda api, p, id_: api.public_session(id_),
    ("POST", r"/v1/billing_portal/sessions"): lambda api, p: api.create_portal_session(p),
    ("GET", r"/v1/subscriptions/([^/]+)"): lambda api, p, id_: api.subscription(id_),
    ("GET", r"/v1/invoices"): lambda api, p: api.list_invoices(p),
    ("POST", r"/v1/billing/meter_events"): lambda api, p: api.create_meter_event(p),
}
