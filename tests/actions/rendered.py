"""What a visitor reads of the messages an action collected: each response rendered from the
domain's default text with the arguments the action passed, as the NLG endpoint renders it."""

from __future__ import annotations

from typing import Any

from rasa_sdk.executor import CollectingDispatcher

from tenants.texts import ARGUMENTS, domain_texts, render

# What CollectingDispatcher.utter_message stores besides the arguments it was given.
SDK_KEYS = {"text", "image", "custom", "template", "response", "attachment", "buttons",
            "elements"}


def rendered(dispatcher: CollectingDispatcher, slots: dict[str, Any] | None = None) -> str:
    """The dispatcher's messages as text, one per line; a response's arguments must be the
    ones tenants/texts.py ARGUMENTS promises designers."""
    lines = []
    for message in dispatcher.messages:
        name = message.get("response")
        if not name:
            lines.append(str(message.get("text") or ""))
            continue
        arguments = {k: v for k, v in message.items() if k not in SDK_KEYS}
        assert set(arguments) <= ARGUMENTS.get(name, frozenset()), name
        said = render(domain_texts().defaults(name), "web", slots or {}, arguments)
        lines.append(str((said or {}).get("text") or ""))
    return "\n".join(lines)
