"""The action server's Prometheus metrics (served by core/metrics.py on ACTIONS_METRICS_PORT).

Which flow a turn took is known here, where its action runs, and nowhere cheaper: the gateway
sees only Rasa's replies. Every action run is counted and timed by route (order_status,
returns, handoff, knowledge, other: `ROUTES`) and by the channel the visitor wrote on (from the
metadata the gateway gives each message), with its outcome: ok, rejected (a form's validation
refused the slot, which Rasa handles) or error. LLM calls, tokens and circuit breakers are
counted where they happen, in knowledge/metrics.py, and served from this process too.

`InstrumentedExecutor` is rasa-sdk's executor with that one measurement around `run`, so no
action needs to know about metrics. Labels hold action routes and channel names only: never a
sender id, a slot or a text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Histogram
from rasa_sdk.executor import ActionExecutor, ActionExecutorRunResult
from rasa_sdk.interfaces import ActionExecutionRejection

from core.metrics import CHANNELS, OTHER, bounded

# Action (or form validation) name -> the flow it belongs to; anything else is "other"
# (session start, greetings, cancel or a stop with nothing running, fallback, and the order
# number and email questions both forms ask, action_ask_order_number and action_ask_email).
ROUTES: Mapping[str, str] = {
    "validate_order_status_form": "order_status",
    "action_order_status": "order_status",
    "validate_return_form": "returns",
    "action_ask_return_items": "returns",
    "action_ask_return_reason": "returns",
    "action_submit_return": "returns",
    "action_handoff": "handoff",
    "action_handoff_declined": "handoff",
    "action_answer_from_knowledge": "knowledge",
}
# Seconds: a lookup in the demo store takes milliseconds, a shop's API or the LLM seconds.
ACTION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)

ACTION_RUNS = Counter("switchboard_actions_runs", "Custom actions run for Rasa, by route, "
                      "channel and outcome (ok, rejected, error)", ["route", "channel", "outcome"])
ACTION_SECONDS = Histogram("switchboard_actions_seconds", "Seconds one custom action took, by "
                           "route and channel", ["route", "channel"], buckets=ACTION_BUCKETS)


def route_of(action_name: str | None) -> str:
    return ROUTES.get(action_name or "", OTHER)


def channel_of(action_call: Mapping[str, Any]) -> str:
    tracker = action_call.get("tracker")
    latest = tracker.get("latest_message") if isinstance(tracker, Mapping) else None
    metadata = latest.get("metadata") if isinstance(latest, Mapping) else None
    channel = metadata.get("channel") if isinstance(metadata, Mapping) else None
    return bounded(channel if isinstance(channel, str) else None, CHANNELS)


class InstrumentedExecutor(ActionExecutor):
    """rasa-sdk's executor, each action run counted and timed (see the module's docstring)."""

    async def run(self, action_call: dict[str, Any], *args: Any,
                  **kwargs: Any) -> ActionExecutorRunResult | None:
        route, channel = route_of(action_call.get("next_action")), channel_of(action_call)
        started, outcome = time.perf_counter(), "error"
        try:
            result = await super().run(action_call, *args, **kwargs)
            outcome = "ok"
            return result
        except ActionExecutionRejection:
            outcome = "rejected"
            raise
        finally:
            ACTION_RUNS.labels(route, channel, outcome).inc()
            ACTION_SECONDS.labels(route, channel).observe(time.perf_counter() - started)
