"""Card numbers the gateway masked in a visitor's message ("**** **** **** 1111").

The gateway shows a card number typed into a chat as its last four digits (core/cards.py
`mask`). Those four digits are no order number, nor any other answer a form waits for: they
are left out wherever a message is read for one (`without_cards`). And the visitor is told,
once in the turn and beside whatever else the turn answers, that card numbers do not belong
in a chat (`warn_once`): the flow they asked for goes on as if the number had not been there.
"""

from __future__ import annotations

import re
from typing import Final

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

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


def _warned_this_turn(tracker: Tracker, dispatcher: CollectingDispatcher) -> bool:
    if any(message.get("response") == WARNING for message in dispatcher.messages):
        return True
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return False
        if (event.get("event") == "bot"
                and (event.get("metadata") or {}).get("utter_action") == WARNING):
            return True
    return False


def warn_once(tracker: Tracker, dispatcher: CollectingDispatcher) -> None:
    """Ask the visitor not to send card numbers in chat, when their latest message held one
    and nothing said so yet in this turn (a form and then the knowledge route may both run)."""
    text = str(tracker.latest_message.get("text") or "")
    if has_card(text) and not _warned_this_turn(tracker, dispatcher):
        dispatcher.utter_message(response=WARNING)
