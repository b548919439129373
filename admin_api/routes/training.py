"""The shop's own training data as drafts in Rasa's YAML formats, over the base every shop
shares (issue 15, first slice: stored, checked, served; training comes next).

`PUT /training/{kind}/{name}` stores the body (`Content-Type: application/x-yaml`) as it came
and answers what our checks found in it: a draft with problems is still stored, as an editor
saves work in progress; `POST /training/validate` says whether the whole set can train.
`GET` answers the YAML as stored. Validation runs our checks and Rasa's own, the latter
in the workshop (bot/workshop.py, Rasa's interpreter; admin_api/training/checks.py says when
they are skipped); a workshop that does not answer is a 503, never a silent ok. The base is
read-only (`GET /training/base`, one file with `GET /training/base/{kind}/{name}`): drafts add
to it, never change it (admin_api/training/checks.py says what that means). Writes need the
plan's own models (402) and are audited with the draft's size and hash, not its content.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from admin_api.api import API, Call, Model, Page, PageQuery, WithStatus
from admin_api.audit import record
from admin_api.errors import NotFound, PayloadTooLarge, Unavailable, Unprocessable
from admin_api.plan_limits import require_own_models
from admin_api.principal import DESIGNERS
from admin_api.training.base import base_data
from admin_api.training.checks import Checked, validate, validate_all
from admin_api.training.drafts import (
    NAME_PATTERN,
    DraftLimit,
    file_of,
    fingerprint,
    list_drafts,
    read_contents,
    read_draft,
    remove_draft,
    store_draft,
)
from admin_api.training.nodes import Problem
from admin_api.workshop import WorkshopUnavailable

log = logging.getLogger(__name__)

YAML = "application/x-yaml"
Kind = Literal["nlu", "rules", "stories", "domain", "tests"]


class DraftPath(Model):
    kind: Kind = Field(description="nlu, rules, stories, domain or tests (test stories)")
    name: str = Field(pattern=NAME_PATTERN, description="the file's name without .yml: "
                                                        "a-z, 0-9, _ and -, up to 64")


class ProblemOut(Model):
    file: str = Field(description='"<kind>/<name>.yml"; "" for one of Rasa\'s findings that '
                                  "names nothing of the drafts (about them as a whole)")
    line: int = Field(description="1-based; 0 when no line can be named")
    message: str


class DraftSaved(Model):
    kind: str
    name: str
    size: int = Field(description="bytes")
    updated_at: datetime
    problems: list[ProblemOut] = Field(
        description="what our checks found in this draft, over the base and the shop's other "
                    "drafts; it is stored either way (POST /training/validate checks all)")


class DraftOut(Model):
    kind: str
    name: str
    size: int = Field(description="bytes")
    updated_at: datetime
    updated_by: str | None


class DraftQuery(PageQuery):
    page_size: int = Field(100, ge=1, le=200)
    kind: Kind | None = Field(None, description="only drafts of this kind")


class Validation(Model):
    ok: bool = Field(description="true: neither our checks nor Rasa's found an error: the "
                                 "drafts can train (warnings do not stop it)")
    errors: list[ProblemOut] = Field(description="ours and Rasa's (their messages start with "
                                                 "'Rasa: '), each once")
    warnings: list[ProblemOut] = Field(
        default_factory=list,
        description="what Rasa only warns about, e.g. an intent no rule starts with (messages "
                    "recognised as it get the fallback) or a response nothing says; worth "
                    "reading, never stops a training")
    rasa_checked: bool = Field(description="false: our checks found YAML syntax errors, so "
                                           "Rasa's own checks were not run (fix those first)")


class BaseFileOut(Model):
    kind: str
    name: str
    path: str = Field(description="where it is in the repository")
    size: int


class BaseOut(Model):
    """What every shop's bot is built from, and the names a draft may use but not redefine."""

    files: list[BaseFileOut]
    intents: list[str]
    entities: list[str]
    slots: list[str]
    forms: list[str]
    actions: list[str] = Field(description="the custom actions rules and stories may use")
    responses: list[str] = Field(description="texts change through /responses, not drafts")
    rules: list[str]
    stories: list[str]


def _problems(problems: list[Problem]) -> list[ProblemOut]:
    return [ProblemOut(file=p.file, line=p.line, message=p.message) for p in problems]


async def _check(call: Call[Any, Any]) -> list[Problem]:
    drafts = await read_contents(call.ctx.sessions, call.shop)
    return await asyncio.to_thread(validate, drafts, base_data().defs)


@API.route("GET", "/training", roles=DESIGNERS, query=DraftQuery, response=Page[DraftOut],
           summary="List the shop's training data drafts")
async def list_training_drafts(call: Call[None, DraftQuery]) -> Page[DraftOut]:
    drafts = await list_drafts(call.ctx.sessions, call.shop, call.query.kind)
    chosen = drafts[call.query.offset:call.query.offset + call.query.page_size]
    return Page[DraftOut](items=[DraftOut(kind=d.kind, name=d.name, size=d.size,
                                          updated_at=d.updated_at, updated_by=d.updated_by)
                                 for d in chosen],
                          total=len(drafts), page=call.query.page,
                          page_size=call.query.page_size)


