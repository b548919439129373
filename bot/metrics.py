"""Rasa's Prometheus metrics (served by core/metrics.py on BOT_METRICS_PORT; runs in .venv-bot).

What the gateway cannot see from outside Rasa:
- requests to Rasa's HTTP API and its REST channel by endpoint, method and status, and their
  latency by endpoint (`switchboard_bot_requests_total`, `switchboard_bot_request_seconds`);
- how long understanding one message takes (`switchboard_bot_parse_seconds`): Rasa's
  `MessageProcessor.parse_message`, for every turn and every /model/parse;
- how long a turn of the gateway's channel waited for a slot before Rasa ran it
  (`switchboard_bot_turn_wait_seconds`, bot/turn_gate.py): turns queueing here, with the
  process's CPU at its limit, say Rasa is the bottleneck (more workers or replicas).

The endpoint label is the route's pattern (`/conversations/{conversation_id}/tracker`), never
the path asked for, so a sender id never becomes a label value; patterns outside `ENDPOINTS`
(and paths no route matches) are "other" (core/metrics.py `bounded`).

Rasa runs SANIC_WORKERS processes, forked from the launcher after `instrument_rasa` and the
metrics server have started. bot/serve.py therefore uses the client library's multiprocess
mode: PROMETHEUS_MULTIPROC_DIR (a fresh directory per start) is set before this module is
imported, each worker writes its values there, and the launcher's endpoint adds them up
(`multiprocess_registry`). Only counters and histograms live here, which that mode sums
correctly, a dead worker's counts included.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse

from core.metrics import bounded

# Route patterns of Rasa 3.6's server (rasa/server.py) and of the channels we enable.
ENDPOINTS = (
    "/", "/version", "/status", "/domain", "/model", "/model/parse", "/model/predict",
    "/model/train", "/model/test/stories", "/model/test/intents",
    "/webhooks/rest", "/webhooks/rest/webhook",
    "/webhooks/switchboard", "/webhooks/switchboard/webhook",  # bot/channel.py, the gateway's
    "/webhooks/switchboard/models", "/webhooks/switchboard/events",  # the admin service's
    "/conversations/{conversation_id}/tracker", "/conversations/{conversation_id}/tracker/events",
    "/conversations/{conversation_id}/story", "/conversations/{conversation_id}/execute",
    "/conversations/{conversation_id}/trigger_intent",
    "/conversations/{conversation_id}/predict", "/conversations/{conversation_id}/messages",
)
METHODS = ("GET", "POST", "PUT", "DELETE")
# Seconds: a turn takes ~0.1-0.5 s (actions included), a knowledge answer with the LLM a few.
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
PARSE_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

REQUESTS = Counter("switchboard_bot_requests", "Requests to Rasa's HTTP API and REST channel, by "
                   "endpoint (route pattern), method and HTTP status",
                   ["endpoint", "method", "status"])
REQUEST_SECONDS = Histogram("switchboard_bot_request_seconds", "Seconds Rasa took to answer one "
                            "request, by endpoint", ["endpoint"], buckets=REQUEST_BUCKETS)
TURN_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
TURN_WAIT_SECONDS = Histogram("switchboard_bot_turn_wait_seconds", "Seconds a turn of the "
                              "switchboard channel waited for a slot (BOT_TURN_SLOTS) before Rasa "
                              "ran it", buckets=TURN_WAIT_BUCKETS)
PARSE_SECONDS = Histogram("switchboard_bot_parse_seconds", "Seconds of one NLU parse (a turn's "
                          "message or /model/parse)", buckets=PARSE_BUCKETS)

_STARTED = "switchboard_metrics_started"
_instrumented: list[bool] = []  # instrument_rasa patches once


def endpoint_of(route_path: str | None) -> str:
    """A route's pattern as a label: `conversations/<conversation_id:path>/tracker` ->
    `/conversations/{conversation_id}/tracker`; unknown or no route: "other"."""
    if route_path is None:
        return bounded(None, ENDPOINTS)
    pattern = re.sub(r"<(\w+)(?::[^>]*)?>", r"{\1}", route_path.strip("/"))
    return bounded(f"/{pattern}".rstrip("/") or "/", ENDPOINTS)


async def _request_started(request: Request) -> None:
    setattr(request.ctx, _STARTED, time.perf_counter())


async def _request_answered(request: Request, response: BaseHTTPResponse) -> None:
    route = getattr(request, "route", None)
    endpoint = endpoint_of(getattr(route, "path", None))
    REQUESTS.labels(endpoint, bounded(request.method, METHODS),
                    str(int(response.status))).inc()  # Rasa answers some with an HTTPStatus
    started = getattr(request.ctx, _STARTED, None)
    if started is not None:
        REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - started)


def instrument_app(app: Sanic) -> Sanic:
    """Count and time every request `app` answers (Sanic middleware, errors included)."""
    app.register_middleware(_request_started, "request")
    app.register_middleware(_request_answered, "response")
    return app


def instrument_rasa() -> None:
    """Patch Rasa (before its CLI runs) so the app it builds and its NLU parse are measured."""
    import rasa.core.run
    from rasa.core.processor import MessageProcessor

    if _instrumented:
        return
    _instrumented.append(True)
    configure = rasa.core.run.configure_app

    @functools.wraps(configure)
    def configure_app(*args: Any, **kwargs: Any) -> Sanic:
        return instrument_app(configure(*args, **kwargs))

    parse = MessageProcessor.parse_message

    @functools.wraps(parse)
    async def parse_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await parse(self, *args, **kwargs)
        finally:
            PARSE_SECONDS.observe(time.perf_counter() - started)

    rasa.core.run.configure_app = configure_app
    MessageProcessor.parse_message = parse_message


def multiprocess_registry() -> CollectorRegistry:
    """Every worker's values, read from PROMETHEUS_MULTIPROC_DIR at each scrape."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry
