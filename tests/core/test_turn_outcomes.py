"""The outcome of a turn (core/conversations.py `outcome_of`), as analytics will count it."""

from __future__ import annotations

from typing import Any

import pytest

from core.conversations import OUTCOMES, Understood, outcome_of

TEXT: list[dict[str, Any]] = [{"text": "Here you go."}]
ANSWER = [{"text": "We ship in 2 days.",
           "custom": {"knowledge": {"mode": "extractive", "sources": [{"title": "Shipping"}]}}}]
ABSTAIN = [{"text": "I don't know that one.", "custom": {"knowledge": {"mode": "abstained"}}}]


@pytest.mark.parametrize(("intent", "actions", "messages", "responses", "paused", "outcome"), [
    ("human_handoff", ["action_handoff"], TEXT, [], False, "handoff"),
    ("affirm", ["action_handoff"], TEXT, [], False, "handoff"),  # yes to an offered person
    ("check_order_status", [], [], [], True, "handoff"),  # an agent owns the conversation
    ("ask_question", ["action_answer_from_knowledge"], ANSWER, [], False, "knowledge"),
    ("nlu_fallback", ["action_answer_from_knowledge"], ANSWER, [], False, "knowledge"),
    ("nlu_fallback", ["action_answer_from_knowledge"], ABSTAIN, [], False, "fallback"),
    ("greet", ["action_default_fallback"], TEXT, [], False, "fallback"),
    ("greet", [], [], [], False, "fallback"),  # Rasa said nothing
    ("ask_question", ["action_answer_from_knowledge"], ABSTAIN,
     ["utter_knowledge_not_found"], False, "abstained"),
    ("out_of_scope", ["action_answer_from_knowledge"], TEXT,
     ["utter_knowledge_unavailable"], False, "abstained"),
    ("greet", ["action_greet"], TEXT, [], False, "smalltalk"),
    ("thank", ["utter_you_are_welcome"], TEXT, [], False, "smalltalk"),
    ("check_order_status", ["order_status_form"], TEXT, [], False, "flow"),
    ("deny", ["action_handoff_declined"], TEXT, [], False, "flow"),
])
def test_outcome_of_a_turn(intent: str, actions: list[str], messages: list[dict[str, Any]],
                           responses: list[str], paused: bool, outcome: str) -> None:
    assert outcome in OUTCOMES
    assert outcome_of(intent, actions, messages, responses, paused) == outcome


def test_a_message_of_several_turns_is_counted_by_its_weightiest_turn() -> None:
    turns = [Understood("greet", 0.9, "smalltalk"), Understood("ask_question", 0.8, "abstained"),
             Understood("check_order_status", 0.99, "flow")]
    assert Understood.deciding(turns) == Understood("ask_question", 0.8, "abstained")
    assert Understood.deciding([]) == Understood()
