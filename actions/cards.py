"""Card numbers the gateway masked in a visitor's message ("**** **** **** 1111").

The gateway shows a card number typed into a chat as its last four digits (core/cards.py
`mask`). Those four digits are no order number, nor any other answer a form waits for: they
are left out wherever a message is read for one (`without_cards`): the flow the visitor asked
for goes on as if the number had not been there. That card numbers do not belong in a chat
the gateway tells them, once in the turn and before whatever answers it (connectors/inbox.py).
"""
from __future__ import annotations

from core.cards import MASKED


def without_cards(text: str) -> str:
    """`text` without its masked card numbers, last four digits included."""
    return MASKED.sub(" ", text)


def masked_digits(value: str, text: str) -> bool:
    """`value` (what NLU took from `text`) is only the last four digits of a masked card."""
    digits = value.lstrip("#").strip()
    return (any(found.group(1) == digits for found in MASKED.finditer(text))
            and digits not in without_cards(text))
