"""Bot messages as plain text for channels without buttons, and a visitor's pick read back.

Rasa's messages carry `buttons` ({title, payload}); SMS and WhatsApp show them as numbered
choices, and a reply of "2", "2.", "(2)" or the choice's own title selects it.

Knowledge answers may carry product cards in their custom payload
(`custom.knowledge.products`, see actions/knowledge.py); Rasa's REST channel sends that
payload as its own message right after the answer's text. `product_cards` reads them into
`ProductCard`s for channels that draw cards (web widget, email); on text-only channels a card
is its link under the text, the words being in the answer already.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

_NUMBER = re.compile(r"^\s*\(?\s*(\d{1,2})\s*[\).:]?\s*$")
_HTTP_URL = re.compile(r"^https?://[^\s<>\"']+$", re.I)
MAX_CARDS = 3
MAX_FACTS = 4


@dataclass(frozen=True)
class ProductCard:
    """One product under an answer: what a card shows. URLs are http(s) or None."""

    name: str
    price: str | None = None
    facts: tuple[str, ...] = ()  # "Sizes XS, S, M, L, XL and XXL", "Colours: …", "In stock"
    url: str | None = None
    image: str | None = None


def _text(value: object, limit: int) -> str | None:
    return (" ".join(value.split())[:limit] or None) if isinstance(value, str) else None


def _http(value: object) -> str | None:
    return value if isinstance(value, str) and len(value) <= 2000 and _HTTP_URL.match(value) \
        else None


def product_cards(message: dict[str, Any]) -> list[ProductCard]:
    """The product cards a message's custom payload carries, checked; malformed ones dropped."""
    custom = message.get("custom")
    knowledge = custom.get("knowledge") if isinstance(custom, dict) else None
    raw = knowledge.get("products") if isinstance(knowledge, dict) else None
    cards: list[ProductCard] = []
    for item in raw[:MAX_CARDS] if isinstance(raw, list) else ():
        name = _text(item.get("name"), 200) if isinstance(item, dict) else None
        if not isinstance(item, dict) or not name:
            continue
        facts = item.get("facts")
        facts = facts if isinstance(facts, list) else []
        cards.append(ProductCard(
            name=name, price=_text(item.get("price"), 40),
            facts=tuple(f for f in (_text(f, 200) for f in facts[:MAX_FACTS]) if f),
            url=_http(item.get("url")), image=_http(item.get("image"))))
    return cards


def card_lines(cards: Sequence[ProductCard]) -> list[str]:
    """Cards on a text-only channel: the link of each (with its name when there are several:
    the answer's text already names a single one)."""
    linked = [card for card in cards if card.url]
    if len(linked) == 1:
        return [str(linked[0].url)]
    return [f"{card.name}: {card.url}" for card in linked]


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def message_text(message: dict[str, Any]) -> str:
    """One Rasa message as text: its text, numbered choices, image/attachment and product
    links."""
    lines: list[str] = []
    if message.get("text"):
        lines.append(str(message["text"]).strip())
    buttons = message.get("buttons") or []
    if buttons:
        lines.append("\n".join(f"{i}. {b.get('title', '')}" for i, b in enumerate(buttons, 1)))
        lines.append("Reply with a number.")
    for key in ("image", "attachment"):
        if isinstance(message.get(key), str):
            lines.append(message[key])
    lines.extend(card_lines(product_cards(message)))
    return "\n".join(lines)


def messages_text(messages: Iterable[dict[str, Any]]) -> str:
    """Several Rasa messages as one text, a blank line between them."""
    return "\n\n".join(t for t in (message_text(m) for m in messages) if t)


def pick_choice(reply: str, buttons: Sequence[dict[str, Any]]) -> str | None:
    """The payload of the button the visitor chose by number or by title; None otherwise."""
    if not buttons:
        return None
    number = _NUMBER.match(reply)
    if number:
        index = int(number.group(1))
        if 1 <= index <= len(buttons):
            return buttons[index - 1].get("payload") or buttons[index - 1].get("title")
        return None
    wanted = _norm(reply)
    if not wanted:
        return None
    for button in buttons:
        if _norm(str(button.get("title", ""))) == wanted:
            return button.get("payload") or button.get("title")
    return None
