"""REST channel: the same JSON in and out as Rasa's own REST channel.

    POST /channels/{tenant_slug}/rest/webhook
    Authorization: Bearer sb_live_…                               (the shop's REST API key)
    {"sender": "visitor-1", "message": "hi", "metadata": {...}}   (metadata optional)
    -> [{"recipient_id": "visitor-1", "text": "...", "buttons": [...]}, ...]

    GET /channels/{tenant_slug}/rest/messages?sender=visitor-1&after=<id>   (same key)
    -> [{"id", "recipient_id", "text", "buttons"?, "agent"?: {"id", "name"}, "at"}, ...]

The poll returns the bot's and the shop's agents' messages after an id (a person's replies
come later than any request; a shop that set a callback URL also gets them POSTed:
callbacks.py). Each message has its own `id` (`poll_id`), an integer that grows in the order
messages are listed, and the next poll's `after` is the last one seen. A turn's messages are
stored in one row; before, all of them carried that row's id, so a client that drops repeated
ids showed only the first. An `after` below `POLL_ID_BASE` is such a row id, kept by a client
that polled before: it still means "after that whole turn".

Existing Rasa REST clients work unchanged besides the key; the URL names the shop. The key is
for a shop's own servers (`python -m tenants keys create`); browsers use the web widget, whose
visitor tokens are signed per conversation. Without the shop's key the answer is 401 and
nothing is stored or sent to the bot: the client-chosen `sender` is the conversation key, so
an open endpoint would let anyone continue anyone's conversation.

`metadata` travels to the tracker with the message, so it is bounded: only the documented keys,
string values, at most 2 KB in all (`METADATA_KEYS`); anything else is a 400.
"""

from __future__ import annotations

import json
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from connectors.bounds import MAX_ID, REST_BODY
from connectors.channels.contract import Channel, context_of
from connectors.errors import BadRequest
from connectors.messages import InboundMessage
from core.conversations import StoredMessage
from core.sender_ids import sender_id
from tenants import Tenant

MAX_TEXT = 4000
MAX_SENDER = 128
# What a client may tell us beside the text: `message_id` makes a retried post be answered
# once; `locale` and `page_url` are kept with the message for the shop's transcripts.
METADATA_KEYS = ("message_id", "locale", "page_url")
MAX_METADATA = 2048  # bytes of the metadata object as JSON
POLL_LIMIT = 100  # the conversation's latest messages a poll looks at
# A polled message's id: POLL_ID_BASE + stored row id * PER_ROW + its place in the row. The
# base sets these apart from the row ids that `after` was before (10**15 stays below 2**53,
# so JavaScript clients read them exactly for 8 * 10**12 rows); a turn's messages past
# PER_ROW (no bot says 1000 things at once) are not listed.
POLL_ID_BASE = 10**15
PER_ROW = 1000


def parse_metadata(metadata: Any) -> dict[str, str]:
    """The client's metadata, validated (400 with a reason otherwise)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise BadRequest("'metadata' must be a JSON object when given.")
    unknown = sorted(str(key)[:40] for key in metadata if key not in METADATA_KEYS)
    if unknown:
        raise BadRequest(f"'metadata' takes only {', '.join(METADATA_KEYS)}; "
                         f"not {', '.join(unknown[:5])}.")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise BadRequest(f"'metadata.{key}' must be a string when given.")
    if len(json.dumps(metadata).encode()) > MAX_METADATA:
        raise BadRequest(f"'metadata' is larger than {MAX_METADATA} bytes.")
    message_id = metadata.get("message_id")
    if message_id is not None and len(message_id) > MAX_ID:
        raise BadRequest(f"'metadata.message_id' is longer than {MAX_ID} characters.")
    return dict(metadata)


def parse(body: bytes, tenant: Tenant, provider: str = "rest") -> InboundMessage:
    """Validate the untrusted body into an InboundMessage (400 with a reason otherwise).

    No client address: the caller is the shop's own server (it holds the shop's key) speaking
    for all of its visitors, so failed order verifications count per sender, email and order
    (actions/attempts.py), as rate limits count per conversation (connectors/limits.py). Ten
    visitors' typos through one shop server would otherwise lock order checks for all."""
    try:
        payload = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Body must be JSON: {\"sender\": ..., \"message\": ...}") from None
    except RecursionError:  # `[[[[...` past the parser's depth: the client's error, not ours
        raise BadRequest("Body must be JSON nested at most a few levels deep.") from None
    if not isinstance(payload, dict):
        raise BadRequest("Body must be a JSON object with 'sender' and 'message'.")
    sender = payload.get("sender")
    if isinstance(sender, int) and not isinstance(sender, bool):
        sender = str(sender)
    if not isinstance(sender, str) or not sender.strip():
        raise BadRequest("'sender' must be a non-empty string identifying the visitor.")
    if len(sender) > MAX_SENDER:
        raise BadRequest(f"'sender' is longer than {MAX_SENDER} characters.")
    text = payload.get("message")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("'message' must be a non-empty string.")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"'message' is longer than {MAX_TEXT} characters.")
    metadata = parse_metadata(payload.get("metadata"))
    message_id = metadata.get("message_id")
    return InboundMessage(
        tenant=tenant,
        provider=provider,
        channel="rest",
        user_key=sender.strip(),
        text=text.strip(),
        message_id=message_id,
        client_metadata=metadata,
    )


