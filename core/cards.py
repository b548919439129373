"""Payment card numbers in free text, masked to their last four digits.

Visitors sometimes type a card number into a chat ("my card is 4111 1111 1111 1111, why was
it charged twice?"). The bot never needs one, and a card number kept in transcripts, Rasa's
tracker and privacy exports is a PCI problem for every shop: the gateway masks them in what
visitors send before anything stores it (connectors/messages.py: the text, and with
`mask_values` what comes with it, such as an email's subject or a widget's metadata), and logs
mask them in whatever they write (core/logs.py).

A security code or an expiry date is hidden where a word names it ("cvv 123", "exp 12/29").
A card number is 13 to 19 digits, grouped by spaces, dashes, dots or slashes or not at all
(not after a "+": that is a phone number), and passes the Luhn check (every issued card
number does). In what visitors send the check leaves alone the long order and tracking
numbers some shops use nine times in ten (one in ten passes it by chance), which masking by
shape alone would break for every visitor who types one. Logs mask by shape alone
(`checked=False`): there a mistyped card number is still one, and a masked order number costs
nothing. (Before, logs masked 16 to 19 digits only: an American Express number, 15, was
logged whole.)
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

# Digits grouped as people type them: spaces (also non-breaking and doubled), dashes (also
# en-dashes), dots or slashes, at most two between digits.
_SEP = "[ \u00a0.\u2013/-]"
CARD_SHAPED = re.compile(rf"(?<![\w+-])(?:\d{_SEP}{{0,2}}){{12,18}}\d(?![\w-])")
SEPARATORS = re.compile(_SEP)
# What a visitor types after the number: "cvv 123", "CVC: 0421", "exp 12/29", "valid thru
# 03-2027". Named by its word, so any 3 digits elsewhere stay.
SECURITY_CODE = re.compile(r"\b(cvv2?|cvc2?|csc|security code)((?:\W|\s+(?:is|number|no|"
                           r"code)\b){0,4})\d{3,4}\b", re.I)
EXPIRY = re.compile(r"\b(exp(?:iry|ires|iration)?(?: date)?|valid (?:thru|through|until))"
                    r"(\W{0,3})\d{1,2}\s*[/-]\s*\d{2,4}\b", re.I)
# What `mask` writes for a card number: the actions read masked text for it (actions/cards.py),
# and the gateway warns the visitor of it (`holds_card`).
MASKED = re.compile(r"\*{4} \*{4} \*{4} (\d{4})")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def mask(text: str, *, checked: bool = True) -> str:
    """`text` with each card number shown as "**** **** **** 1234" (`checked`: only numbers
    that pass the Luhn check), and a security code or expiry date named as one hidden."""
    if not any(char.isdigit() for char in text):
        return text
    text = SECURITY_CODE.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    text = EXPIRY.sub(lambda m: f"{m.group(1)}{m.group(2)}**/**", text)

    def masked(match: re.Match[str]) -> str:
        digits = SEPARATORS.sub("", match.group())
        if checked and not luhn_valid(digits):
            return match.group()
        return "**** **** **** " + digits[-4:]

    return CARD_SHAPED.sub(masked, text)


def mask_values(value: Any, *, keep: Collection[str] = ()) -> Any:
    """`value` (JSON-like: a message's metadata) with every string in it masked (`mask`), in
    lists and objects at any depth, except the values of its own keys named in `keep` (ids a
    provider or the shop chose, which must stay as they are: a WhatsApp media id is 15 or 16
    digits and may pass the Luhn check)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {key: item if key in keep else mask_values(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask_values(item) for item in value)
    return value


def holds_card(text: str) -> bool:
    """`text` (as `mask` left it) shows a masked card number."""
    return bool(MASKED.search(text))
