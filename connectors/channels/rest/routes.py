"""REST channel: the same JSON in and out as Rasa's own REST channel.

    POST /channels/{tenant_slug}/rest/webhook
    {"sender": "visitor-1", "message": "hi", "metadata": {...}}   (metadata optional)
    -> [{"recipient_id": "visitor-1", "text": "...", "buttons": [...]}, ...]

Existing Rasa REST clients work unchanged; only the URL names the shop.
"""

from __future__ import annotations

import json
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from connectors.channels.contract import Channel, context_of
from connectors.errors import BadRequest
from connectors.messages import InboundMessage
from tenants import Tenant

MAX_TEXT = 4000
MAX_SENDER = 128


def parse(body: bytes, tenant: Tenant, provider: str = "rest",
          client_address: str | None = None) -> InboundMessage:
    """Validate the untrusted body into an InboundMessage (400 with a reason otherwise).

    `client_address`: the request's peer; failed order verifications are counted by it
    across the senders a client may invent (actions/attempts.py)."""
    try:
        payload = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Body must be JSON: {\"sender\": ..., \"message\": ...}") from None
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
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise BadRequest("'metadata' must be a JSON object when given.")
    message_id = metadata.get("message_id")
    if message_id is not None and not isinstance(message_id, str):
        raise BadRequest("'metadata.message_id' must be a string when given.")
    return InboundMessage(
        tenant=tenant,
        provider=provider,
        channel="rest",
        user_key=sender.strip(),
        text=text.strip(),
        message_id=message_id,
        client_metadata=metadata,
        client_address=client_address,
    )


def render(replies: list[dict[str, Any]], sender: str) -> list[dict[str, Any]]:
    """Rasa's REST shape, addressed to the visitor's own sender id (not our scoped one)."""
    return [{**reply, "recipient_id": sender} for reply in replies]


def routes(channel: Channel) -> Blueprint:
    bp = Blueprint(channel.name)

    @bp.post("/webhook")
    async def webhook(request: Request, tenant_slug: str) -> HTTPResponse:
        ctx = context_of(request)
        inbound = parse(request.body, await ctx.tenant(tenant_slug), channel.name,
                        client_address=request.remote_addr or request.ip)
        replies = await ctx.inbox.converse(inbound)
        return json_response(render(replies or [], inbound.user_key))

    return bp