@API.route("GET", "/training/{kind}/{name}", roles=DESIGNERS, params=DraftPath, response=str,
           produces=YAML, summary="Read a draft of the shop's training data (Rasa YAML)")
async def get_training_draft(call: Call[None, None]) -> str:
    kind, name = call.path["kind"], call.path["name"]
    content = await read_draft(call.ctx.sessions, call.shop, kind, name)
    if content is None:
        raise NotFound(f"the shop has no draft {file_of(kind, name)}; GET /api/v1/training "
                       "lists its drafts")
    return content


@API.route("PUT", "/training/{kind}/{name}", roles=DESIGNERS, params=DraftPath, raw_body=YAML,
           response=DraftSaved, also=(201,), errors=(402,),
           summary="Store a draft of the shop's training data (Rasa YAML)")
async def put_training_draft(call: Call[str, None]) -> WithStatus[DraftSaved]:
    """Stores the body as sent (201 new, 200 replaced), even with problems, and answers what
    our checks found in it."""
    kind, name = call.path["kind"], call.path["name"]
    if not call.body.strip():
        raise Unprocessable("the body is empty: send the file's Rasa YAML (to remove a draft, "
                            "DELETE it)")
    await require_own_models(call)
    try:
        stored = await store_draft(call.ctx.sessions, call.shop, kind, name, call.body,
                                   call.principal.actor)
    except DraftLimit as exc:
        raise PayloadTooLarge(str(exc)) from None
    target = file_of(kind, name)
    problems = [p for p in await _check(call) if p.file == target]
    await record(call, "training.draft.create" if stored.created else "training.draft.update",
                 target=target, before=stored.before,
                 after={**fingerprint(call.body), "problems": len(problems)})
    return WithStatus(201 if stored.created else 200, DraftSaved(
        kind=kind, name=name, size=stored.info.size, updated_at=stored.info.updated_at,
        problems=_problems(problems)))


@API.route("DELETE", "/training/{kind}/{name}", roles=DESIGNERS, params=DraftPath, errors=(402,),
           summary="Delete a draft of the shop's training data")
async def delete_training_draft(call: Call[None, None]) -> None:
    kind, name = call.path["kind"], call.path["name"]
    await require_own_models(call)
    before = await remove_draft(call.ctx.sessions, call.shop, kind, name)
    if before is None:
        raise NotFound(f"the shop has no draft {file_of(kind, name)}")
    await record(call, "training.draft.delete", target=file_of(kind, name), before=before,
                 after=None)


async def check_drafts(call: Call[Any, Any], drafts: Sequence[tuple[str, str, str]]) -> Checked:
    """Our checks and Rasa's of these drafts over the base (POST /training/validate, and
    POST /models before it trains); the workshop not answering is a 503."""
    try:
        return await validate_all(drafts, base_data().defs, call.ctx.workshop)
    except WorkshopUnavailable as exc:
        log.warning("Rasa's checks of the drafts could not run: %s", exc)
        raise Unavailable("Rasa's own checks could not run (the workshop, which runs them, did "
                          "not answer); try again in a minute") from None


@API.route("POST", "/training/validate", roles=DESIGNERS, response=Validation, errors=(503,),
           summary="Check the shop's drafts over the base")
async def validate_training(call: Call[None, None]) -> Validation:
    """Our checks of every draft of the shop together, over the base (YAML, shapes, names
    that exist, the base left intact), then Rasa's own (`rasa data validate`), unless ours
    found YAML syntax errors. 503 when Rasa's checks could not run."""
    checked = await check_drafts(call, await read_contents(call.ctx.sessions, call.shop))
    return Validation(ok=not checked.problems, errors=_problems(checked.problems),
                      warnings=_problems(checked.warnings), rasa_checked=checked.rasa_checked)


@API.route("GET", "/training/base", roles=DESIGNERS, response=BaseOut,
           summary="List the base training data every shop builds on")
async def get_training_base(call: Call[None, None]) -> BaseOut:
    base = base_data()
    defs = base.defs
    return BaseOut(
        files=[BaseFileOut(kind=f.kind, name=f.name, path=f.path, size=f.size)
               for f in base.files],
        intents=sorted(defs.intents), entities=sorted(defs.entities), slots=sorted(defs.slots),
        forms=sorted(defs.forms), actions=sorted(defs.actions),
        responses=sorted(defs.responses), rules=sorted(defs.rules), stories=sorted(defs.stories))


@API.route("GET", "/training/base/{kind}/{name}", roles=DESIGNERS, params=DraftPath, response=str,
           produces=YAML, summary="Read a file of the base training data (Rasa YAML)")
async def get_training_base_file(call: Call[None, None]) -> str:
    base = base_data()
    found = base.file(call.path["kind"], call.path["name"])
    if found is None:
        raise NotFound(f"the base has no {file_of(call.path['kind'], call.path['name'])}; "
                       "GET /api/v1/training/base lists its files")
    return await asyncio.to_thread(base.read, found)