def render(replies: list[dict[str, Any]], sender: str) -> list[dict[str, Any]]:
    """Rasa's REST shape, addressed to the visitor's own sender id (not our scoped one)."""
    return [{**reply, "recipient_id": sender} for reply in replies]


def routes(channel: Channel) -> Blueprint:
    bp = Blueprint(channel.name)

    @bp.post("/webhook", ctx_body_limit=REST_BODY)
    async def webhook(request: Request, tenant_slug: str) -> HTTPResponse:
        ctx = context_of(request)
        tenant = await ctx.tenant(tenant_slug)
        await ctx.api_client(request, tenant)  # 401 before the body is even parsed
        inbound = parse(request.body, tenant, channel.name)
        replies = await ctx.inbox.converse(inbound)
        return json_response(render(replies or [], inbound.user_key))

    @bp.get("/messages")
    async def messages(request: Request, tenant_slug: str) -> HTTPResponse:
        ctx = context_of(request)
        tenant = await ctx.tenant(tenant_slug)
        await ctx.api_client(request, tenant)
        sender, after = poll_query(request.args.get("sender"), request.args.get("after"))
        rows = await ctx.history(tenant.id, sender_id(tenant.id, "rest", sender), POLL_LIMIT)
        return json_response(polled(rows, sender, after))

    return bp


def poll_query(sender: str | None, after: str | None) -> tuple[str, tuple[int, int]]:
    """The poll's `sender` and `after` as (stored row id, place in it): an id from an earlier
    answer, a row id from before messages had their own (that row's messages all seen), or
    nothing (from the start)."""
    if not sender or not sender.strip():
        raise BadRequest("'sender' is required: the visitor's sender as posted to /webhook.")
    if len(sender) > MAX_SENDER:
        raise BadRequest(f"'sender' is longer than {MAX_SENDER} characters.")
    if after is None or after == "":
        return sender.strip(), (0, PER_ROW)
    if not after.isdigit() or len(after) > 18:
        raise BadRequest("'after' must be a message id (a non-negative integer).")
    cursor = int(after)
    if cursor < POLL_ID_BASE:
        return sender.strip(), (cursor, PER_ROW)
    return sender.strip(), divmod(cursor - POLL_ID_BASE, PER_ROW)


def poll_id(row_id: int, place: int) -> int:
    """The id of the message at `place` in stored row `row_id` (see POLL_ID_BASE)."""
    return POLL_ID_BASE + row_id * PER_ROW + place


def polled(rows: list[StoredMessage], sender: str,
           after: tuple[int, int]) -> list[dict[str, Any]]:
    """The bot's and agents' messages after `after` (row id, place), oldest first, in the
    webhook's shape plus `id` (its own; the next poll's `after`), `at` and, for a person's
    reply, `agent`."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if row.direction != "out" or row.id < after[0]:
            continue
        payload = row.payload if isinstance(row.payload, dict) else {}
        messages = payload.get("messages")
        texts = ([m for m in messages if isinstance(m, dict)] if isinstance(messages, list)
                 else [{"text": row.text or ""}])
        agent = payload.get("agent")
        said_by = ({"agent": {"id": agent.get("id"), "name": agent.get("name")}}
                   if isinstance(agent, dict) else {})
        at = row.created_at.isoformat() if row.created_at is not None else None
        out.extend({**message, "recipient_id": sender, "id": poll_id(row.id, place),
                    **said_by, "at": at}
                   for place, message in enumerate(texts[:PER_ROW])
                   if (row.id, place) > after)
    return out
