"""A visitor's data on request: export it as JSON, or erase it (admin_api/privacy.py says what
is found where, and what erasing means for logs).

Owner only: it is the shop's answer to a data-subject request. Both are audited; the audit
entry names the visitor by a keyed pseudonym (as logs do), never by the email or number, and
holds only the counts per store.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from admin_api import privacy
from admin_api.api import API, Call, Model
from admin_api.audit import record
from admin_api.principal import OWNERS


class VisitorQuery(Model):
    """Any of these; several name one visitor (the union of what each finds). A value that
    names no one (not an email address, too few digits) finds nothing."""

    email: str | None = Field(None, max_length=254, description="the visitor's email address")
    phone: str | None = Field(None, max_length=40,
                              description="the visitor's phone number, international (+49…)")
    conversation: str | None = Field(None, max_length=255,
                                     description="a conversation id (its sender id)")


class VisitorExport(Model):
    visitor: str = Field(description="the keyed pseudonym the audit log names this request by")
    conversations: list[str] = Field(description="the visitor's conversations (sender ids)")
    log_pseudonyms: list[str] = Field(description="how logs name these conversations")
    messages: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    handoff_requests: list[dict[str, Any]]
    return_requests: list[dict[str, Any]]
    verification_failures: list[dict[str, Any]]
    tracker_events: list[dict[str, Any]] = Field(description="Rasa's events of those "
                                                             "conversations")
    cached_answers: list[dict[str, Any]] = Field(description="cached knowledge answers to "
                                                             "the visitor's questions (Redis)")


class ErasedOut(Model):
    visitor: str
    deleted: dict[str, int] = Field(description="rows or entries removed, per store; zeros "
                                                "when there was nothing (left)")


def _selector(call: Call[Any, Any], query: VisitorQuery) -> privacy.Selector:
    return privacy.Selector.of(call.shop, email=query.email, phone=query.phone,
                               conversation=query.conversation)


@API.route("GET", "/privacy/export", roles=OWNERS, query=VisitorQuery, response=VisitorExport,
           summary="Export everything stored about one visitor")
async def export_visitor(call: Call[None, VisitorQuery]) -> VisitorExport:
    """Name the visitor by email, phone or conversation (or several). Only this shop's data is
    searched; nothing named finds nothing."""
    selector = _selector(call, call.query)
    data = await privacy.export(privacy.stores_of(call.ctx), call.shop, selector)
    pseudonym = selector.pseudonym(call.shop)
    await record(call, "privacy.export", target=pseudonym,
                 after={"conversations": len(data["conversations"]),
                        **{k: len(v) for k, v in data.items()
                           if isinstance(v, list) and k not in ("conversations",
                                                                "log_pseudonyms")}})
    return VisitorExport(visitor=pseudonym, **data)


@API.route("POST", "/privacy/erase", roles=OWNERS, body=VisitorQuery, response=ErasedOut,
           summary="Erase everything stored about one visitor")
async def erase_visitor(call: Call[VisitorQuery, None]) -> ErasedOut:
    """Deletes the visitor's conversations from every store (our tables, Rasa's tracker
    events, verification counters, cached answers in Redis); idempotent."""
    selector = _selector(call, call.body)
    counts = await privacy.erase(privacy.stores_of(call.ctx), call.shop, selector)
    pseudonym = selector.pseudonym(call.shop)
    await record(call, "privacy.erase", target=pseudonym, after={"deleted": counts})
    return ErasedOut(visitor=pseudonym, deleted=counts)
