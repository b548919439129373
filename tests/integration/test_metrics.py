"""Metrics through the real stack (issue 12, point 10): after a demo visitor's conversation the
gateway's metrics port shows the turns by channel, the action server's the order-status route
and Rasa's its REST webhook requests and NLU parses; a REST flood's 429s are counted; no label
value holds the visitor's email, sender id or text; the public port answers /metrics 404."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Visitor
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def counter(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
            **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_conversation_and_a_flood_are_counted_without_the_visitors_data(stack: Stack) -> None:
    before, bot_before = samples(stack.metrics("gateway")), samples(stack.metrics("bot"))
    visitor = Visitor(stack)
    visitor.say("where is my order #1001? my email is alex@example.com")
    # One conversation's bucket holds 20 messages a minute (the demo shop's default): a flood
    # from the same sender meets 429s.
    statuses = [httpx.post(f"{stack.gateway}/channels/demo/rest/webhook",
                           json={"sender": visitor.sender, "message": "hi"},
                           headers=stack.rest_headers(), timeout=30).status_code
                for _ in range(25)]
    assert 429 in statuses

    gateway, actions = samples(stack.metrics("gateway")), samples(stack.metrics("actions"))
    bot = samples(stack.metrics("bot"))
    turns = "switchboard_gateway_turns_total"
    assert (counter(gateway, turns, channel="rest", outcome="answered")
            - counter(before, turns, channel="rest", outcome="answered")) >= 2
    webhooks = "switchboard_gateway_webhook_responses_total"
    assert (counter(gateway, webhooks, provider="rest", status="429")
            - counter(before, webhooks, provider="rest", status="429")) == statuses.count(429)
    assert counter(gateway, "switchboard_gateway_rate_limited_total", channel="rest",
                   action="refused") >= statuses.count(429)
    assert counter(actions, "switchboard_actions_runs_total", route="order_status",
                   channel="rest", outcome="ok") >= 1

    requests = "switchboard_bot_requests_total"
    # The gateway's turns arrive on bot/channel.py's channel.
    webhook = {"endpoint": "/webhooks/switchboard/webhook", "method": "POST", "status": "200"}
    assert (counter(bot, requests, **webhook) - counter(bot_before, requests, **webhook)) >= 2
    parses = "switchboard_bot_parse_seconds_count"
    assert counter(bot, parses) - counter(bot_before, parses) >= 2

    labels = {v for found in (gateway, actions, bot) for _, pairs in found for _, v in pairs}
    for personal in ("alex@example.com", visitor.sender, "#1001", "where is my order"):
        assert not [v for v in labels if personal in v], f"{personal!r} in a label"

    public = httpx.get(f"{stack.gateway}/metrics", timeout=5)
    assert public.status_code == 404 and "switchboard_" not in public.text
