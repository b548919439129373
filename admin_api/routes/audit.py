"""The shop's audit log: who changed what and when, newest first.

Entries are written by the routes that change things (admin_api/audit.py `record`), always for
the caller's shop, with before/after for settings and texts and only field names for
credentials, so reading the log never reveals a secret. An owner reads it; it is the record of
what the other roles (and the owner's own keys) did, so nobody else does.

Entries keep the ids the routes wrote (a user's UUID, a conversation's `c_…` id, an API key's
`key:<prefix>`), for scripts; each listed entry also says them for people (`what`, `names`):
the person's name and email, "web conversation with …1234", the key's name. The page shows
those (the walkthrough found 100-character ids and "assignee: 19b1… → ab7c…" there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import func, select

from admin_api.api import API, Call, Model, Page, PageQuery
from admin_api.errors import NotFound
from admin_api.principal import OWNERS
from admin_api.routes.conversations import ID_PREFIX, masked_visitor, sender_of
from admin_api.tables import AuditRow, UserRow
from tenants.api_keys import ApiKeyRow
from tenants.texts import strings_in

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class AuditQuery(PageQuery):
    action: str | None = Field(None, max_length=64, pattern=_PRINTABLE,
                               description="exact action (settings.update) or a prefix "
                                           "ending in '.' (channel.)")
    actor: str | None = Field(None, max_length=200, pattern=_PRINTABLE,
                              description="any part of who, in any case: anna finds "
                                          "user:anna@shop.test (and user:hanna@...), key:sk_ "
                                          "the API keys; % and _ are plain characters")
    from_: date | None = Field(None, alias="from", description="first day (UTC), inclusive")
    to: date | None = Field(None, description="last day (UTC), inclusive; before `from`: "
                                              "no entries")


class AuditEntryOut(Model):
    id: int
    actor: str = Field(description="who: user:<email>, key:<prefix>, or system:<job>")
    action: str
    target: str | None = Field(description="what it was done to, as recorded: an id, a name")
    what: str | None = Field(description="the target for people: a person's name and email, "
                                         "'web conversation with …1234', an API key's name")
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    names: dict[str, str] = Field(description="the ids in actor, target, before and after "
                                              "(users' UUIDs, key:<prefix>) with what they "
                                              "stand for, e.g. an assignee's name")
    created_at: datetime

    @classmethod
    def of(cls, row: AuditRow, names: dict[str, str], what: str | None) -> AuditEntryOut:
        mentioned = set(strings_in([row.actor, row.target, row.before, row.after]))
        return cls(id=row.id, actor=row.actor, action=row.action, target=row.target,
                   what=what, before=row.before, after=row.after,
                   names={k: v for k, v in names.items() if k in mentioned},
                   created_at=row.created_at)


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_KEY = re.compile(r"^key:([0-9a-zA-Z_-]{1,16})$")


async def _names(call: Call[Any, Any], rows: Sequence[AuditRow]) -> dict[str, str]:
    """Who the user ids and API keys mentioned in `rows` are: "Ann Agent <ann@shop.test>",
    "API key 'night shift'". Keys only of the caller's shop."""
    mentioned = set(strings_in([[r.actor, r.target, r.before, r.after] for r in rows]))
    user_ids = {m for m in mentioned if _UUID.match(m)}
    prefixes = {match[1]: m for m in mentioned if (match := _KEY.match(m))}
    names: dict[str, str] = {}
    async with call.ctx.sessions() as session:
        if user_ids:
            for user in (await session.execute(
                    select(UserRow.id, UserRow.name, UserRow.email).where(
                        UserRow.id.in_(user_ids)))).all():
                names[user.id] = f"{user.name} <{user.email}>" if user.name else user.email
        if prefixes:
            for key in (await session.execute(
                    select(ApiKeyRow.prefix, ApiKeyRow.name).where(
                        ApiKeyRow.tenant_id == call.shop,
                        ApiKeyRow.prefix.in_(prefixes)))).all():
                names[prefixes[key.prefix]] = f"API key '{key.name}'"
    return names


def _what(call: Call[Any, Any], target: str | None, names: dict[str, str]) -> str | None:
    """The target as people read it (None: nothing to add to the recorded one)."""
    if target is None:
        return None
    if target in names:
        return names[target]
    sender = None
    if target.startswith(ID_PREFIX):
        try:
            sender = sender_of(call.ctx.settings.conversation_id_key, call.shop, target)
        except NotFound:
            return None
    elif target.startswith(f"{call.shop}:"):  # a privacy request's (pseudonymous) visitor
        sender = target
    if sender is None or sender.count(":") < 2:
        return None
    _, channel, user = sender.split(":", 2)
    if target.startswith(ID_PREFIX):
        return f"{channel} conversation with {masked_visitor(sender)}"
    # Privacy requests record the visitor's pseudonym (core/logs.py `visitor`): shown as is.
    return f"{channel} visitor {user if user.startswith('v-') else masked_visitor(sender)}"


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@API.route("GET", "/audit", roles=OWNERS, query=AuditQuery, response=Page[AuditEntryOut],
           summary="Read the shop's audit log")
async def list_audit(call: Call[None, AuditQuery]) -> Page[AuditEntryOut]:
    query = call.query
    conditions: list[Any] = [AuditRow.tenant_id == call.shop]
    if query.action:
        conditions.append(AuditRow.action.startswith(query.action, autoescape=True)
                          if query.action.endswith(".") else AuditRow.action == query.action)
    if query.actor:
        # lower(actor) LIKE lower('%anna%') with % and _ escaped: the same on SQLite and
        # PostgreSQL (SQLite's lower() folds ASCII letters only: emails are mostly that).
        conditions.append(AuditRow.actor.icontains(query.actor, autoescape=True))
    if query.from_:
        conditions.append(AuditRow.created_at >= _day_start(query.from_))
    if query.to:
        conditions.append(AuditRow.created_at < _day_start(query.to) + timedelta(days=1))
    async with call.ctx.sessions() as session:
        total = (await session.execute(
            select(func.count()).select_from(AuditRow).where(*conditions))).scalar_one()
        rows = (await session.execute(
            select(AuditRow).where(*conditions)
            .order_by(AuditRow.created_at.desc(), AuditRow.id.desc())
            .offset(query.offset).limit(query.page_size))).scalars().all()
    names = await _names(call, rows)
    return Page[AuditEntryOut](items=[AuditEntryOut.of(r, names, _what(call, r.target, names))
                                      for r in rows], total=total,
                               page=query.page, page_size=query.page_size)
