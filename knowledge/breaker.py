"""A small async-friendly circuit breaker for the LLM API.

After `threshold` consecutive failures the circuit opens: calls are refused at once (the
caller answers extractively) for `cooldown` seconds, so a failing API is not hammered by
every visitor. Then one trial call is let through (half-open): success closes the circuit,
failure opens it for another cooldown.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, threshold: int = 5, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.cooldown else "open"

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
            self._opened_at = self._clock()
        self._trial_running = False
