"""A web visitor's conversation as the widget shows it, read back from the stored messages.

The inbox stores each visitor message ("in", with the client metadata as payload) and each
bot answer ("out", payload {"messages": [Rasa messages]}); the admin service stores a person's
reply ("out", the text, payload {"agent": {"id", "name"}}). The widget gets them as
{"from": "visitor"|"bot", "text", "buttons"?, "sources"?, "products"?, "agent"?: {"name"},
"at"} in the order they happened; a product is {"name", "price"?, "facts", "url"?, "image"?}
(a card).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.channels.contract import ChannelContext
from connectors.rendering import product_cards

MAX_BUTTONS = 12
MAX_SOURCES = 8


def _str(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _buttons(raw: object) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        return []
    buttons = []
    for button in raw[:MAX_BUTTONS]:
        if not isinstance(button, dict):
            continue
        title = _str(button.get("title"), 200)
        if title:
            buttons.append({"title": title, "payload": _str(button.get("payload"), 500) or title})
    return buttons


def _sources(custom: object) -> list[dict[str, str | None]]:
    knowledge = custom.get("knowledge") if isinstance(custom, dict) else None
    raw = knowledge.get("sources") if isinstance(knowledge, dict) else None
    if not isinstance(raw, list):
        return []
    sources = []
    for source in raw[:MAX_SOURCES]:
        if not isinstance(source, dict):
            continue
        title = _str(source.get("title"), 200)
        url = _str(source.get("url"), 2000)
        if title or url:
            sources.append({"title": title or url, "url": url})
    return sources


def _products(reply: dict[str, Any]) -> list[dict[str, Any]]:
    products = []
    for card in product_cards(reply):
        product: dict[str, Any] = {"name": card.name, "facts": list(card.facts)}
        for key in ("price", "url", "image"):
            if getattr(card, key):
                product[key] = getattr(card, key)
        products.append(product)
    return products


def bot_messages(replies: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rasa's messages as widget messages {text, buttons?, sources?, products?}.

    Rasa's REST channel sends a custom payload as its own message right after the text it
    belongs to; its knowledge sources and product cards are attached to that text instead of
    standing alone.
    """
    out: list[dict[str, Any]] = []
    for reply in replies:
        if not isinstance(reply, dict):
            continue
        text = reply.get("text") if isinstance(reply.get("text"), str) else ""
        buttons = _buttons(reply.get("buttons"))
        extras = {key: found for key, found in (("sources", _sources(reply.get("custom"))),
                                                ("products", _products(reply))) if found}
        if not text and not buttons:
            if extras and out:
                for key, found in extras.items():
                    out[-1].setdefault(key, []).extend(found)
            elif extras:
                out.append({"text": "", **extras})
            continue
        message: dict[str, Any] = {"text": text}
        if buttons:
            message["buttons"] = buttons
        message.update(extras)
        out.append(message)
    return out


def agent_of(payload: object) -> dict[str, Any]:
    """{"agent": {"name"}} for a message a person of the shop wrote (the admin service records
    it with payload {"agent": {"id", "name"}}); {} for the bot's. Only the name: the visitor
    has no use for an internal id."""
    agent = payload.get("agent") if isinstance(payload, dict) else None
    name = _str(agent.get("name"), 200) if isinstance(agent, dict) else None
    return {"agent": {"name": name}} if name else {}


def visitor_text(row_text: str | None, payload: object) -> str:
    """What the visitor saw themselves send: a chip's title rather than its /intent payload."""
    display = payload.get("display_text") if isinstance(payload, dict) else None
    if isinstance(display, str) and display.strip():
        return display
    return row_text or ""


async def load_history(ctx: ChannelContext, tenant_id: str, sender_id: str,
                       limit: int = 50) -> list[dict[str, Any]]:
    """The last `limit` stored messages of this conversation, oldest first."""
    history: list[dict[str, Any]] = []
    for row in await ctx.history(tenant_id, sender_id, limit):
        at = row.created_at.isoformat() if row.created_at is not None else None
        if row.direction == "in":
            history.append({"from": "visitor", "text": visitor_text(row.text, row.payload),
                            "at": at})
            continue
        replies = row.payload.get("messages") if isinstance(row.payload, dict) else None
        messages = bot_messages(replies) if isinstance(replies, list) else []
        if not messages and row.text:
            messages = [{"text": row.text}]
        said_by = agent_of(row.payload)
        history.extend({"from": "bot", **message, **said_by, "at": at} for message in messages)
    return history
