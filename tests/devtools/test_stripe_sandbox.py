"""The Stripe sandbox answers stripe-python 16.1 as Stripe does, and its pages send Stripe's
signed events, which `stripe.Webhook.construct_event` accepts, in Stripe's order."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import stripe

from tests.fakes import FakeServer, RecordedRequest, Response
from tests.fakes.stripe_server import WEBHOOK_SECRET, StripeServer, stripe_server

pytestmark = pytest.mark.asyncio
STARTER, PRO, PRO_USAGE = ("price_sb_starter_monthly", "price_sb_pro_monthly",
                           "price_sb_pro_conversations")


class WebhookReceiver(FakeServer):
    """The product's webhook endpoint: records what Stripe posts and answers 200."""

    def authorized(self, request: RecordedRequest) -> bool:
        return True

    def route(self, request: RecordedRequest) -> Response:
        return 200, {}, {"received": True}

    def events(self) -> list[stripe.Event]:
        """Every delivery that arrived, verified as the product verifies it."""
        return [stripe.Webhook.construct_event(r.body.decode(), r.headers["stripe-signature"],
                                               WEBHOOK_SECRET)
                for r in self.requests if r.path == "/billing/stripe/webhook"]

    def types(self) -> list[str]:
        return [e.type for e in self.events()]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest_asyncio.fixture
async def fake(receiver: WebhookReceiver) -> AsyncIterator[StripeServer]:
    async with stripe_server(webhook_url=receiver.base_url + "/billing/stripe/webhook") as f:
        yield f


async def subscribe(fake: StripeServer, *prices: str) -> tuple[str, str]:
    """A customer with a paid Checkout for `prices`: (customer id, subscription id)."""
    client = fake.client()
    customer = await client.v1.customers.create_async({"email": "owner@shop.example"})
    session = await client.v1.checkout.sessions.create_async({
        "mode": "subscription", "customer": customer.id,
        "line_items": [{"price": p} if p == PRO_USAGE else {"price": p, "quantity": 1}
                       for p in prices],
        "success_url": "http://shop.example/ok", "cancel_url": "http://shop.example/no"})
    events = await fake.sandbox.complete_checkout(session.id)
    return customer.id, events[1]["data"]["object"]["id"]


async def test_customers_and_checkout_sessions_through_stripe_python(
        fake: StripeServer) -> None:
    client = fake.client()
    customer = await client.v1.customers.create_async(
        {"email": "owner@shop.example", "metadata": {"tenant_id": "shop-1"}})
    assert customer.id.startswith("cus_") and customer["metadata"]["tenant_id"] == "shop-1"
    assert (await client.v1.customers.retrieve_async(customer.id)).email == "owner@shop.example"
    session = await client.v1.checkout.sessions.create_async({
        "mode": "subscription", "customer": customer.id, "client_reference_id": "shop-1",
        "line_items": [{"price": PRO, "quantity": 1}, {"price": PRO_USAGE}],
        "subscription_data": {"metadata": {"tenant_id": "shop-1"}},
        "metadata": {"plan": "pro"}, "success_url": "http://shop.example/ok?s={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://shop.example/no"})
    assert session.object == "checkout.session" and session.status == "open"
    assert session.url == f"{fake.base_url}/stripe/checkout/{session.id}"
    assert session.client_reference_id == "shop-1" and session["metadata"]["plan"] == "pro"
    again = await client.v1.checkout.sessions.retrieve_async(session.id)
    assert again.id == session.id and again.customer == customer.id
    [call] = fake.sandbox.calls_to("/v1/checkout/sessions", "POST")
    assert call.params["line_items"] == [{"price": PRO, "quantity": "1"}, {"price": PRO_USAGE}]
    assert call.idempotency_key and call.stripe_version == stripe.api_version

    with pytest.raises(stripe.InvalidRequestError) as missing:
        await client.v1.customers.retrieve_async("cus_unknown")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as bad_price:
        await client.v1.checkout.sessions.create_async({
            "mode": "subscription", "line_items": [{"price": "price_nope", "quantity": 1}],
            "success_url": "http://shop.example/ok"})
    assert bad_price.value.param == "line_items[0][price]"
    wrong_key = stripe.StripeClient("sk_test_wrong", base_addresses={"api": fake.base_url},
                                    http_client=stripe.HTTPXClient())
    with pytest.raises(stripe.AuthenticationError):
        await wrong_key.v1.customers.create_async({"email": "x@shop.example"})


