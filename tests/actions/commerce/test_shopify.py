"""ShopifyBackend against a real local HTTP server serving documented Shopify payloads."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import httpx
import pytest
import pytest_asyncio

from actions.commerce.base import (
    BackendError,
    BackendNotConfigured,
    Order,
    OrderBackend,
    OrderState,
    PlatformReturn,
)
from actions.commerce.shopify import ShopifyBackend
from core.destinations import Destinations
from tests.fakes import load_fixture
from tests.fakes.shopify_server import ShopifyFake, is_graphql

# The fakes listen on loopback, which production refuses as a shop's URL (core/destinations.py).
LOCAL = Destinations(allow_private=True)
TOKEN = "shpat_0123456789abcdefSECRET"


@pytest.fixture
def shop() -> Iterator[ShopifyFake]:
    with ShopifyFake(token=TOKEN) as server:
        yield server


@pytest_asyncio.fixture
async def backend(shop: ShopifyFake) -> AsyncIterator[ShopifyBackend]:
    b = ShopifyBackend(shop.base_url, TOKEN, timeout=2.0, destinations=LOCAL)
    yield b
    await b.aclose()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def operations(shop: ShopifyFake) -> list[str]:
    """GraphQL operation names the backend sent, in order."""
    return [r.json()["operationName"] for r in shop.requests_to("/graphql.json")]


# --------------------------------------------------------------------------- finding orders


@pytest.mark.asyncio
async def test_finds_shipped_order_with_ups_tracking(
    shop: ShopifyFake, backend: ShopifyBackend
) -> None:
    order = await backend.find_order("1001", "Alex.Rivera@Example.com")

    assert order is not None
    assert order.number == "1001"
    assert order.backend_id == "5601234561001"
    assert order.email == "alex.rivera@example.com"
    assert order.state is OrderState.SHIPPED
    assert order.placed_at == at("2024-11-04T10:15:02-05:00")
    assert order.shipment is not None
    assert order.shipment.carrier == "UPS"
    assert order.shipment.tracking_number == "1Z999AA10123456784"
    assert order.shipment.tracking_url == (
        "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z999AA10123456784"
    )
    assert order.shipped_at == at("2024-11-05T09:30:44-05:00")
    assert order.delivered_at is None and order.cancelled_at is None
    assert [(i.id, i.name, i.quantity, i.sku) for i in order.items] == [
        ("13712345600101", "Trail Running Shoes - 42 / Blue", 1, "TRS-42-BLU"),
        ("13712345600102", "Merino Running Socks - M / 3-pack", 2, "MRS-M-3PK"),
    ]
    (request,) = shop.requests
    assert request.path == "/admin/api/2024-10/orders.json"
    assert request.param("name") == "#1001"
    # #1001 is archived (closed); without status=any Shopify would not list it at all.
    assert request.param("status") == "any"
    assert request.headers["x-shopify-access-token"] == TOKEN


@pytest.mark.asyncio
async def test_wrong_email_is_indistinguishable_from_missing_order(
    shop: ShopifyFake, backend: ShopifyBackend
) -> None:
    wrong_email = await backend.find_order("1001", "mallory@example.com")
    missing = await backend.find_order("9999", "alex.rivera@example.com")

    assert wrong_email is None and missing is None
    # Same amount of work either way: no follow-up calls that would give the guess away.
    assert len(shop.requests) == 2


@pytest.mark.asyncio
async def test_delivered_order_takes_delivery_date_from_fulfillment_event(
    shop: ShopifyFake, backend: ShopifyBackend
) -> None:
    order = await backend.find_order("1002", "sam.lee@example.com")

    assert order is not None
    assert order.state is OrderState.DELIVERED
    assert order.delivered_at == at("2024-10-17T13:58:41-04:00")  # the "delivered" event
    assert order.shipment is not None and order.shipment.carrier == "USPS"
    assert order.extra["delivered_at_source"] == "fulfillment_event"
    assert shop.requests_to("/orders/5601234561002/fulfillments/5012345600201/events.json")


@pytest.mark.asyncio
async def test_delivered_without_event_falls_back_to_fulfillment_update(
    backend: ShopifyBackend
) -> None:
    order = await backend.find_order("1006", "taylor.nguyen@example.com")

    assert order is not None
    assert order.state is OrderState.DELIVERED
    assert order.delivered_at == at("2024-11-01T15:47:21-04:00")
    assert order.extra["delivered_at_source"] == "fulfillment_updated_at"
    assert order.shipment is not None and order.shipment.carrier == "DHL Express"


@pytest.mark.asyncio
async def test_cancelled_order(backend: ShopifyBackend) -> None:
    order = await backend.find_order("1003", "jordan.patel@example.com")

    assert order is not None
    assert order.state is OrderState.CANCELLED
    assert order.cancelled_at == at("2024-11-07T08:12:40-05:00")
    assert order.shipment is None


@pytest.mark.asyncio
async def test_paid_but_unfulfilled_order_is_pending(backend: ShopifyBackend) -> None:
    order = await backend.find_order("1004", "casey.morgan@example.com")

    assert order is not None
    assert order.state is OrderState.PENDING
    assert order.shipment is None and order.shipped_at is None
    assert [i.name for i in order.items] == ["Insulated Water Bottle - 750 ml", "Running Cap"]


@pytest.mark.asyncio
async def test_fully_refunded_order_after_delivery_is_returned(backend: ShopifyBackend) -> None:
    order = await backend.find_order("1005", "robin.fischer@example.com")

    assert order is not None
    assert order.state is OrderState.RETURNED
    assert order.extra["financial_status"] == "refunded"


@pytest.mark.asyncio
async def test_is_an_order_backend(backend: ShopifyBackend) -> None:
    assert isinstance(backend, OrderBackend)
    assert backend.kind == "shopify"


# --------------------------------------------------------------------------- returns


async def _delivered(backend: ShopifyBackend) -> Order:
    order = await backend.find_order("1002", "sam.lee@example.com")
    assert order is not None
    return order


@pytest.mark.asyncio
async def test_create_return_requests_a_return_for_staff_approval(
    shop: ShopifyFake, backend: ShopifyBackend
) -> None:
    order = await _delivered(backend)
    shoes = order.items[0]

    result = await backend.create_return(order, [shoes], "Too small", idempotency_key="demo:1002:a")

    assert result == PlatformReturn("gid://shopify/Return/945000954", status="REQUESTED")
    context, mutation = (r.json() for r in shop.requests_to("/graphql.json"))
    assert context["operationName"] == "ReturnContext"
    assert context["variables"] == {"orderId": "gid://shopify/Order/5601234561002"}
    assert mutation["operationName"] == "ReturnRequest"
    assert "returnRequest(input: $input)" in mutation["query"]
    sent = mutation["variables"]["input"]
    assert sent["orderId"] == "gid://shopify/Order/5601234561002"
    (line,) = sent["returnLineItems"]
    assert line["fulfillmentLineItemId"] == "gid://shopify/FulfillmentLineItem/9812345600201"
    assert line["quantity"] == 1
    assert line["returnReason"] == "SIZE_TOO_SMALL"
    assert line["customerNote"].startswith("Too small (switchboard-ref:")
    assert len(line["customerNote"]) <= 300


@pytest.mark.asyncio
async def test_same_idempotency_key_never_creates_two_returns(
    shop: ShopifyFake, backend: ShopifyBackend
) -> None:
    order = await _delivered(backend)

    first = await backend.create_return(order, order.items, "changed my mind", "k-1")
    second = await backend.create_return(order, order.items, "changed my mind", "k-1")

    assert first == second
    assert len(shop.returns[5601234561002]) == 1
    assert operations(shop).count("ReturnRequest") == 1


@pytest.mark.asyncio
async def test_lost_mutation_response_is_retried_without_a_duplicate(
    shop: ShopifyFake, backend: ShopifyBackend
) -> None:
    order = await _delivered(backend)
    shop.lose_next_response(502, match=is_graphql("ReturnRequest"))  # created, but reply lost

    result = await backend.create_return(order, [order.items[1]], "wrong colour", "k-2")

    assert result is not None and result.platform_id == "gid://shopify/Return/945000954"
    assert len(shop.returns[5601234561002]) == 1
    assert shop.returns[5601234561002][0]["lines"][0]["returnReason"] == "COLOR"


@pytest.mark.asyncio
async def test_user_errors_become_backend_error(shop: ShopifyFake, backend: ShopifyBackend) -> None:
    order = await _delivered(backend)
    # E.g. someone returned the item in the admin between our check and our request.
    shop.queue_graphql_response(
        load_fixture("shopify", "graphql_return_request_user_errors.json"),
        operation="ReturnRequest",
    )

    with pytest.raises(BackendError, match="Quantity exceeds the returnable quantity"):
        await backend.create_return(order, [order.items[0]], "defective", idempotency_key="k-3")
    # Refusals are final: no retry loop hammering the mutation.
    assert operations(shop) == ["ReturnContext", "ReturnRequest"]


@pytest.mark.asyncio
async def test_items_shopify_cannot_return_are_left_to_staff(
    shop: ShopifyFake, backend: ShopifyBackend
) -> None:
    order = await backend.find_order("1004", "casey.morgan@example.com")  # not fulfilled yet
    assert order is not None

    assert await backend.create_return(order, order.items, "unwanted", "k-4") is None
    assert operations(shop) == ["ReturnContext"]  # nothing was requested on Shopify


@pytest.mark.asyncio
async def test_throttled_graphql_is_retried(shop: ShopifyFake, backend: ShopifyBackend) -> None:
    order = await _delivered(backend)
    shop.queue_graphql_response(load_fixture("shopify", "graphql_throttled.json"))

    result = await backend.create_return(order, [order.items[0]], "style", idempotency_key="k-5")

    assert result is not None and result.status == "REQUESTED"


@pytest.mark.asyncio
async def test_missing_returns_scope_is_a_configuration_problem(
    shop: ShopifyFake, backend: ShopifyBackend
) -> None:
    order = await _delivered(backend)
    shop.queue_graphql_response(load_fixture("shopify", "graphql_access_denied.json"))

    with pytest.raises(BackendNotConfigured):
        await backend.create_return(order, [order.items[0]], "style", idempotency_key="k-6")


# --------------------------------------------------------------------------- failures


@pytest.mark.asyncio
async def test_retries_once_after_a_500(shop: ShopifyFake, backend: ShopifyBackend) -> None:
    shop.fail_next(500)

    order = await backend.find_order("1001", "alex.rivera@example.com")

    assert order is not None and order.state is OrderState.SHIPPED
    assert len(shop.requests_to("/orders.json")) == 2


@pytest.mark.asyncio
async def test_honours_retry_after_on_429(shop: ShopifyFake, backend: ShopifyBackend) -> None:
    shop.fail_next(429, headers={"Retry-After": "0.1"})

    started = time.monotonic()
    order = await backend.find_order("1001", "alex.rivera@example.com")

    assert order is not None
    assert time.monotonic() - started < 1.5
    assert len(shop.requests_to("/orders.json")) == 2


@pytest.mark.asyncio
async def test_gives_up_after_three_attempts(shop: ShopifyFake, backend: ShopifyBackend) -> None:
    shop.fail_next(503, times=5)

    with pytest.raises(BackendError):
        await backend.find_order("1001", "alex.rivera@example.com")
    assert len(shop.requests) == 3


@pytest.mark.asyncio
async def test_bad_token_is_not_configured_and_not_retried(shop: ShopifyFake) -> None:
    backend = ShopifyBackend(shop.base_url, "shpat_wrong", timeout=2.0, destinations=LOCAL)
    try:
        with pytest.raises(BackendNotConfigured):
            await backend.find_order("1001", "alex.rivera@example.com")
    finally:
        await backend.aclose()
    assert len(shop.requests) == 1


@pytest.mark.asyncio
async def test_timeout_is_a_backend_error_within_bounded_time(shop: ShopifyFake) -> None:
    shop.hang_next(seconds=5, times=3)
    backend = ShopifyBackend(shop.base_url, TOKEN, timeout=0.3, destinations=LOCAL)
    started = time.monotonic()
    try:
        with pytest.raises(BackendError):
            await backend.find_order("1001", "alex.rivera@example.com")
    finally:
        await backend.aclose()
    # 3 attempts x 0.3 s + 0.25 s + 0.5 s backoff, with room for a slow CI box.
    assert time.monotonic() - started < 3.5
    assert len(shop.requests) == 3


@pytest.mark.asyncio
async def test_token_never_appears_in_logs_or_errors(
    shop: ShopifyFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = ShopifyBackend(shop.base_url, TOKEN, timeout=0.3, destinations=LOCAL)
    try:
        shop.fail_next(500)
        shop.hang_next(seconds=2, match=lambda r: "events.json" in r.path)
        order = await backend.find_order("1002", "sam.lee@example.com")
        assert order is not None
        await backend.create_return(order, [order.items[0]], "too small", idempotency_key="k-7")
        shop.token = "rotated"
        with pytest.raises(BackendNotConfigured) as refused:
            await backend.find_order("1001", "alex.rivera@example.com")
    finally:
        await backend.aclose()

    assert caplog.records, "expected retry/diagnostic log lines to check"
    assert TOKEN not in caplog.text
    assert TOKEN not in str(refused.value) and TOKEN not in repr(backend)


@pytest.mark.asyncio
async def test_aclose_only_closes_its_own_client(shop: ShopifyFake) -> None:
    async with httpx.AsyncClient() as shared:
        borrowed = ShopifyBackend(shop.base_url, TOKEN, client=shared)
        await borrowed.aclose()
        assert not shared.is_closed
        assert await borrowed.find_order("1001", "alex.rivera@example.com") is not None

    owned = ShopifyBackend(shop.base_url, TOKEN, destinations=LOCAL)
    await owned.aclose()
    assert owned._client.is_closed


def test_missing_credentials_are_rejected_up_front() -> None:
    with pytest.raises(BackendNotConfigured):
        ShopifyBackend("https://example.myshopify.com", "  ")
