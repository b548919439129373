"""Gap mining (issue 15): the topics the bot could not handle, turned into training examples.

`GET /gaps` lists the period's topics of unanswered messages (admin_api/topics.py groups
them, the same cached grouping the analytics read) as gaps with an id, cleaned example
phrasings and a suggested intent (admin_api/training/gaps.py says how each is chosen). While
the grouping runs longer than GAPS_WAIT the answer is `ready` false with no items: ask again.

`POST /gaps/{id}/accept` adds the designer's examples (edited or not) under the chosen intent,
existing or new, to the NLU draft `nlu/<draft>`, and a new intent to `domain/<draft>`, in one
transaction, appending to the designer's text. The id is looked up in the shop's grouped
periods this process holds (the ones `GET /gaps` answered from), then in the shop's latest
unanswered messages (`_known_gap`); another shop's id, or one of no such message, is a 404.
Needs the plan's own models (402), answers our checks' problems in the touched drafts as
PUT /training does, and is audited without the examples' text.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import Field, field_validator
from sqlalchemy.exc import IntegrityError

from admin_api import analytics, topics
from admin_api.api import API, Call, Model, PageQuery
from admin_api.audit import record
from admin_api.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from admin_api.plan_limits import require_own_models
from admin_api.principal import DESIGNERS
from admin_api.routes.analytics import RangeQuery
from admin_api.routes.training import ProblemOut
from admin_api.training import gaps
from admin_api.training.appending import CannotAppend
from admin_api.training.base import base_data
from admin_api.training.checks import validate
from admin_api.training.drafts import (
    NAME_PATTERN,
    DraftLimit,
    file_of,
    fingerprint,
    read_contents,
    update_drafts,
)
from admin_api.visitor_text import masked

log = logging.getLogger(__name__)

GAPS_WAIT = 5.0  # seconds GET /gaps waits for the grouping before answering ready false
MAX_ACCEPTED = 200  # examples in one accept
MAX_EXAMPLE = 300  # characters of one example
ACCEPT_SCAN = 20_000  # the shop's latest unanswered messages searched for an id not held here


class GapsQuery(RangeQuery, PageQuery):
    page_size: int = Field(20, ge=1, le=100)


class GapOut(Model):
    id: str = Field(description="stays the same while the topic's question stands for it")
    question: str = Field(description="the phrasing that stands for the topic, its personal "
                                      "data masked (emails, phone and card numbers)")
    count: int = Field(description="how many messages of the period belong to the topic")
    examples: list[str] = Field(description="suggested training examples: the topic's "
                                            "phrasings cleaned, without those training has")
    suggested_intent: str
    intent_exists: bool = Field(description="the suggested intent is in the base or the "
                                            "shop's drafts (false: a new name)")


class GapsOut(Model):
    ready: bool = Field(description="false while the messages are still being grouped: ask "
                                    "again shortly (items is empty meanwhile)")
    items: list[GapOut]
    total: int = Field(description="gaps in the period")
    page: int
    page_size: int


class AcceptIn(Model):
    intent: str = Field(min_length=1, max_length=100, description="an existing intent or a "
                        "new one (letters, digits and _)")
    examples: list[str] = Field(min_length=1, max_length=MAX_ACCEPTED)
    draft: str = Field("gaps", pattern=NAME_PATTERN, description="the drafts' name: examples "
                       "go to nlu/<draft>, a new intent to domain/<draft>")

    @field_validator("examples")
    @classmethod
    def _lines(cls, examples: list[str]) -> list[str]:
        cleaned = [" ".join(e.split()) for e in examples]
        if any(not e for e in cleaned):
            raise ValueError("an example is empty")
        if any(len(e) > MAX_EXAMPLE for e in cleaned):
            raise ValueError(f"an example may have up to {MAX_EXAMPLE} characters")
        return cleaned


class DraftTouched(Model):
    kind: str
    name: str
    created: bool
    size: int


class AcceptOut(Model):
    gap: str
    intent: str
    new_intent: bool = Field(description="the intent was listed in domain/<draft> now")
    added: list[str] = Field(description="examples added to nlu/<draft>")
    already_present: list[str] = Field(description="examples left out: the base or a draft "
                                                   "has them already")
    drafts: list[DraftTouched]
    problems: list[ProblemOut] = Field(description="what our checks find in the touched "
                                                   "drafts (POST /training/validate checks all)")


async def _gaps(call: Call[Any, Any], entry: topics.Grouped) -> list[gaps.Gap]:
    drafts = {(kind, name): content
              for kind, name, content in await read_contents(call.ctx.sessions, call.shop)}
    already = await asyncio.to_thread(gaps.known, drafts)
    return gaps.gaps_of(call.shop, entry.found, entry.intents, already)


@API.route("GET", "/gaps", roles=DESIGNERS, query=GapsQuery, response=GapsOut,
           summary="List the topics the bot could not handle, as training examples")
async def list_gaps(call: Call[None, GapsQuery]) -> GapsOut:
    """The period's fallbacks, abstentions and handoffs after misunderstanding, grouped by
    meaning, largest first, each with cleaned example phrasings and a suggested intent."""
    query = call.query
    entry = await topics.grouped(call, query.period(), GAPS_WAIT)
    if entry is None:
        return GapsOut(ready=False, items=[], total=0, page=query.page,
                       page_size=query.page_size)
    found = await _gaps(call, entry)
    return GapsOut(ready=True, total=len(found), page=query.page, page_size=query.page_size,
                   items=[GapOut(id=g.id, question=masked(g.question), count=g.count,
                                 examples=list(g.examples), suggested_intent=g.suggested_intent,
                                 intent_exists=g.intent_exists)
                          for g in found[query.offset:query.offset + query.page_size]])


class GapPath(Model):
    id: str = Field(max_length=64, description="a gap's id as GET /gaps lists it")


async def _known_gap(call: Call[Any, Any], ident: str) -> str | None:
    """The question of the shop's gap `ident`: from the grouped periods this process still
    holds, else from the shop's latest ACCEPT_SCAN unanswered messages (a gap's question is
    one of them, and its id a hash of it: so an id listed by another admin process, or
    before this one restarted or let the grouping go, is known too)."""
    for entry in topics.cached(call):
        for topic in entry.found:
            if gaps.gap_id(call.shop, topic.question) == ident:
                return topic.question
    for said, _ in await analytics.unanswered_turns(call.ctx.sessions, call.shop, None,
                                                     ACCEPT_SCAN):
        if gaps.gap_id(call.shop, said) == ident:
            return said
    return None


@API.route("POST", "/gaps/{id}/accept", roles=DESIGNERS, params=GapPath, body=AcceptIn,
           response=AcceptOut, errors=(402, 404, 409, 413),
           summary="Add a gap's examples to the shop's training data drafts")
async def accept_gap(call: Call[AcceptIn, None]) -> AcceptOut:
    """Adds the examples under the intent to nlu/<draft> (created when missing), without
    those the base or a draft has, and lists a new intent in domain/<draft>: both drafts or
    neither. 409 when a draft's text is not a shape examples can be appended to."""
    body, ident = call.body, call.path["id"]
    try:
        intent = gaps.check_intent(body.intent)
    except gaps.BadIntent as exc:
        raise Unprocessable(str(exc)) from None
    await require_own_models(call)
    if await _known_gap(call, ident) is None:
        raise NotFound("no such gap among the shop's current ones; GET /api/v1/gaps lists them")
    outcome: list[gaps.Accepted] = []

    def edit(drafts: Any) -> dict[tuple[str, str], str]:
        outcome.append(gaps.accept(drafts, body.draft, intent, body.examples))
        return outcome[-1].changed

    try:
        stored = await update_drafts(call.ctx.sessions, call.shop, edit, call.principal.actor)
    except CannotAppend as exc:
        raise Conflict(f"{file_of('nlu', body.draft)} or {file_of('domain', body.draft)} "
                       f"cannot be added to: {exc}; fix it, or accept into another draft") \
            from None
    except DraftLimit as exc:
        raise PayloadTooLarge(str(exc)) from None
    except IntegrityError:
        raise Conflict("the drafts changed meanwhile; try again") from None
    accepted = outcome[-1]
    touched = {file_of(kind, name) for kind, name in stored}
    drafts = await read_contents(call.ctx.sessions, call.shop)
    problems = [p for p in await asyncio.to_thread(validate, drafts, base_data().defs)
                if p.file in touched]
    await record(call, "training.gap.accept", target=f"gap:{ident}", before=None, after={
        "intent": intent, "new_intent": accepted.new_intent, "added": len(accepted.added),
        "already_present": len(accepted.already_present),
        "drafts": {file_of(kind, name): fingerprint(accepted.changed[(kind, name)])
                   for kind, name in stored}})
    return AcceptOut(
        gap=ident, intent=intent, new_intent=accepted.new_intent, added=list(accepted.added),
        already_present=list(accepted.already_present),
        problems=[ProblemOut(file=p.file, line=p.line, message=p.message) for p in problems],
        drafts=[DraftTouched(kind=kind, name=name, created=s.created, size=s.info.size)
                for (kind, name), s in stored.items()])
