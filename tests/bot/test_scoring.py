"""bot/scoring.py: the held-out split, the metrics, the routing groups and the test
comparison of a version's evaluation, as plain functions (no Rasa)."""

from __future__ import annotations

import pytest

from bot.scoring import compare_tests, metrics, routing, split, unscored


def test_the_split_is_deterministic_stratified_and_about_a_fifth() -> None:
    examples = [(f"example number {i} of {intent}", intent)
                for intent, n in (("big", 1000), ("small", 5), ("tiny", 4)) for i in range(n)]
    train, held = split(examples)
    assert (train, held) == split(list(reversed(examples)))  # order does not matter
    assert sorted(train + held) == sorted(examples)
    assert not set(train) & set(held)
    held_big = sum(1 for _, intent in held if intent == "big")
    assert 150 <= held_big <= 250  # one in five by hash (191 here)
    assert sum(1 for _, intent in held if intent == "small") >= 1  # every intent with >= 5
    assert not any(intent == "tiny" for _, intent in held)  # fewer than 5: trained on whole
    # an example's fate does not depend on the rest of the data set (the cache relies on it)
    more = examples + [("a shop's own example", "big")]
    assert {e for e in split(more)[1] if e[1] == "big"} - {("a shop's own example", "big")} \
        == {e for e in held if e[1] == "big"}


def test_intents_too_small_to_score_are_named_with_their_counts() -> None:
    examples = [(f"example {i} of {intent}", intent)
                for intent, n in (("big", 40), ("new_intent", 2), ("almost", 4), ("five", 5))
                for i in range(n)]
    assert unscored(examples) == {"almost": 4, "new_intent": 2}
    # exactly the intents the split holds nothing out of
    held = {intent for _, intent in split(examples)[1]}
    assert held == {"big", "five"} and not held & set(unscored(examples))


def test_metrics_per_intent_with_the_fallback_counted_wrong() -> None:
    pairs = [("a", "a"), ("a", "a"), ("a", "b"), ("a", "nlu_fallback"),
             ("b", "b"), ("b", "a"), ("c", None)]
    found = metrics(pairs)
    assert found["intents"]["a"] == {"precision": pytest.approx(2 / 3, abs=1e-4),
                                     "recall": 0.5, "f1": pytest.approx(0.5714, abs=1e-4),
                                     "support": 4}
    assert found["intents"]["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert found["intents"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert "nlu_fallback" not in found["intents"]
    assert found["accuracy"] == pytest.approx(3 / 7, abs=1e-4)
    assert found["macro_f1"] == pytest.approx((0.5714 + 0.5) / 3, abs=1e-4)
    assert found["examples"] == 7
    assert metrics([]) == {"intents": {}, "accuracy": 0.0, "macro_f1": 0.0, "examples": 0}


def test_routing_changes_are_grouped_largest_first_with_three_examples() -> None:
    messages = ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]
    before = ["ask_question", "ask_question", "ask_question", "ask_question", "greet",
              "greet", None]
    after = ["ask_size", "ask_size", "ask_size", "ask_size", "greet", "goodbye",
             "ask_size"]
    assert routing(messages, before, after) == {
        "messages": 7, "changed": 6, "changes": [
            {"from": "ask_question", "to": "ask_size", "count": 4,
             "examples": ["m1", "m2", "m3"]},
            {"from": "greet", "to": "goodbye", "count": 1, "examples": ["m6"]},
            {"from": "nlu_fallback", "to": "ask_size", "count": 1, "examples": ["m7"]}]}


def test_test_outcomes_are_compared_story_by_story() -> None:
    candidate = [("s1", "data/tests/a.yml", True), ("s2", "data/tests/a.yml", False),
                 ("s3", "tests/own.yml", True)]
    against = [("s1", "data/tests/a.yml", False), ("s2", "data/tests/a.yml", False)]
    assert compare_tests(candidate, against) == {
        "candidate": {"passed": 2, "failed": 1, "total": 3},
        "against": {"passed": 0, "failed": 2, "total": 2},
        "changed": [{"story": "s1", "file": "data/tests/a.yml", "before": "failed",
                     "after": "passed"}],
        "failed": [{"story": "s2", "file": "data/tests/a.yml"}]}
