"""Card numbers the gateway masked in a visitor's message ("**** **** **** 1111").

The gateway shows a card number typed into a chat as its last four digits (core/cards.py
`mask`). Those four digits are no order number, nor any other answer a form waits for: they
are left out wherever a message is read for one (`without_cards`). And the visitor is told,
once in the turn and beside whatever else the turn answers, that card numbers do not belong
in a chat (`ActionWarnAboutCards`): the flow they asked for goes on as if the number had not
been there.
"""
from __future__ import annotations

import re
from typing import Final

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

# What core/cards.py `mask` writes for a card number (a test keeps the two alike).
MASKED: Final = re.compile(r"\*{4} \*{4} \*{4} (\d{4})")
WARNING: Final = "utter_card_number_hidden"


def has_card(text: str) -> bool:
    return bool(MASKED.search(text))


def without_cards(text: str) -> str:
    """`text` without its masked card numbers, last four digits included."""
    return MASKED.sub(" ", text)


def masked_digits(value: str, text: str) -> bool:
    """`value` (what NLU took from `text`) is only the last four digits of a masked card."""
    digits = value.lstrip("#").strip()
    return (any(found.group(1) == digits for found in MASKED.finditer(text))
            and digits not in without_cards(text))


class ActionWarnAboutCards(Action):
    """The card warning, said on every turn whose message held a masked card number.

    Replies come from many places: a rule's template (a thanks, a bye, "are you a bot?"), a
    form's question, a custom action. Rasa runs `action_validate_slot_mappings`, when the
    domain lists it, inside `action_extract_slots` on every turn before it predicts anything,
    and sends what it says (rasa/core/actions/action.py `ActionExtractSlots`; the name is
    rasa-sdk's `ValidationAction`'s): the one place that sees every turn, once. It returns
    no events, so the slots Rasa extracted stand. A paused conversation belongs to a person:
    Rasa records the message and the bot says nothing, this included.
    """

    def name(self) -> str:
        return "action_validate_slot_mappings"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if not tracker.is_paused() and has_card(str(tracker.latest_message.get("text") or "")):
            dispatcher.utter_message(response=WARNING)
        return []
