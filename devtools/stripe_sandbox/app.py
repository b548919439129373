"""The sandbox over HTTP: Stripe's API under /v1 and the pages a customer's browser opens.

`add_routes(app, sandbox)` mounts both on a Sanic app: `make run`'s provider sandbox
(devtools/sandbox.py, port 8025; its Twilio and Graph routes do not collide with /v1/...)
and the tests' server (tests/fakes/stripe_server.py).

- GET /stripe/checkout/{id}: the plan and its price; "Pay" completes the session (the
  subscription, its first invoice and the signed events) and redirects 303 to success_url,
  "Cancel" to cancel_url.
- GET /stripe/portal/{id}: the customer's subscriptions, each with: cancel at the period's
  end (or undo it), cancel now, switch to another plan's Price, simulate a failed payment,
  pay now; a portal session for a subscription_update_confirm flow shows its switch first.
  "Back" goes to return_url.
Plain HTML forms, no script: a person (or a headless browser) clicks through them.
"""

from __future__ import annotations

import html
import secrets
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, redirect
from sanic.response import html as html_response
from sanic.response import json as json_response

from devtools.stripe_sandbox.api import Json
from devtools.stripe_sandbox.sandbox import StripeSandbox

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;color:#222}"
          ".box{border:1px solid #ccc;border-radius:8px;padding:1rem 1.5rem;margin:1rem 0}"
          "button{margin:.2rem .4rem .2rem 0;padding:.4rem .9rem}"
          ".note{color:#666;font-size:.9rem}")


def _page(title: str, body: str, status: int = 200) -> HTTPResponse:
    return html_response(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
        f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
        '<p class=note>Stripe sandbox (development only): no money moves.</p></body></html>',
        status=status)


def _button(action: str, label: str, **fields: str) -> str:
    hidden = "".join(f'<input type=hidden name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    return (f'<form method=post action="{html.escape(action)}" style="display:inline">'
            f"{hidden}<button>{html.escape(label)}</button></form>")


def _money(cents: int, currency: str = "usd") -> str:
    return f"{cents / 100:.2f} {currency.upper()}"


def _price_line(price: Json, quantity: int | None) -> str:
    name = html.escape(price.get("nickname") or price["id"])
    if price["recurring"]["usage_type"] == "metered":
        return f"<li>{name}: {_money(price['unit_amount'])} per unit used, billed monthly</li>"
    times = f" × {quantity}" if quantity and quantity != 1 else ""
    return f"<li>{name}: {_money(price['unit_amount'])} a month{times}</li>"