async def test_portal_sessions_subscriptions_and_invoices(fake: StripeServer) -> None:
    client = fake.client()
    customer_id, sub_id = await subscribe(fake, STARTER)
    subscription = await client.v1.subscriptions.retrieve_async(sub_id)
    [item] = subscription["items"].data
    assert subscription.status == "active" and item.price.id == STARTER
    assert item.current_period_end == subscription["current_period_end"] > item.current_period_start
    portal = await client.v1.billing_portal.sessions.create_async({
        "customer": customer_id, "return_url": "http://shop.example/billing",
        "flow_data": {"type": "subscription_update_confirm", "subscription_update_confirm": {
            "subscription": sub_id, "items": [{"id": item.id, "price": PRO}]}}})
    assert portal.url == f"{fake.base_url}/stripe/portal/{portal.id}"
    assert portal.return_url == "http://shop.example/billing"
    invoices = await client.v1.invoices.list_async({"customer": customer_id, "limit": 5})
    [invoice] = invoices.data
    assert invoice.status == "paid" and invoice.amount_paid == 2900
    assert invoice["parent"]["subscription_details"]["subscription"] == sub_id
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.billing_portal.sessions.create_async({"customer": "cus_unknown"})


async def test_idempotent_replay_and_a_reused_key_with_other_parameters(
        fake: StripeServer) -> None:
    client = fake.client()
    first = await client.v1.customers.create_async({"email": "a@shop.example"},
                                                   {"idempotency_key": "shop-1-customer"})
    again = await client.v1.customers.create_async({"email": "a@shop.example"},
                                                   {"idempotency_key": "shop-1-customer"})
    assert again.id == first.id and len(fake.sandbox.customers) == 1
    assert [c.replayed for c in fake.sandbox.calls] == [False, True]
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        raw = await http.post("/v1/customers", data={"email": "a@shop.example"},
                              auth=(fake.api_key, ""),  # curl -u sk_...: as Stripe's docs do
                              headers={"Idempotency-Key": "shop-1-customer"})
    assert raw.headers["idempotent-replayed"] == "true" and raw.json()["id"] == first.id
    with pytest.raises(stripe.IdempotencyError):
        await client.v1.customers.create_async({"email": "b@shop.example"},
                                               {"idempotency_key": "shop-1-customer"})
    assert len(fake.sandbox.customers) == 1


async def test_meter_events_count_once_per_identifier(fake: StripeServer) -> None:
    client = fake.client()
    customer_id, _ = await subscribe(fake, PRO, PRO_USAGE)
    for identifier in ("conv-1", "conv-2", "conv-1"):
        event = await client.v1.billing.meter_events.create_async({
            "event_name": "switchboard_conversations", "identifier": identifier,
            "payload": {"stripe_customer_id": customer_id, "value": "1"}})
        assert event.object == "billing.meter_event" and event.identifier == identifier
    assert fake.sandbox.meter_total("switchboard_conversations", customer_id) == 2
    assert fake.sandbox.meter_received == {"conv-1": 2, "conv-2": 1}
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.billing.meter_events.create_async({
            "event_name": "switchboard_conversations", "payload": {"value": "1"}})


