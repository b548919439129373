"""A visitor's data on request: export it as JSON, or erase it (admin_api/privacy.py says what
is found where, and what erasing means for logs).

Owner only: it is the shop's answer to a data-subject request. Both are audited; the audit
entry names the visitor by a keyed pseudonym (as logs do), never by the email or number, and
holds only the counts per store.

The visitor is named by what owners have: the conversation id they see everywhere (`c_…`,
decoded here; another shop's, or a made-up one, is a 404 as on GET /conversations/{id}), an
email address, a phone number, the REST channel's `sender`. When nothing is stored under
what was given, export and erase answer 404 with a detail saying so, never a 200 of empty
lists or zeros that an owner could take for an erasure done (erasing twice: the second is
that 404). A value that cannot name anyone is a 422 (admin_api/privacy.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from admin_api import privacy
from admin_api.api import API, Call, Model
from admin_api.audit import record
from admin_api.errors import NotFound
from admin_api.principal import OWNERS
from admin_api.routes.conversations import ID_PREFIX, conversation_id, sender_of


class VisitorQuery(Model):
    """At least one of these; several name one visitor (the union of what each finds). A
    value that names no one (not an email address, too few digits) is a 422."""

    email: str | None = Field(None, max_length=254, description="the visitor's email address")
    phone: str | None = Field(None, max_length=40,
                              description="the visitor's phone number, international (+49…)")
    conversation: str | None = Field(
        None, max_length=1024, description="a conversation's id as GET /conversations, the "
        "inbox and webhook events show it (c_…); another shop's is a 404")
    sender: str | None = Field(None, max_length=255,
                               description="the `sender` the shop's REST client sent")


class VisitorExport(Model):
    visitor: str = Field(description="the keyed pseudonym the audit log names this request by")
    conversations: list[str] = Field(description="the visitor's conversations (sender ids)")
    conversation_ids: list[str] = Field(description="the same conversations' ids, as GET "
                                                    "/conversations shows them")
    log_pseudonyms: list[str] = Field(description="how logs name these conversations")
    messages: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    handoff_requests: list[dict[str, Any]]
    return_requests: list[dict[str, Any]]
    conversation_notes: list[dict[str, Any]] = Field(description="agents' internal notes on "
                                                                 "those conversations")
    conversation_events: list[dict[str, Any]] = Field(
        description="those conversations' handoff event log: requested, claimed, "
                    "transferred, resolved, the visitor's rating")
    verification_failures: list[dict[str, Any]]
    tracker_events: list[dict[str, Any]] = Field(description="Rasa's events of those "
                                                             "conversations")
    cached_answers: list[dict[str, Any]] = Field(description="cached knowledge answers to "
                                                             "the visitor's questions (Redis)")


class ErasedOut(Model):
    visitor: str
    deleted: dict[str, int] = Field(description="rows or entries removed, per store (at "
                                                "least one is not 0: nothing found is a 404)")


NOTHING_STORED = ("nothing is stored about this visitor in your shop under what you gave "
                  "(never stored, already erased, or past the shop's retention period)")


def _selector(call: Call[Any, Any], query: VisitorQuery) -> privacy.Selector:
    conversation = query.conversation
    if conversation is not None and conversation.strip().startswith(ID_PREFIX):
        conversation = sender_of(call.ctx.settings.conversation_id_key, call.shop,
                                 conversation.strip())
    return privacy.Selector.of(call.shop, email=query.email, phone=query.phone,
                               conversation=conversation, sender=query.sender)


@API.route("GET", "/privacy/export", roles=OWNERS, query=VisitorQuery, response=VisitorExport,
           errors=(404,), summary="Export everything stored about one visitor")
async def export_visitor(call: Call[None, VisitorQuery]) -> VisitorExport:
    """Name the visitor by conversation id, email, phone or REST sender (or several). Only
    this shop's data is searched; 404 when nothing is stored under what was given."""
    selector = _selector(call, call.query)
    data = await privacy.export(privacy.stores_of(call.ctx), call.shop, selector)
    pseudonym = selector.pseudonym(call.shop)
    await record(call, "privacy.export", target=pseudonym,
                 after={"conversations": len(data["conversations"]),
                        **{k: len(v) for k, v in data.items()
                           if isinstance(v, list) and k not in ("conversations",
                                                                "log_pseudonyms")}})
    if not any(v for v in data.values()):
        raise NotFound(NOTHING_STORED)
    key = call.ctx.settings.conversation_id_key
    return VisitorExport(visitor=pseudonym, **data, conversation_ids=[
        conversation_id(key, call.shop, sender) for sender in data["conversations"]])


@API.route("POST", "/privacy/erase", roles=OWNERS, body=VisitorQuery, response=ErasedOut,
           errors=(404,), summary="Erase everything stored about one visitor")
async def erase_visitor(call: Call[VisitorQuery, None]) -> ErasedOut:
    """Deletes the visitor's conversations from every store (our tables, agents' notes and
    the handoff event log included, Rasa's tracker events, verification counters, cached
    answers in Redis). 404 when nothing was stored under what was given (so also when it was
    erased before): nothing was deleted."""
    selector = _selector(call, call.body)
    counts = await privacy.erase(privacy.stores_of(call.ctx), call.shop, selector)
    pseudonym = selector.pseudonym(call.shop)
    await record(call, "privacy.erase", target=pseudonym, after={"deleted": counts})
    if not any(counts.values()):
        raise NotFound(NOTHING_STORED)  # audited all the same: the request was answered
    return ErasedOut(visitor=pseudonym, deleted=counts)
