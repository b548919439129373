"""Visitors' messages as designers are shown them: their personal data masked.

Owners and agents read conversations (they answer the visitors); designers work on what the
bot should understand, and see visitors' words only as examples: a version's routing changes
(admin_api/training/evaluation.py) and the gaps to train on (admin_api/routes/gaps.py). Those
show what was said with emails, international phone numbers, card numbers and credentials
masked as logs mask them (core/logs.py `redact`), and phone numbers as written at home ("0151 /
123 456 78", "(555) 123-4567": 7 or more digits with separators, not a date) as "[phone]". A
bare run of digits stays: order and tracking numbers look the same, and how the bot routes
them is the point.
"""

from __future__ import annotations

import re

from core.logs import redact

# Digits with separators between them, as people write their own number.
_WRITTEN_PHONE = re.compile(r"(?<![\w+])\(?\d[\d ()./-]{5,}\d(?!\w)")
_DATE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}")


def mask_phone_numbers(text: str) -> str:
    """Phone numbers written with separators -> "[phone]" (the module doc says which)."""
    def mask(match: re.Match[str]) -> str:
        number = match.group()
        digits = sum(c.isdigit() for c in number)
        if digits < 7 or number.isdigit() or _DATE.fullmatch(number):
            return number
        return "[phone]"

    return _WRITTEN_PHONE.sub(mask, text)


def masked(text: str) -> str:
    """A visitor's message, one line, with its personal data masked (the module doc)."""
    return mask_phone_numbers(redact(" ".join(text.split())))
