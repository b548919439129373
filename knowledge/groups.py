"""The groups a shop's pages define by listing their members: "**Zone 5 – Rest of world**:
Switzerland, Liechtenstein, Norway, Iceland, Australia, ...", "**Cards**: Visa, Mastercard and
American Express".

A page says once which zone a country is in; its price and delivery-time tables then speak of
the zone ("Rest of world | €24.95"). A visitor asks "shipping cost to australia?", so the
question is read with the group it names added (knowledge/query.py), and the table row of
that group is found and quoted. Only the shop's own lists count: which zone a country is in
differs from shop to shop.

A list is a bold label, a colon (after the bold or inside it), then names: each one to four
words, every word capitalised ("the" aside), at least two of them, read from the first
sentence with anything in parentheses left out. "Zone 4 – US & Canada" is known by what
follows the dash, the name the tables use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# "**Zone 2 – European Union**: Austria, ..." or "**Zone 2 – European Union:** Austria, ..."
LABELLED = re.compile(r"^\s*(?:[-*•]\s+)?\*\*(?P<label>[^*:\n]{2,60}?)(?::\*\*|\*\*\s*:)\s*"
                      r"(?P<rest>.+)$", re.M)
PARENTHESES = re.compile(r"\s*\([^()]*\)")
SENTENCE = re.compile(r"[.;](?:\s|$)")
SEPARATOR = re.compile(r",\s*|\s+(?:and|or)\s+")
DASH = re.compile(r"\s+[–—-]\s+")
NAME_WORD = re.compile(r"^(?:[A-ZÀ-Ý][\w'’.-]*|&)$")
MAX_NAME_WORDS = 4
MIN_MEMBERS = 2


def _member(item: str) -> str | None:
    words = item.strip().strip(".").split()
    if words and words[0].lower() == "the":
        words = words[1:]
    if not 0 < len(words) <= MAX_NAME_WORDS or not all(NAME_WORD.match(w) for w in words):
        return None
    return " ".join(words)


def groups(texts: Iterable[str]) -> dict[str, list[str]]:
    """Each listed name (lower case) and the labels of the lists it is in, in page order."""
    found: dict[str, list[str]] = {}
    for text in texts:
        for match in LABELLED.finditer(text):
            label = DASH.split(match.group("label").strip())[-1].strip()
            first = SENTENCE.split(PARENTHESES.sub("", match.group("rest")), maxsplit=1)[0]
            items = [i for i in SEPARATOR.split(first) if i.strip()]
            members = [m for m in map(_member, items) if m]
            if len(members) < MIN_MEMBERS or len(members) < len(items):
                continue  # prose after the colon, not a list of names
            for member in members:
                labels = found.setdefault(member.lower(), [])
                if label not in labels and label.lower() != member.lower():
                    labels.append(label)
    return found