@pytest.mark.parametrize("mode", ["error", "lose", "hang"])
async def test_a_retried_meter_call_reuses_its_key_and_counts_once(
        fake: StripeServer, mode: str) -> None:
    """The next call fails (unprocessed, processed with the answer lost, or processed and held
    past the client's timeout); stripe-python retries with the same Idempotency-Key."""
    client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.base_url},
                                 http_client=stripe.HTTPXClient(timeout=0.5),
                                 max_network_retries=2)
    fake.sandbox.fail_next("/v1/billing/meter_events", mode=mode, seconds=2)
    await client.v1.billing.meter_events.create_async({
        "event_name": "switchboard_llm_tokens", "identifier": "answer-7",
        "payload": {"stripe_customer_id": "cus_x", "value": "350"}})
    calls = fake.sandbox.calls_to("/v1/billing/meter_events")
    assert len(calls) == 2 and calls[0].idempotency_key == calls[1].idempotency_key
    assert fake.sandbox.meter_total("switchboard_llm_tokens") == 350
    assert calls[1].replayed is (mode != "error")


def form_of(page: str, label: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the form whose button says `label` (what a browser
    submits when it is clicked)."""
    match = re.search(r'<form method=post action="([^"]+)"[^>]*>((?:<input[^>]*>)*)<button>'
                      + re.escape(label) + "</button>", page)
    assert match, f"no {label!r} button"
    fields = dict(re.findall(r'name="([^"]*)" value="([^"]*)"', match.group(2)))
    return match.group(1), fields


async def click(http: httpx.AsyncClient, url: str, label: str) -> httpx.Response:
    page = await http.get(url)
    assert page.status_code == 200
    action, fields = form_of(page.text, label)
    return await http.post(page.url.join(action), data=fields)


async def test_paying_on_the_checkout_page_sends_signed_events_in_order(
        fake: StripeServer, receiver: WebhookReceiver) -> None:
    client = fake.client()
    customer = await client.v1.customers.create_async({"email": "owner@shop.example"})
    session = await client.v1.checkout.sessions.create_async({
        "mode": "subscription", "customer": customer.id, "client_reference_id": "shop-1",
        "line_items": [{"price": STARTER, "quantity": 1}],
        "subscription_data": {"metadata": {"tenant_id": "shop-1"}},
        "success_url": "http://shop.example/ok?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://shop.example/no"})
    async with httpx.AsyncClient() as http:
        page = await http.get(str(session.url))
        assert "Starter" in page.text and "29.00 USD" in page.text
        paid = await click(http, str(session.url), "Pay")
    assert paid.status_code == 303
    assert paid.headers["location"] == f"http://shop.example/ok?session={session.id}"
    events = receiver.events()  # construct_event raised if a signature did not verify
    assert [e.type for e in events] == [
        "checkout.session.completed", "customer.subscription.created", "invoice.paid"]
    completed, created, invoice_paid = events
    for event in events:
        assert event.id.startswith("evt_") and event.object == "event"
        assert event.api_version == stripe.api_version and event.livemode is False
        assert event.pending_webhooks >= 1 and "request" in event and event.created > 0
    assert completed.data.object.client_reference_id == "shop-1"
    assert completed.data.object.subscription == created.data.object.id
    sub = created.data.object
    assert sub.status == "active" and sub.metadata["tenant_id"] == "shop-1"
    assert sub["items"].data[0].price.id == STARTER
    assert sub["items"].data[0].current_period_end == sub.current_period_end
    assert invoice_paid.data.object.parent.subscription_details.subscription == sub.id
    fetched = await client.v1.checkout.sessions.retrieve_async(session.id)
    assert fetched.status == "complete" and fetched.payment_status == "paid"


async def test_cancel_on_the_checkout_page_returns_without_events(
        fake: StripeServer, receiver: WebhookReceiver) -> None:
    session = await fake.client().v1.checkout.sessions.create_async({
        "mode": "subscription", "line_items": [{"price": PRO, "quantity": 1}],
        "customer_email": "owner@shop.example",
        "success_url": "http://shop.example/ok", "cancel_url": "http://shop.example/no"})
    async with httpx.AsyncClient() as http:
        cancelled = await click(http, str(session.url), "Cancel")
    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == "http://shop.example/no"
    assert receiver.requests == [] and fake.sandbox.subscriptions == {}


def event_object(receiver: WebhookReceiver, index: int) -> Any:
    return receiver.events()[index].data.object


async def test_portal_actions_send_the_events_stripe_sends(
        fake: StripeServer, receiver: WebhookReceiver) -> None:
    customer_id, sub_id = await subscribe(fake, STARTER)
    portal = await fake.client().v1.billing_portal.sessions.create_async(
        {"customer": customer_id, "return_url": "http://shop.example/billing"})
    async with httpx.AsyncClient(base_url=fake.base_url, follow_redirects=True) as http:
        page = await http.get(portal.url)
        assert sub_id in page.text and 'href="http://shop.example/billing"' in page.text

        receiver.requests.clear()
        await click(http, portal.url, "Switch to Pro")
        assert receiver.types() == ["customer.subscription.updated"]
        assert event_object(receiver, 0)["items"].data[0].price.id == PRO
        assert receiver.events()[0]["data"]["previous_attributes"]["items"]

        receiver.requests.clear()
        await click(http, portal.url, "Simulate a failed payment")
        assert receiver.types() == ["invoice.payment_failed", "customer.subscription.updated"]
        assert event_object(receiver, 1).status == "past_due"

        receiver.requests.clear()
        await click(http, portal.url, "Pay now")
        assert receiver.types() == ["invoice.paid", "customer.subscription.updated"]
        assert event_object(receiver, 0).status == "paid"
        assert event_object(receiver, 1).status == "active"

        receiver.requests.clear()
        await click(http, portal.url, "Cancel at period end")
        assert receiver.types() == ["customer.subscription.updated"]
        updated = event_object(receiver, 0)
        assert updated.cancel_at_period_end is True and updated.status == "active"

        receiver.requests.clear()
        await click(http, portal.url, "Cancel now")
        assert receiver.types() == ["customer.subscription.deleted"]
        assert event_object(receiver, 0).status == "canceled"


async def test_the_plan_change_flow_confirms_the_asked_price(
        fake: StripeServer, receiver: WebhookReceiver) -> None:
    customer_id, sub_id = await subscribe(fake, STARTER)
    item_id = fake.sandbox.subscriptions[sub_id]["items"]["data"][0]["id"]
    portal = await fake.client().v1.billing_portal.sessions.create_async({
        "customer": customer_id, "return_url": "http://shop.example/billing",
        "flow_data": {"type": "subscription_update_confirm", "subscription_update_confirm": {
            "subscription": sub_id, "items": [{"id": item_id, "price": PRO}]}}})
    receiver.requests.clear()
    async with httpx.AsyncClient(follow_redirects=True) as http:
        confirmed = await click(http, portal.url, "Confirm")
    assert confirmed.status_code == 200
    assert receiver.types() == ["customer.subscription.updated"]
    assert event_object(receiver, 0)["items"].data[0].price.id == PRO


async def test_failed_deliveries_are_retried_and_events_can_be_resent(
        fake: StripeServer, receiver: WebhookReceiver) -> None:
    _, sub_id = await subscribe(fake, STARTER)
    receiver.requests.clear()
    receiver.fail_next(500, times=2)
    [event] = await fake.sandbox.cancel(sub_id, at_period_end=True)
    assert [d.status for d in fake.sandbox.deliveries if d.event_id == event["id"]] == [
        500, 500, 200]
    assert [e.id for e in receiver.events()] == [event["id"]] * 3  # each attempt signed

    # Built but not sent, then sent out of order, one with an older `created`, one twice.
    receiver.requests.clear()
    failed, updated = await fake.sandbox.fail_payment(sub_id, send=False)
    assert receiver.requests == []
    updated["created"] = failed["created"] - 60
    await fake.sandbox.send(updated)
    await fake.sandbox.send(failed)
    await fake.sandbox.redeliver(failed["id"])
    assert [e.id for e in receiver.events()] == [updated["id"], failed["id"], failed["id"]]
    assert receiver.events()[0].created == failed["created"] - 60
    body, headers = fake.sandbox.signed(failed)
    assert json.loads(body)["id"] == failed["id"]
    assert stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"],
                                          WEBHOOK_SECRET).id == failed["id"]
