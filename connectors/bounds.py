"""Bounded input: how large a body each route takes, and how long ids may be.

Bodies. Sanic has one global limit (REQUEST_MAX_SIZE, 100 MB by default), checked as the body
is read. Our routes need very different ones, so each route names its own with Sanic's route
context (`@bp.post(..., ctx_body_limit=REST_BODY)`); a route that names none gets
`DEFAULT_BODY` (GETs, the health check). `limit_bodies(app)` checks the limit after Sanic has
found the route and before it reads the body (the `http.routing.after` signal): a
Content-Length over the limit is a 413 at once, without reading a byte of the body, and the
connection is closed; a chunked body (no length up front) is read only up to the limit,
because the same handler lowers the request stream's own limit, which Sanic checks per chunk
(413 too). The global limit becomes the largest route limit, so nothing bigger is ever read.
The admin service checks its routes' limits the same way (`refuse_bodies_over_limits`, with its
own default and its own 413: admin_api/app.py).

The limits, from what each route legitimately receives:
- REST and the widget (64 KB): a visitor's message is at most 4000 characters (16 KB of
  UTF-8) plus a 2 KB metadata object; the widget's socket frames are capped the same way
  (WEBSOCKET_MAX_SIZE; its frames hold at most 16 000 characters, frames.py).
- Twilio (128 KB): a form with a Body of at most 1600 SMS / 4096 WhatsApp characters, URL
  encoded (up to 12 bytes for one emoji), and up to ten media URLs.
- WhatsApp Cloud API (4 MB): Meta documents webhook payloads "up to 3MB" (batched
  notifications); a lost batch is several visitors' messages, so 1 MB of margin.
- Email inbound (32 MB): Mailgun accepts messages up to 25 MB and SendGrid Inbound Parse up to
  30 MB; the posted form adds the text again (stripped, HTML) and multipart framing.

Ids. A provider message id and a conversation's sender id are `String(255)` columns
(core/conversations.py). A longer one would make PostgreSQL refuse the insert (a 500, retried
by the provider for hours): `InboundMessage` refuses it up front with 400 (`check_ids`), on
every channel. Email hashes an over-long Message-ID instead (email/routes.py), because a real
mail may carry one and must still be answered; a sender address that long cannot be answered
and is refused.

Characters. A JSON body may hold "\\ud800" (a lone surrogate: no character, and no UTF-8 for
it) and any text "\\u0000" (NUL, which PostgreSQL's text refuses); a mail's undecodable header
bytes come out of the stdlib's parser as lone surrogates too. Stored, either is a 500 that a
provider retries for hours. A visitor's text keeps the rest of what they wrote (`storable`: a
lone surrogate becomes U+FFFD, as a UTF-8 decoder shows a broken byte, and NUL is dropped); an
id holding one is a 400 (`check_ids`), since two ids cleaned alike would be one conversation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sanic import Request, Sanic

from connectors.errors import BadRequest, PayloadTooLarge
from core.db import UNSTORABLE

KB = 1024
MB = 1024 * KB
DEFAULT_BODY = 64 * KB
REST_BODY = 64 * KB
WIDGET_FRAME = 64 * KB
TWILIO_BODY = 128 * KB
META_BODY = 4 * MB
EMAIL_BODY = 32 * MB
LARGEST_BODY = max(DEFAULT_BODY, REST_BODY, TWILIO_BODY, META_BODY, EMAIL_BODY)

MAX_ID = 255  # messages.message_id and messages.sender_id (String(255))
SURROGATE = re.compile(r"[\ud800-\udfff]")


def readable(size: int) -> str:
    return f"{size // MB} MB" if size >= MB and size % MB == 0 else f"{size // KB} KB"


def body_limit(request: Request, default: int = DEFAULT_BODY) -> int:
    """The limit of the route this request was routed to (`default` when it names none)."""
    route = request.route
    limit = getattr(route.ctx, "body_limit", None) if route is not None else None
    return int(limit) if limit else default


def limit_bodies(app: Sanic) -> None:
    """Per-route body limits on the gateway (see the module's docstring)."""
    app.config.REQUEST_MAX_SIZE = LARGEST_BODY
    app.config.WEBSOCKET_MAX_SIZE = WIDGET_FRAME
    refuse_bodies_over_limits(app, DEFAULT_BODY, PayloadTooLarge)


def refuse_bodies_over_limits(app: Sanic, default: int,
                              too_large: Callable[[str], Exception]) -> None:
    """A body over its route's limit (`ctx_body_limit`, else `default`) is refused as
    `too_large(detail)`, the app's own 413, before it is read (see the module's docstring).
    The app's REQUEST_MAX_SIZE stays its caller's: set it to the largest route limit."""

    @app.signal("http.routing.after")
    async def refuse_large_bodies(request: Request, **_: Any) -> None:
        limit = body_limit(request, default)
        stream = request.stream
        if stream is not None and hasattr(stream, "request_max_size"):
            stream.request_max_size = min(stream.request_max_size, limit)
        length = request.headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            if stream is not None and hasattr(stream, "keep_alive"):
                stream.keep_alive = False  # the body stays unread: no next request after it
            raise too_large(f"The body is larger than this endpoint takes "
                            f"({readable(limit)}).")


def check_ids(sender_id: str, message_id: str | None) -> None:
    """400 when an id would not fit its column (never the insert's 500)."""
    if len(sender_id) > MAX_ID:
        user_key = sender_id.split(":", 2)[-1]
        room = MAX_ID - (len(sender_id) - len(user_key))
        raise BadRequest(f"The sender is longer than {room} characters.")
    if message_id is not None and len(message_id) > MAX_ID:
        raise BadRequest(f"The message id is longer than {MAX_ID} characters.")
    if UNSTORABLE.search(sender_id) or (message_id is not None and UNSTORABLE.search(message_id)):
        raise BadRequest("The sender and the message id must be text without NUL characters "
                         "or unpaired surrogates.")


def storable(text: str) -> str:
    """`text` as a database can keep it (see the module's docstring)."""
    if not UNSTORABLE.search(text):
        return text
    return SURROGATE.sub("\ufffd", text).replace("\x00", "")


def storable_values(value: Any) -> Any:
    """`storable` for every string in a JSON-like value (keys too)."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, Mapping):
        return {storable_values(k): storable_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(storable_values(v) for v in value)
    return value
