"""Circuit breakers per shop and model: independent, bounded in number, and never stuck."""

from __future__ import annotations

from knowledge.breaker import Breakers


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_shop_and_model_has_its_own_circuit() -> None:
    breakers = Breakers(threshold=2, cooldown=30)
    for _ in range(2):
        breakers.get("shop-a", "claude-x").failed()

    assert not breakers.get("shop-a", "claude-x").allow()
    assert breakers.get("shop-b", "claude-x").allow()
    assert breakers.get("shop-a", "claude-y").allow()  # the shop's corrected model


def test_a_configuration_error_opens_at_once_and_for_longer() -> None:
    clock = Clock()
    breakers = Breakers(threshold=5, cooldown=30, config_cooldown=600, clock=clock)
    breaker = breakers.get("shop-a", "claude-typo")

    breaker.trip(breakers.config_cooldown)
    clock.now = 31
    assert breaker.state == "open"
    clock.now = 601
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.failed()  # the trial failed: open again, with the ordinary cooldown
    clock.now = 632
    assert breaker.state == "half-open"


def test_a_cancelled_trial_frees_the_circuit() -> None:
    clock = Clock()
    breakers = Breakers(threshold=1, cooldown=30, clock=clock)
    breaker = breakers.get("shop-a", "claude-x")
    breaker.failed()
    clock.now = 30

    assert breaker.allow()
    breaker.release()  # the visitor's turn was cancelled mid-call
    assert breaker.allow()


def test_memory_stays_bounded_and_keeps_the_recently_used() -> None:
    breakers = Breakers(threshold=1, max_size=100)
    breakers.get("shop-0", "m").failed()
    for n in range(1, 1000):
        breakers.get(f"shop-{n}", "m")
        breakers.get("shop-0", "m")  # in use all along: kept

    assert len(breakers) == 100
    assert not breakers.get("shop-0", "m").allow()
