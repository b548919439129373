"""The gateway's metrics (issue 12, point 10): a conversation shows up by channel, acks and 429s
by provider, rate-limited messages, deliveries, Rasa errors; label values hold no visitor's
address, number, sender id or text; /metrics is served on its own (loopback) port, never by
the public app.

The counters live in the process's default registry, shared by every test, so each test
compares a counter before and after what it does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from connectors import metrics
from connectors.channels import BY_NAME, rest
from connectors.errors import RateLimited, UpstreamUnavailable
from connectors.messages import InboundMessage
from core.metrics import serve_metrics
from tests.connectors.channels.harness import ChannelHarness, FakeInbox, shop
from tests.connectors.conftest import World
from tests.connectors.test_health import database, make_app  # noqa: F401 - a fixture
from tests.servers import free_port

# The demo shop's visitors (devtools/demo_shop.py) and a number as Twilio sends one.
EMAIL = "alex@example.com"
PHONE = "+15550001234"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def served() -> Iterator[str]:
    """The metrics endpoint of this process, as `python -m connectors` serves it."""
    server = serve_metrics("127.0.0.1", free_port(), "gateway")
    assert server is not None
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def rest_message(world: World, text: str, user: str = EMAIL, **tenant: Any) -> InboundMessage:
    return InboundMessage(tenant=dataclasses.replace(world.tenant, **tenant), provider="rest",
                          channel="rest", user_key=user, text=text)


@pytest.mark.asyncio
async def test_a_conversation_is_counted_by_channel_and_no_label_names_the_visitor(
        world: World, served: str) -> None:
    before = {
        "rest": value("switchboard_gateway_turns_total", channel="rest", outcome="answered"),
        "sms": value("switchboard_gateway_turns_total", channel="sms", outcome="answered"),
        "refused": value("switchboard_gateway_rate_limited_total", channel="rest",
                         action="refused"),
        "sent": value("switchboard_gateway_deliveries_total", channel="sms", status="accepted"),
        "failed": value("switchboard_gateway_turns_total", channel="rest", outcome="failed"),
        "status": value("switchboard_gateway_rasa_errors_total", kind="status"),
        "latency": value("switchboard_gateway_turn_seconds_count", channel="rest"),
    }
    # REST, the sender being the visitor's email; one conversation's bucket holds one message.
    assert await world.inbox.converse(rest_message(world, f"my email is {EMAIL}",
                                                   rate_per_conversation=1))
    with pytest.raises(RateLimited):
        await world.inbox.converse(rest_message(world, "again", rate_per_conversation=1))
    # Rasa failing a REST turn ("boom" is its 500), another visitor's.
    with pytest.raises(UpstreamUnavailable):
        await world.inbox.converse(rest_message(world, "boom", user="sam@example.com"))
    # SMS from a phone number, answered in the background and delivered.
    assert await world.inbox.accept(world.message(f"call me on {PHONE}", "m-1", user=PHONE))
    await world.settle()

    samples = scrape(served)
    got = {
        "rest": samples[("switchboard_gateway_turns_total",
                         (("channel", "rest"), ("outcome", "answered")))],
        "sms": samples[("switchboard_gateway_turns_total",
                        (("channel", "sms"), ("outcome", "answered")))],
        "refused": samples[("switchboard_gateway_rate_limited_total",
                            (("action", "refused"), ("channel", "rest")))],
        "sent": samples[("switchboard_gateway_deliveries_total",
                         (("channel", "sms"), ("status", "accepted")))],
        "failed": samples[("switchboard_gateway_turns_total",
                           (("channel", "rest"), ("outcome", "failed")))],
        "status": samples[("switchboard_gateway_rasa_errors_total", (("kind", "status"),))],
        "latency": samples[("switchboard_gateway_turn_seconds_count", (("channel", "rest"),))],
    }
    assert {k: got[k] - before[k] for k in got} == {
        "rest": 1, "sms": 1, "refused": 1, "sent": 1, "failed": 1, "status": 1, "latency": 2}
    assert "switchboard_gateway_queue_depth" in {name for name, _ in samples}

    label_values = {v for _, labels in samples for _, v in labels}
    sender_ids = {rest_message(world, "").sender_id, world.message("", "x", user=PHONE).sender_id}
    for personal in (EMAIL, "sam@example.com", PHONE, PHONE.lstrip("+"), *sender_ids,
                     "my email", "call me", "boom"):
        assert not [v for v in label_values if personal in v], f"{personal!r} in a label"


@pytest.mark.asyncio
async def test_webhook_acknowledgements_and_429s_are_counted_by_provider() -> None:
    calls = 0

    async def second_is_limited(inbound: InboundMessage) -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RateLimited("Too many messages.", retry_after=3)
        return [{"recipient_id": inbound.sender_id, "text": "hi"}]

    h = ChannelHarness(rest.CHANNEL, "rest", tenant=shop("metered", "t-metered-1"),
                       inbox=FakeInbox(replies=second_is_limited))
    metrics.count_webhook_responses(h.app, {c.segment: c.name for c in BY_NAME.values()})
    acks = value("switchboard_gateway_webhook_responses_total", provider="rest", status="200")
    limited = value("switchboard_gateway_webhook_responses_total", provider="rest", status="429")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {h.api_key()}"}
    body = b'{"sender": "alex@example.com", "message": "hi"}'
    assert (await h.post(h.url("webhook"), body, headers)).status == 200
    response = await h.post(h.url("webhook"), body, headers)
    assert response.status == 429 and response.headers["retry-after"] == "3"
    assert value("switchboard_gateway_webhook_responses_total",
                 provider="rest", status="200") == acks + 1
    assert value("switchboard_gateway_webhook_responses_total",
                 provider="rest", status="429") == limited + 1


def test_the_public_gateway_does_not_serve_metrics(tmp_path: Path, database: str) -> None:  # noqa: F811
    app, settings = make_app(tmp_path, database, f"http://127.0.0.1:{free_port()}")
    _, response = app.test_client.get("/metrics")
    assert response.status == 404 and "switchboard_" not in response.text
    assert settings.metrics_host == "127.0.0.1"  # loopback unless a deployment says otherwise
    assert settings.gateway_metrics_port != settings.gateway_port


def test_metrics_are_served_on_loopback_by_default_and_a_taken_port_is_no_crash(
        caplog: pytest.LogCaptureFixture) -> None:
    server = serve_metrics("127.0.0.1", free_port(), "gateway")
    assert server is not None
    try:
        assert server.server_address[0] == "127.0.0.1"
        with caplog.at_level(logging.ERROR, logger="core.metrics"):
            assert serve_metrics("127.0.0.1", server.server_port, "gateway") is None
        assert "metrics not served" in caplog.text
    finally:
        server.shutdown()
        server.server_close()
    assert serve_metrics("127.0.0.1", 0, "gateway") is None  # 0: none at all


def test_label_values_come_from_bounded_sets() -> None:
    assert metrics.channel_label("sms") == "sms"
    assert metrics.channel_label(f"{EMAIL}") == "other"
    assert metrics.channel_label(None) == "other"
    metrics.delivery("sms", "a provider's new status")  # counted as "other", not as itself
    assert value("switchboard_gateway_deliveries_total", channel="sms", status="other") >= 1
