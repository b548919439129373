"""Bot messages as plain text for channels without buttons, and a visitor's pick read back.

Rasa's messages carry `buttons` ({title, payload}); SMS and WhatsApp show them as numbered
choices, and a reply of "2", "2.", "(2)" or the choice's own title selects it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

_NUMBER = re.compile(r"^\s*\(?\s*(\d{1,2})\s*[\).:]?\s*$")


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def message_text(message: dict[str, Any]) -> str:
    """One Rasa message as text: its text, numbered choices, image/attachment links."""
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
