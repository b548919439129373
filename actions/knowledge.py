"""The knowledge route: general questions, out-of-scope turns and low-confidence NLU.

Answers come from the tenant in the tracker only (knowledge/answers.py): Claude grounded in
retrieved passages, or without an LLM the sentences of the best passage that answer it (a
product in words for a catalogue row). When the documents do not cover the question the bot
says so and offers a person (`handoff_offered`), so "yes" next turn reaches a human; the
question stays in `unanswered_question` for the agent's summary. A second turn in a row it
cannot answer hands over to a person at once (actions/escalation.py).

Sources travel in the message's `custom` payload, which Rasa passes to the channel and the
gateway stores with the bot's message; so do the products an answer was drawn from
(`custom.knowledge.products`: name, price, facts, url, image), which the widget and email
show as cards and SMS/WhatsApp as the product's link under the text.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import escalation
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
        if escalation.says_yes_to_the_offer(tracker):
            # "yes please, my parcel never came" to the person just offered: that person.
            return [FollowupAction(escalation.HANDOFF_ACTION)]
        if not question or question.startswith("/"):  # a button payload, not a question
            return not_answered(dispatcher, tracker, None, "utter_knowledge_not_found")
        try:
            tenant = await tenant_of(tracker)
            answer = await (await runtime().knowledge_answers()).answer(tenant, question)
        except NoTenant:
            log.warning("knowledge question without tenant",
                        extra={"sender": logs.visitor(tracker.sender_id)})
            return not_answered(dispatcher, tracker, question, "utter_knowledge_not_found")
        except Exception:
            log.exception("knowledge answer failed",
                          extra={"sender": logs.visitor(tracker.sender_id)})
            dispatcher.utter_message(response="utter_knowledge_unavailable")
            # Our outage, not a misunderstanding: the count stays where it was.
            return [*escalation.unchanged(tracker), SlotSet("handoff_offered", True),
                    SlotSet(escalation.UNANSWERED, question)]
        if answer.abstained:
            return not_answered(dispatcher, tracker, question, "utter_knowledge_not_found",
                                json_message={"knowledge": {"mode": answer.mode}})
        knowledge: dict[str, Any] = {
            "mode": answer.mode,
            "cached": answer.cached,
            "sources": [{"title": s.title, "url": s.url, "document": s.document}
                        for s in answer.sources],
        }
        if answer.products:
            knowledge["products"] = [p.card() for p in answer.products]
        dispatcher.utter_message(text=answer.text, json_message={"knowledge": knowledge})
        return [SlotSet("handoff_offered", False), SlotSet(escalation.UNANSWERED, None),
                *escalation.understood()]


def not_answered(dispatcher: CollectingDispatcher, tracker: Tracker, question: str | None,
                 response: str, **message: Any) -> list[EventType]:
    """No answer: say so and offer a person (in so many words the second time in a row),
    keeping the question for the agent who takes over."""
    return [*escalation.misunderstood(tracker, dispatcher, response, **message),
            SlotSet("handoff_offered", True), SlotSet(escalation.UNANSWERED, question)]
