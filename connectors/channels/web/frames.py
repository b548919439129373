"""The widget's socket protocol: JSON text frames, validated at the edge into frozen types.

The client opens with {"type": "hello", "token": <token or null>}, then sends
{"type": "message", "text", "id"?, "payload"?} and {"type": "ping"}. A frame the client should
not have sent becomes a `FrameError` (an error frame with a code and a reason the widget can
show), never a crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_TEXT = 4000
MAX_FRAME = 16_000  # characters of one raw frame; a message of MAX_TEXT fits with room to spare
MAX_PAYLOAD = 500
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class FrameError(Exception):
    """A frame the client should not have sent; becomes an error frame, never a crash."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Hello:
    token: str | None


@dataclass(frozen=True)
class VisitorMessage:
    text: str  # what the visitor sees they sent (a chip's title)
    client_id: str | None
    payload: str | None  # a button's payload, sent to Rasa instead of the text


@dataclass(frozen=True)
class Ping:
    pass


Frame = Hello | VisitorMessage | Ping


def _hello(data: dict[str, Any]) -> Hello:
    token = data.get("token")
    if token is not None and not isinstance(token, str):
        raise FrameError("bad_frame", "'token' must be a string or null.")
    return Hello(token=token or None)


def _message(data: dict[str, Any]) -> VisitorMessage:
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise FrameError("bad_message", "'text' must be a non-empty string.")
    if len(text) > MAX_TEXT:
        raise FrameError("too_long", f"A message can have at most {MAX_TEXT} characters.")
    client_id = data.get("id")
    if client_id is not None and (not isinstance(client_id, str)
                                  or not _CLIENT_ID.match(client_id)):
        raise FrameError("bad_message", "'id' must be 1-64 characters of letters, digits, _ or -.")
    payload = data.get("payload")
    # A button's payload: usually "/intent{...}", sometimes plain text ("It doesn't fit").
    if payload is not None and (
        not isinstance(payload, str) or not payload.strip() or len(payload) > MAX_PAYLOAD
    ):
        raise FrameError("bad_message", f"'payload' must be a button payload of at most "
                                        f"{MAX_PAYLOAD} characters.")
    return VisitorMessage(text=text.strip(), client_id=client_id, payload=payload)


PARSERS: dict[str, Callable[[dict[str, Any]], Frame]] = {
    "hello": _hello,
    "message": _message,
    "ping": lambda data: Ping(),
}


def parse_frame(raw_frame: str | bytes | None) -> Frame:
    """Validate one untrusted frame; raises FrameError with a reason the client can show."""
    if not isinstance(raw_frame, str):
        raise FrameError("bad_frame", "Frames must be JSON text.")
    if len(raw_frame) > MAX_FRAME:
        raise FrameError("too_long", f"A message can have at most {MAX_TEXT} characters.")
    try:
        data = json.loads(raw_frame)
    except ValueError:
        raise FrameError("bad_frame", "Frames must be JSON objects.") from None
    except RecursionError:  # `[[[[...` past the parser's depth: a bad frame, not a crash
        raise FrameError("bad_frame", "Frames must be JSON objects nested a few levels deep."
                         ) from None
    if not isinstance(data, dict):
        raise FrameError("bad_frame", "Frames must be JSON objects.")
    kind = data.get("type")
    parser = PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise FrameError("unknown_type", f"Known frame types: {', '.join(PARSERS)}.")
    return parser(data)


def error_frame(code: str, detail: str) -> str:
    return json.dumps({"type": "error", "code": code, "detail": detail})
