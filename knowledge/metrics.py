"""Prometheus metrics of knowledge answers' LLM calls (served by the action server, the process
that answers: actions/metrics.py, core/metrics.py).

- `switchboard_llm_errors_total{kind}`: questions the LLM did not answer, so the answer was
  extractive: no call made (`over_budget`, `circuit_open`), the call failed (`timeout`,
  `connection`, `rate_limited` 429, `overloaded` 529, `server` 5xx, `model` the shop's model
  refused, `refused` another 4xx), or its answer was dropped (`ungrounded`);
- `switchboard_llm_tokens_total{shop, direction}`: tokens spent, input and output, by shop id
  (what the monthly budget counts, knowledge/budget.py);
- `switchboard_llm_breakers{state}`: circuit breakers (one per shop and model,
  knowledge/breaker.py) by state, and `switchboard_llm_breakers_not_closed{shop}`: a shop's
  breakers that are open or half-open. Model names are the shops' free text, so they are no
  label; shop ids are ours, one per shop, and appear only while a shop's circuit is not closed;
- `switchboard_llm_configured`: 1 when an API key is set, 0 when every answer is extractive.
"""

from __future__ import annotations

import weakref
from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from core.metrics import bounded
from knowledge.breaker import Breakers

ERROR_KINDS = ("over_budget", "circuit_open", "timeout", "connection", "rate_limited",
               "overloaded", "server", "model", "refused", "ungrounded")
STATES = ("closed", "half-open", "open")

LLM_ERRORS = Counter("switchboard_llm_errors", "Knowledge questions the LLM did not answer "
                     "(answered extractively instead), by kind", ["kind"])
LLM_TOKENS = Counter("switchboard_llm_tokens", "LLM tokens spent on knowledge answers, by shop "
                     "and direction (input, output)", ["shop", "direction"])
LLM_CONFIGURED = Gauge("switchboard_llm_configured", "1: knowledge answers are written by the "
                       "LLM; 0: no ANTHROPIC_API_KEY, answers are extractive")


def llm_error(kind: str) -> None:
    LLM_ERRORS.labels(bounded(kind, ERROR_KINDS)).inc()


def status_kind(status: int) -> str:
    """The kind of an API error answer, by its HTTP status."""
    if status == 429:
        return "rate_limited"
    if status == 529:
        return "overloaded"
    return "server" if status >= 500 else "refused"


def llm_tokens(shop: str, input_tokens: int, output_tokens: int) -> None:
    LLM_TOKENS.labels(shop, "input").inc(input_tokens)
    LLM_TOKENS.labels(shop, "output").inc(output_tokens)


class BreakerStates(Collector):
    """Reads the breakers' states at scrape time (a breaker turns half-open by the clock alone,
    so a gauge set on transitions would go stale)."""

    def __init__(self) -> None:
        self._breakers: weakref.ref[Breakers] | None = None

    def watch(self, breakers: Breakers) -> None:
        """The process's breakers (the action server has one ClaudeAnswerer; the last wins)."""
        self._breakers = weakref.ref(breakers)

    def collect(self) -> Iterator[Metric]:
        breakers = self._breakers() if self._breakers is not None else None
        states: Tally[str] = Tally()
        not_closed: Tally[str] = Tally()
        for (shop, _model), breaker in (breakers.items() if breakers is not None else ()):
            state = breaker.state
            states[state] += 1
            if state != "closed":
                not_closed[shop] += 1
        by_state = GaugeMetricFamily("switchboard_llm_breakers", "LLM circuit breakers (one per "
                                     "shop and model) by state", labels=["state"])
        for state in STATES:
            by_state.add_metric([state], states[state])
        yield by_state
        by_shop = GaugeMetricFamily("switchboard_llm_breakers_not_closed", "A shop's LLM "
                                    "circuit breakers that are open or half-open (its answers "
                                    "are extractive meanwhile)", labels=["shop"])
        for shop, count in sorted(not_closed.items()):
            by_shop.add_metric([shop], count)
        yield by_shop


BREAKERS = BreakerStates()
REGISTRY.register(BREAKERS)
