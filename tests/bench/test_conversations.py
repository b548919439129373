"""bench/conversations.py's own logic: generating the suite and judging replies (no stack)."""

from __future__ import annotations

from typing import Any

from bench.conversations import ORDERS, Reply, asks, generate, knowledge_answer, reference_for


def reply(texts: list[str], loop: str | None = None, slot: str | None = None,
          custom: dict[str, Any] | None = None) -> Reply:
    messages: list[dict[str, Any]] = [{"text": t} for t in texts]
    if custom:
        messages.append({"custom": custom})
    return Reply(messages, {"active_loop": {"name": loop} if loop else {},
                            "slots": {"requested_slot": slot}})


def test_the_suite_is_seeded_large_and_covers_every_flow() -> None:
    first, again = generate(200, seed=11), generate(200, seed=11)
    assert [c.title for c in first] == [c.title for c in again]
    assert [s.say for c in first for s in c.steps] == [s.say for c in again for s in c.steps]
    assert len(first) == 200 and all(c.steps for c in first)
    assert {"order status", "return", "return (not returnable)", "correction", "digression",
            "cancel", "handoff", "switch"} <= {c.flow for c in first}
    said = [s.say for c in first for s in c.steps]
    assert len(set(said)) > 300  # varied, not the same lines over and over
    assert not [s for s in said if "{" in s or "}" in s]  # every placeholder filled
    assert [c.title for c in generate(200, seed=12)] != [c.title for c in first]


def test_a_return_reference_must_name_exactly_the_items() -> None:
    both = reference_for(ORDERS["1002"], ["Denim jacket", "Scarf"])
    done = ("Done! Your return of Denim jacket and Scarf from order #1002 is registered. "
            "Your return reference is RMA-1002-4JYF. We'll email you at sam@example.com.")
    assert both.holds(reply([done]))
    assert not reference_for(ORDERS["1002"], ["Scarf"]).holds(reply([done]))
    assert not both.holds(reply([done], loop="return_form", slot="return_reason"))


def test_a_digression_needs_a_knowledge_answer_and_the_question_again() -> None:
    expect = knowledge_answer() & asks("email", "return_form")
    answer = {"knowledge": {"mode": "extractive", "sources": []}}
    assert expect.holds(reply(["We ship to Canada.", "What email?"], "return_form", "email",
                              answer))
    assert not expect.holds(reply(["We ship to Canada."], None, None, answer))
    assert not expect.holds(reply(["I'm sorry, I don't know the answer to that one."],
                                  "return_form", "email", answer))
    assert not expect.holds(reply(["What email?"], "return_form", "email"))
