"""A question is never small talk: "thanks! and do you ship to Norway?" wants an answer.

Small-talk intents (greet, goodbye, thank, affirm, deny) are learnt from short messages, and a
greeting or a thanks in front of a question can still win the classification. When the top
intent is one of them and the message asks something (a question mark or a question word
opening a clause) in more than a few words, this takes the best-ranked intent that is not
small talk instead: usually ask_question, but "hi, where is my order?" stays an order-status
request. `stop` is not in the list: "can you stop?" is a stop; questions about cancelling
are taught to the classifier as questions (data/nlu/general_questions.yml), and a stop that
asks something while no flow runs is answered as one (actions/smalltalk.py). Whether a message
asks something: core/asking.py.

Runs after the intent classifier and before the FallbackClassifier, so that a low-confidence
replacement still falls back to the knowledge route.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message

from core.asking import MIN_WORDS, asks_something


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class QuestionsAreNotSmallTalk(IntentClassifier, GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"small_talk": ["greet", "goodbye", "thank", "affirm", "deny"],
                "min_words": MIN_WORDS}

    def __init__(self, config: dict[str, Any]) -> None:
        self._small_talk = set(config["small_talk"])
        self._min_words = int(config["min_words"])

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> QuestionsAreNotSmallTalk:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            intent = message.get(INTENT) or {}
            if intent.get("name") not in self._small_talk:
                continue
            if not asks_something(message.get(TEXT) or "", self._min_words):
                continue
            ranking = message.get("intent_ranking") or []
            better = next((r for r in ranking if r.get("name") not in self._small_talk), None)
            if better is not None:
                message.set(INTENT, better, add_to_output=True)
        return messages
