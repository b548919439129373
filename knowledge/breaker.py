"""Small async-friendly circuit breakers for the LLM API, one per shop and model.

After `threshold` consecutive failures a circuit opens: calls are refused at once (the
caller answers extractively) for `cooldown` seconds, so a failing API is not hammered by
every visitor. Then one trial call is let through (half-open): success closes the circuit,
failure opens it for another cooldown.

Why per shop and model (`Breakers`): with one breaker for the whole service, one shop's wrong
model name (a 404 on every call) opened the circuit for every shop. A shop's failures now
open only its own circuit, and a configuration error the API will repeat on every call (an
unknown model) opens it at once and for longer (`trip`). A corrected model name is a new key,
so the fix takes effect on the next question. The breakers live in a bounded LRU map: a
closed breaker carries little worth keeping, and memory stays flat however many shops and
model names pass through.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, threshold: int = 5, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._open_for = cooldown
        self._trial_running = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self._open_for else "open"

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one trial call at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def succeeded(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def failed(self) -> None:
        self._failures += 1
        if self._trial_running or self._failures >= self.threshold:
            self._open(self.cooldown)
        self._trial_running = False

    def trip(self, cooldown: float | None = None) -> None:
        """Open now, whatever the count: the API said it will refuse every such call."""
        self._failures = max(self._failures + 1, self.threshold)
        self._open(self.cooldown if cooldown is None else cooldown)
        self._trial_running = False

    def release(self) -> None:
        """The call ended without a verdict (cancelled): free the trial slot, if it held it.
        Without this a cancelled trial would keep the circuit half-open and refusing forever."""
        self._trial_running = False

    def _open(self, seconds: float) -> None:
        self._opened_at = self._clock()
        self._open_for = seconds


class Breakers:
    """One `CircuitBreaker` per (shop, model), created on first use, at most `max_size` kept."""

    def __init__(self, threshold: int = 5, cooldown: float = 30.0,
                 config_cooldown: float = 600.0, max_size: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        # An unknown model stays unknown until someone edits the shop: 10 minutes between
        # trials is plenty, and the edit itself (a new model name) gets a fresh breaker.
        self.config_cooldown = config_cooldown
        self.max_size = max_size
        self._clock = clock
        self._breakers: OrderedDict[tuple[str, str], CircuitBreaker] = OrderedDict()

    def get(self, tenant_id: str, model: str) -> CircuitBreaker:
        key = (tenant_id, model)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(self.threshold, self.cooldown, self._clock)
            self._breakers[key] = breaker
            while len(self._breakers) > self.max_size:
                self._breakers.popitem(last=False)  # the least recently used
        else:
            self._breakers.move_to_end(key)
        return breaker

    def items(self) -> list[tuple[tuple[str, str], CircuitBreaker]]:
        """A snapshot of ((shop, model), breaker) pairs, for metrics (knowledge/metrics.py),
        read from the metrics server's thread: copied in one C call, which the event loop's
        thread cannot interleave with; should it ever change under us, try again."""
        for _ in range(3):
            try:
                return list(self._breakers.items())
            except RuntimeError:  # changed size during the copy
                continue
        return []

    def __len__(self) -> int:
        return len(self._breakers)
