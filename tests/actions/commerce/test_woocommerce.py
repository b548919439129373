"""WooCommerceBackend against a real local HTTP server serving documented WooCommerce payloads."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from actions.commerce.base import (
    BackendError,
    BackendNotConfigured,
    Order,
    OrderBackend,
    OrderState,
)
from actions.commerce.woocommerce import WooCommerceBackend
from core.destinations import Destinations
from tests.fakes.woocommerce_server import WooCommerceFake

# The fakes listen on loopback, which production refuses as a shop's URL (core/destinations.py).
LOCAL = Destinations(allow_private=True)
KEY = "ck_5f1c0a9e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f"
SECRET = "cs_9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"


@pytest.fixture
def store() -> Iterator[WooCommerceFake]:
    with WooCommerceFake(consumer_key=KEY, consumer_secret=SECRET) as server:
        yield server


@pytest_asyncio.fixture
async def backend(store: WooCommerceFake) -> AsyncIterator[WooCommerceBackend]:
    b = WooCommerceBackend(store.base_url, KEY, SECRET, timeout=2.0, destinations=LOCAL)
    yield b
    await b.aclose()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --------------------------------------------------------------------------- finding orders


@pytest.mark.asyncio
async def test_finds_completed_order_with_ups_tracking(
    store: WooCommerceFake, backend: WooCommerceBackend
) -> None:
    order = await backend.find_order("1001", " ALEX.RIVERA@example.com")

    assert order is not None
    assert order.number == "1001" and order.backend_id == "1001"
    assert order.state is OrderState.SHIPPED  # "completed" = fulfilled; Woo knows no delivery
    assert order.placed_at == utc("2024-11-04T15:15:02")  # from date_created_gmt
    assert order.shipment is not None
    assert order.shipment.carrier == "UPS"
    assert order.shipment.tracking_number == "1Z999AA10123456784"
    assert order.shipment.tracking_url == (
        "https://www.ups.com/track?loc=en_US&tracknum=1Z999AA10123456784"
    )
    assert order.shipped_at == utc("2024-11-05T00:00:00")  # the extension's date_shipped
    assert order.delivered_at is None
    assert [(i.id, i.name, i.quantity, i.sku) for i in order.items] == [
        ("301", "Trail Running Shoes - 42, Blue", 1, "TRS-42-BLU"),
        ("302", "Merino Running Socks - M", 2, "MRS-M-3PK"),
    ]
    (request,) = store.requests
    assert (request.method, request.path) == ("GET", "/wp-json/wc/v3/orders/1001")
    assert request.headers["authorization"] == "Basic " + b64(f"{KEY}:{SECRET}")


@pytest.mark.asyncio
async def test_wrong_email_is_indistinguishable_from_missing_order(
    store: WooCommerceFake, backend: WooCommerceBackend
) -> None:
    assert await backend.find_order("1001", "mallory@example.com") is None
    wrong_email = [(r.path, r.query) for r in store.requests]
    store.requests.clear()
    assert await backend.find_order("9999", "mallory@example.com") is None
    missing = [(r.path, r.query) for r in store.requests]

    # Same requests apart from the number itself: nothing gives the guess away.
    assert [p for p, _ in wrong_email] == ["/wp-json/wc/v3/orders/1001", "/wp-json/wc/v3/orders"]
    assert [p for p, _ in missing] == ["/wp-json/wc/v3/orders/9999", "/wp-json/wc/v3/orders"]
    search = {"search": ["mallory@example.com"], "per_page": ["100"]}
    assert wrong_email[1][1] == missing[1][1] == search


@pytest.mark.asyncio
async def test_number_that_is_not_an_id_is_found_among_the_customers_orders(
    store: WooCommerceFake, backend: WooCommerceBackend
) -> None:
    order = await backend.find_order("1006", "alex.rivera@example.com")

    assert order is not None
    assert order.number == "1006" and order.backend_id == "4821"
    paths = [r.path for r in store.requests]
    assert paths == ["/wp-json/wc/v3/orders/1006", "/wp-json/wc/v3/orders"]
    assert store.requests[1].param("search") == "alex.rivera@example.com"


@pytest.mark.asyncio
async def test_order_whose_id_collides_with_another_number_is_not_confused(
    backend: WooCommerceBackend
) -> None:
    # Order id 1007 exists, but its number is 2041; the order numbered 1007 has id 4830.
    order = await backend.find_order("1007", "alex.rivera@example.com")
    assert order is not None and order.backend_id == "4830"

    imported = await backend.find_order("2041", "morgan.blake@example.com")
    assert imported is not None and imported.backend_id == "1007" and imported.number == "2041"

    # The order that merely has id 1007 must not leak to whoever owns number 1007.
    assert await backend.find_order("1007", "morgan.blake@example.com") is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("number", "email", "state"),
    [
        ("1002", "sam.lee@example.com", OrderState.DELIVERED),  # tracking plugin's "delivered"
        ("1003", "jordan.patel@example.com", OrderState.CANCELLED),
        ("1004", "casey.morgan@example.com", OrderState.PENDING),  # processing: paid, not shipped
        ("1005", "robin.fischer@example.com", OrderState.RETURNED),  # refunded after completion
    ],
)
async def test_status_mapping(
    backend: WooCommerceBackend, number: str, email: str, state: OrderState
) -> None:
    order = await backend.find_order(number, email)
    assert order is not None and order.state is state


@pytest.mark.asyncio
async def test_dates_and_custom_carrier(backend: WooCommerceBackend) -> None:
    delivered = await backend.find_order("1002", "sam.lee@example.com")
    assert delivered is not None
    assert delivered.delivered_at == utc("2024-10-17T18:05:12")  # status change = last modification
    assert delivered.extra["delivered_at_source"] == "date_modified_gmt"
    assert delivered.shipment is not None and delivered.shipment.carrier == "USPS"

    cancelled = await backend.find_order("1003", "jordan.patel@example.com")
    assert cancelled is not None and cancelled.cancelled_at == utc("2024-11-07T13:12:40")
    assert cancelled.shipment is None

    returned = await backend.find_order("1005", "robin.fischer@example.com")
    assert returned is not None and returned.shipment is not None
    assert returned.shipment.carrier == "Boston Bike Couriers"
    assert returned.shipment.tracking_url == "https://track.bostonbikecouriers.example/BBC-48213"

    pending = await backend.find_order("1004", "casey.morgan@example.com")
    assert pending is not None and pending.shipment is None and pending.shipped_at is None


@pytest.mark.asyncio
async def test_is_an_order_backend(backend: WooCommerceBackend) -> None:
    assert isinstance(backend, OrderBackend)
    assert backend.kind == "woocommerce"


# --------------------------------------------------------------------------- returns


async def _delivered(backend: WooCommerceBackend) -> Order:
    order = await backend.find_order("1002", "sam.lee@example.com")
    assert order is not None
    return order


@pytest.mark.asyncio
async def test_create_return_leaves_a_private_note_for_staff(
    store: WooCommerceFake, backend: WooCommerceBackend
) -> None:
    order = await _delivered(backend)

    result = await backend.create_return(
        order, [order.items[0]], "Too small <b>sorry</b>", idempotency_key="demo:1002:311"
    )

    assert result is None  # no native returns: the caller records a request for staff
    (post,) = store.requests_to("/orders/1002/notes", method="POST")
    body = post.json()
    assert body["customer_note"] is False  # private: the customer is not emailed
    assert "1 x Trail Running Shoes - 42, Blue (line item 311, SKU TRS-42-BLU)" in body["note"]
    assert "Reason: Too small &lt;b&gt;sorry&lt;/b&gt;" in body["note"]
    assert "[switchboard-ref:" in body["note"]
    assert store.notes[1002][0]["note"] == body["note"]


@pytest.mark.asyncio
async def test_same_idempotency_key_adds_only_one_note(
    store: WooCommerceFake, backend: WooCommerceBackend
) -> None:
    order = await _delivered(backend)

    await backend.create_return(order, order.items, "changed my mind", idempotency_key="k-1")
    await backend.create_return(order, order.items, "changed my mind", idempotency_key="k-1")
    await backend.create_return(order, order.items, "changed my mind", idempotency_key="k-2")

    assert len(store.requests_to("/orders/1002/notes", method="POST")) == 2


@pytest.mark.asyncio
async def test_lost_note_response_is_retried_without_a_duplicate(
    store: WooCommerceFake, backend: WooCommerceBackend
) -> None:
    order = await _delivered(backend)
    store.lose_next_response(502, match=lambda r: r.method == "POST")

    assert await backend.create_return(order, order.items, "wrong item", "k-3") is None

    ours = [n for n in store.notes[1002] if "switchboard-ref:" in n["note"]]
    assert len(ours) == 1


# --------------------------------------------------------------------------- failures


@pytest.mark.asyncio
async def test_retries_once_after_a_500(
    store: WooCommerceFake, backend: WooCommerceBackend
) -> None:
    store.fail_next(500)

    order = await backend.find_order("1001", "alex.rivera@example.com")

    assert order is not None
    assert len(store.requests_to("/orders/1001")) == 2


@pytest.mark.asyncio
async def test_bad_keys_are_not_configured_and_not_retried(store: WooCommerceFake) -> None:
    backend = WooCommerceBackend(store.base_url, KEY, "cs_wrong", timeout=2.0,
                                 destinations=LOCAL)
    try:
        with pytest.raises(BackendNotConfigured):
            await backend.find_order("1001", "alex.rivera@example.com")
    finally:
        await backend.aclose()
    assert len(store.requests) == 1


@pytest.mark.asyncio
async def test_timeout_is_a_backend_error_within_bounded_time(store: WooCommerceFake) -> None:
    store.hang_next(seconds=5, times=3)
    backend = WooCommerceBackend(store.base_url, KEY, SECRET, timeout=0.3,
                                 destinations=LOCAL)
    started = time.monotonic()
    try:
        with pytest.raises(BackendError):
            await backend.find_order("1001", "alex.rivera@example.com")
    finally:
        await backend.aclose()
    assert time.monotonic() - started < 3.5
    assert len(store.requests) == 3


@pytest.mark.asyncio
async def test_keys_never_appear_in_logs_or_errors(
    store: WooCommerceFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = WooCommerceBackend(store.base_url, KEY, SECRET, timeout=0.3,
                                 destinations=LOCAL)
    try:
        store.fail_next(429, headers={"Retry-After": "0"})
        store.hang_next(seconds=2, match=lambda r: r.method == "POST")
        order = await backend.find_order("1002", "sam.lee@example.com")
        assert order is not None
        await backend.create_return(order, order.items, "too big", idempotency_key="k-4")
        store.consumer_secret = "rotated"
        with pytest.raises(BackendNotConfigured) as refused:
            await backend.find_order("1001", "alex.rivera@example.com")
    finally:
        await backend.aclose()

    assert caplog.records, "expected retry/diagnostic log lines to check"
    basic = b64(f"{KEY}:{SECRET}")
    for secret in (KEY, SECRET, basic):
        assert secret not in caplog.text
        assert secret not in str(refused.value) and secret not in repr(backend)


@pytest.mark.asyncio
async def test_aclose_only_closes_its_own_client(store: WooCommerceFake) -> None:
    async with httpx.AsyncClient() as shared:
        borrowed = WooCommerceBackend(store.base_url, KEY, SECRET, client=shared)
        await borrowed.aclose()
        assert not shared.is_closed
        assert await borrowed.find_order("1001", "alex.rivera@example.com") is not None

    owned = WooCommerceBackend(store.base_url, KEY, SECRET, destinations=LOCAL)
    await owned.aclose()
    assert owned._client.is_closed


def test_missing_credentials_are_rejected_up_front() -> None:
    with pytest.raises(BackendNotConfigured):
        WooCommerceBackend("https://shop.example.com", KEY, "")
