"""JSON from outside, parsed with a bound on how deeply it nests.

`json.loads` recurses once per level of nesting, so `[[[[...` 100 000 levels deep (100 KB)
raises RecursionError, not the ValueError every caller of ours catches for a body that is
not JSON: a webhook answered 500 (and its provider retried it for hours), a background
reader died. Nesting the parser still takes (some 900 levels) is no better: storing it
(`json.dumps`, SQLAlchemy's JSON type) or any recursive walk over it runs into the same limit
later, further from the edge. `loads` answers both with `TooDeep`, a ValueError, so the
callers' existing `except ValueError` treats such a body as unreadable, as it is.

MAX_DEPTH is far deeper than anything we read: a Stripe event (an invoice's line items, the
deepest, about 10 levels), a WhatsApp notification (8), a mail provider's fields (3), a live
event, a Rasa tracker event or a training annotation (a few); and far shallower than Python's
recursion limit (1000).
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class TooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH (or than the parser can go)."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested more than {MAX_DEPTH} levels deep")


def depth(value: Any) -> int:
    """How many arrays and objects deep `value` nests (0 for a string or a number); a walk
    without recursion, so any depth is measured."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children
                     if isinstance(child, (dict, list)))
    return deepest


def check(value: Any) -> Any:
    """`value` itself when it nests at most MAX_DEPTH levels; TooDeep otherwise."""
    if depth(value) > MAX_DEPTH:
        raise TooDeep()
    return value


def loads(raw: str | bytes | bytearray) -> Any:
    """`json.loads(raw)`, raising TooDeep (a ValueError) for nesting past MAX_DEPTH; any other
    unreadable input raises what json.loads raises (ValueError, UnicodeDecodeError)."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise TooDeep() from None
    return check(value)