def _date(ts: int | None) -> str:
    import datetime as dt

    return "—" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def add_routes(app: Sanic, sandbox: StripeSandbox) -> None:
    """Mount the sandbox's API and pages on `app` (module doc)."""

    async def api(request: Request, rest: str) -> HTTPResponse:
        reply = await sandbox.handle(request.method, "/v1/" + rest, request.query_string,
                                     request.body, {k.lower(): v for k, v in
                                                    request.headers.items()})
        headers = {"Request-Id": "req_" + secrets.token_hex(7), **reply.headers}
        return json_response(reply.body, status=reply.status, headers=headers)

    app.add_route(api, "/v1/<rest:path>", methods=["GET", "POST"], name="stripe_api")

    def not_found(what: str) -> HTTPResponse:
        return _page("Not found", f"<p>No such {html.escape(what)}.</p>", status=404)

    async def checkout_page(request: Request, session_id: str) -> HTTPResponse:
        session = sandbox.checkout_sessions.get(session_id)
        if session is None:
            return not_found("checkout session")
        if session["status"] != "open":
            return _page("Checkout", f"<p>This checkout session is {session['status']}.</p>")
        lines = "".join(_price_line(li["price"], li["quantity"])
                        for li in sandbox.line_items[session_id])
        who = session["customer_email"] or (sandbox.customers.get(session["customer"] or "")
                                            or {}).get("email") or session["customer"]
        base = f"/stripe/checkout/{session_id}"
        body = (f"<div class=box><p>Subscribe {html.escape(str(who or ''))}</p><ul>{lines}</ul>"
                f"<p>Due today: <b>{_money(session['amount_total'])}</b></p>"
                f"{_button(base + '/pay', 'Pay')}{_button(base + '/cancel', 'Cancel')}</div>")
        return _page("Checkout", body)

    async def checkout_pay(request: Request, session_id: str) -> HTTPResponse:
        session = sandbox.checkout_sessions.get(session_id)
        if session is None:
            return not_found("checkout session")
        if session["status"] == "open":
            await sandbox.complete_checkout(session_id)
        return redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id),
                        status=303)

    async def checkout_cancel(request: Request, session_id: str) -> HTTPResponse:
        session = sandbox.checkout_sessions.get(session_id)
        if session is None:
            return not_found("checkout session")
        return redirect(session["cancel_url"] or session["success_url"], status=303)

    app.add_route(checkout_page, "/stripe/checkout/<session_id:str>", name="stripe_checkout")
    app.add_route(checkout_pay, "/stripe/checkout/<session_id:str>/pay", methods=["POST"],
                  name="stripe_checkout_pay")
    app.add_route(checkout_cancel, "/stripe/checkout/<session_id:str>/cancel",
                  methods=["POST"], name="stripe_checkout_cancel")

    def subscription_box(portal_id: str, sub: Json) -> str:
        base = f"/stripe/portal/{portal_id}/subscriptions/{sub['id']}"
        items = "".join(_price_line(i["price"], i["quantity"]) for i in sub["items"]["data"])
        current = {i["price"]["id"] for i in sub["items"]["data"]}
        state = html.escape(sub["status"])
        if sub["cancel_at_period_end"]:
            state += f", ends {_date(sub['current_period_end'])}"
        buttons: list[str] = []
        if sub["status"] != "canceled":
            buttons.append(_button(base + "/renew", "Don't cancel") if sub[
                "cancel_at_period_end"] else _button(base + "/cancel_at_period_end",
                                                     "Cancel at period end"))
            buttons.append(_button(base + "/cancel_now", "Cancel now"))
            for price in sandbox.prices.values():
                if not price.metered and price.id not in current:
                    buttons.append(_button(base + "/switch", f"Switch to {price.nickname}",
                                           price=price.id))
            buttons.append(_button(base + "/fail_payment", "Simulate a failed payment"))
            if sub["status"] == "past_due":
                buttons.append(_button(base + "/pay_now", "Pay now"))
        return (f"<div class=box><p><b>{html.escape(sub['id'])}</b>: {state}; period "
                f"{_date(sub['current_period_start'])} to {_date(sub['current_period_end'])}"
                f"</p><ul>{items}</ul>{''.join(buttons)}</div>")

    async def portal_page(request: Request, portal_id: str) -> HTTPResponse:
        portal = sandbox.portal_sessions.get(portal_id)
        if portal is None:
            return not_found("portal session")
        parts: list[str] = []
        flow = portal["flow"] or {}
        confirm = flow.get("subscription_update_confirm") or {}
        if confirm:
            price = confirm["items"][0]["price"]
            sub_id = confirm["subscription"]
            name = sandbox.prices[price].nickname if price in sandbox.prices else price
            parts.append(f"<div class=box><p>Confirm the switch to <b>{html.escape(name)}</b>"
                         "</p>" + _button(
                             f"/stripe/portal/{portal_id}/subscriptions/{sub_id}/switch",
                             "Confirm", price=price) + "</div>")
        subs = sandbox.customer_subscriptions(portal["customer"])
        parts.extend(subscription_box(portal_id, s) for s in subs)
        if not subs:
            parts.append("<p>No subscriptions.</p>")
        if portal["return_url"]:
            parts.append(f'<p><a href="{html.escape(portal["return_url"])}">Back</a></p>')
        return _page("Billing portal", "".join(parts))

    actions: dict[str, Any] = {
        "cancel_at_period_end": lambda sub, form: sandbox.cancel(sub, at_period_end=True),
        "cancel_now": lambda sub, form: sandbox.cancel(sub, at_period_end=False),
        "renew": lambda sub, form: sandbox.renew(sub),
        "switch": lambda sub, form: sandbox.change_price(sub, form.get("price", "")),
        "fail_payment": lambda sub, form: sandbox.fail_payment(sub),
        "pay_now": lambda sub, form: sandbox.pay(sub),
    }

    async def portal_action(request: Request, portal_id: str, sub_id: str,
                            action: str) -> HTTPResponse:
        portal = sandbox.portal_sessions.get(portal_id)
        sub = sandbox.subscriptions.get(sub_id)
        if portal is None or sub is None or sub["customer"] != portal["customer"]:
            return not_found("subscription")
        if action not in actions:
            return not_found("action")
        form = {k: v[0] for k, v in (request.form or {}).items()}
        if action == "switch" and form.get("price") not in sandbox.prices and sandbox.prices:
            return _page("Billing portal", "<p>No such price.</p>", status=400)
        await actions[action](sub_id, form)
        return redirect(f"/stripe/portal/{portal_id}", status=303)

    app.add_route(portal_page, "/stripe/portal/<portal_id:str>", name="stripe_portal")
    app.add_route(portal_action, "/stripe/portal/<portal_id:str>/subscriptions/<sub_id:str>/"
                  "<action:str>", methods=["POST"], name="stripe_portal_action")
