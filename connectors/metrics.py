"""The gateway's Prometheus metrics (served by core/metrics.py on GATEWAY_METRICS_PORT).

What an operator asks of the public edge, each answered by one family:
- turns sent to Rasa and their latency, by channel (`switchboard_gateway_turns_total`,
  `switchboard_gateway_turn_seconds`); which flow a turn took (order status, returns,
  handoff, knowledge) is known where the action runs: actions/metrics.py counts it by route;
- webhook answers by provider and HTTP status, 200s (acknowledgements) and 429s alike
  (`switchboard_gateway_webhook_responses_total`), and messages over a rate limit, refused or
  deferred (`switchboard_gateway_rate_limited_total`);
- provider messages stored and not yet handled (`switchboard_gateway_queue_depth`: the same
  number in every gateway, read from the database, so take max, not sum) and leases taken over
  from a gateway that stopped renewing them (`switchboard_gateway_lease_takeovers_total`);
- provider messages by delivery status (`switchboard_gateway_deliveries_total`);
- Rasa's failures by kind (`switchboard_gateway_rasa_errors_total`);
- Stripe's webhook events by type and outcome (`switchboard_gateway_stripe_events_total`).

Labels come from small sets we define (core/metrics.py `bounded`): channel and provider names,
statuses, error kinds. Never a sender id, an address, a number or a text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram
from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from connectors.leases import ANSWER_WITHIN, PROVIDER_CHANNELS
from core.conversations import MessageRow
from core.db import utcnow
from core.metrics import CHANNELS, bounded

log = logging.getLogger(__name__)

# deliveries' statuses (core/deliveries.py): ours when sending, the providers' in callbacks.
DELIVERY_STATUSES = ("accepted", "queued", "sending", "sent", "delivered", "read",
                     "undelivered", "failed", "not_sent")
RASA_ERROR_KINDS = ("busy", "status", "timeout", "unreachable", "actions_down")
# Seconds: a REST turn takes ~0.1-0.5 s, a knowledge answer with the LLM a few, RASA_TIMEOUT 30.
TURN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
QUEUE_EVERY = 15.0  # seconds between two reads of the queue depth (Prometheus scrapes at 15 s)

TURNS = Counter("switchboard_gateway_turns", "Visitor messages sent to Rasa, by channel and "
                "outcome (answered or failed)", ["channel", "outcome"])
TURN_SECONDS = Histogram("switchboard_gateway_turn_seconds", "Seconds from asking Rasa for a "
                         "turn (waiting for a turn slot included) to its answer, by channel",
                         ["channel"], buckets=TURN_BUCKETS)
WEBHOOK_RESPONSES = Counter("switchboard_gateway_webhook_responses", "Answers to requests on "
                            "/channels/..., by provider (the channel registry's name) and HTTP "
                            "status", ["provider", "status"])
RATE_LIMITED = Counter("switchboard_gateway_rate_limited", "Messages over a rate limit, by "
                       "channel: refused (429, REST and the widget) or deferred (providers' "
                       "messages, answered later)", ["channel", "action"])
QUEUE_DEPTH = Gauge("switchboard_gateway_queue_depth", "Provider messages stored in the last "
                    "24 h and not yet handled (answered or given up); every gateway reports "
                    "the same count")
LEASE_TAKEOVERS = Counter("switchboard_gateway_lease_takeovers", "Conversations whose lease "
                          "ran out with its holder (a gateway that died) and that this gateway "
                          "took over")
DELIVERIES = Counter("switchboard_gateway_deliveries", "Provider messages by delivery status: "
                     "our sends (accepted, failed, not_sent) and providers' status callbacks",
                     ["channel", "status"])
RASA_ERRORS = Counter("switchboard_gateway_rasa_errors", "Turns Rasa did not answer, by kind: "
                      "busy (no turn slot in time), status (not 200), timeout, unreachable, "
                      "actions_down (Rasa answered nothing and the action server is down)",
                      ["kind"])

STRIPE_EVENTS = Counter("switchboard_gateway_stripe_events", "Stripe webhook events by type "
                        "(the handled ones, else other) and outcome: handled, duplicate (a "
                        "redelivery), unknown_shop, refused (400), failed (503, delivered "
                        "again), not_configured (503)", ["type", "outcome"])


def stripe_event(event_type: str, outcome: str) -> None:
    """`event_type` already bounded by the caller (billing/events.py HANDLERS, else other)."""
    STRIPE_EVENTS.labels(event_type, outcome).inc()


def channel_label(channel: object) -> str:
    return bounded(channel if isinstance(channel, str) else None, CHANNELS)


def turn_finished(channel: object, seconds: float, answered: bool) -> None:
    label = channel_label(channel)
    TURNS.labels(label, "answered" if answered else "failed").inc()
    TURN_SECONDS.labels(label).observe(seconds)


def rasa_error(kind: str) -> None:
    RASA_ERRORS.labels(bounded(kind, RASA_ERROR_KINDS)).inc()


def rate_limited(channel: str, action: str) -> None:
    RATE_LIMITED.labels(channel_label(channel), action).inc()


def delivery(channel: str, status: str, count: int = 1) -> None:
    if count:
        DELIVERIES.labels(channel_label(channel), bounded(status, DELIVERY_STATUSES)).inc(count)


def count_webhook_responses(app: Sanic, providers: Mapping[str, str]) -> None:
    """Count every answer under /channels/<shop>/<segment>/ by provider and status.
    `providers`: URL segment -> the channel registry's name."""

    @app.on_response
    async def count_webhook(request: Request, response: BaseHTTPResponse) -> None:
        parts = request.path.split("/", 4)  # "", "channels", shop, segment, rest
        if len(parts) >= 4 and parts[1] == "channels" and parts[3] in providers:
            WEBHOOK_RESPONSES.labels(providers[parts[3]], str(response.status)).inc()


async def unhandled_provider_messages(sessions: async_sessionmaker) -> int:
    """Provider messages waiting for an answer. Every stored provider message has a lease
    expiry until it is handled (connectors/leases.py), so the count reads that index."""
    now = utcnow()
    query = (select(func.count()).select_from(MessageRow)
             .where(MessageRow.lease_expires_at.is_not(None), MessageRow.handled_at.is_(None),
                    MessageRow.direction == "in", MessageRow.channel.in_(PROVIDER_CHANNELS),
                    MessageRow.created_at > now - ANSWER_WITHIN))
    async with sessions() as session:
        return int((await session.execute(query)).scalar_one())


async def track_queue_depth(sessions: async_sessionmaker, every: float = QUEUE_EVERY) -> None:
    """Keep QUEUE_DEPTH current until cancelled (the database's hiccups skip a reading)."""
    while True:
        try:
            QUEUE_DEPTH.set(await unhandled_provider_messages(sessions))
        except Exception as exc:  # noqa: BLE001 - a metric must not stop the gateway
            log.warning("queue depth not read", extra={"error": type(exc).__name__})
        await asyncio.sleep(every)
