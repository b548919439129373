"""The shop's audit log: who changed what and when, newest first.

Entries are written by the routes that change things (admin_api/audit.py `record`), always for
the caller's shop, with before/after for settings and texts and only field names for
credentials, so reading the log never reveals a secret. An owner reads it; it is the record of
what the other roles (and the owner's own keys) did, so nobody else does.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import func, select

from admin_api.api import API, Call, Model, Page, PageQuery
from admin_api.principal import OWNERS
from admin_api.tables import AuditRow

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
    target: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, row: AuditRow) -> AuditEntryOut:
        return cls(id=row.id, actor=row.actor, action=row.action, target=row.target,
                   before=row.before, after=row.after, created_at=row.created_at)


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
    return Page[AuditEntryOut](items=[AuditEntryOut.of(r) for r in rows], total=total,
                               page=query.page, page_size=query.page_size)
