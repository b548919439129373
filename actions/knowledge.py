"""The knowledge route: general questions, out-of-scope turns and low-confidence NLU.

Answers come from the tenant in the tracker only (knowledge/answers.py): Claude grounded in
retrieved passages, or without an LLM the sentences of the best passage that answer it (a
product in words for a catalogue row). When the documents do not cover the question the bot
says so and offers a person (`handoff_offered`), so "yes" next turn reaches a human.

Sources travel in the message's `custom` payload, which Rasa passes to the channel and the
gateway stores with the bot's message; so do the products an answer was drawn from
(`custom.knowledge.products`: name, price, facts, url, image), which the widget and email
show as cards and SMS/WhatsApp as the product's link under the text.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.runtime import runtime
from actions.tenancy import NoTenant, tenant_of
from core import logs

log = logging.getLogger(__name__)


class ActionAnswerFromKnowledge(Action):
    def name(self) -> str:
        return "action_answer_from_knowledge"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        question = (tracker.latest_message.get("text") or "").strip()
        if not question or question.startswith("/"):  # a button payload, not a question
            dispatcher.utter_message(response="utter_knowledge_not_found")
            return [SlotSet("handoff_offered", True)]
        try:
            tenant = await tenant_of(tracker)
            answer = await runtime().knowledge.answer(tenant, question)
        except NoTenant:
            log.warning("knowledge question without tenant",
                        extra={"sender": logs.visitor(tracker.sender_id)})
            dispatcher.utter_message(response="utter_knowledge_not_found")
            return [SlotSet("handoff_offered", True)]
        except Exception:
            log.exception("knowledge answer failed",
                          extra={"sender": logs.visitor(tracker.sender_id)})
            dispatcher.utter_message(response="utter_knowledge_unavailable")
            return [SlotSet("handoff_offered", True)]
        if answer.abstained:
            dispatcher.utter_message(response="utter_knowledge_not_found",
                                     json_message={"knowledge": {"mode": answer.mode}})
            return [SlotSet("handoff_offered", True)]
        knowledge: dict[str, Any] = {
            "mode": answer.mode,
            "cached": answer.cached,
            "sources": [{"title": s.title, "url": s.url, "document": s.document}
                        for s in answer.sources],
        }
        if answer.products:
            knowledge["products"] = [p.card() for p in answer.products]
        dispatcher.utter_message(text=answer.text, json_message={"knowledge": knowledge})
        return [SlotSet("handoff_offered", False)]
