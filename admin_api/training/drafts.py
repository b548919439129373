"""A shop's drafts of its own training data: one Rasa YAML file per kind and name.

A draft is stored as the designer sent it, byte for byte (comments and layout are theirs), even
when our checks find problems in it: an editor saves work in progress, and validation says
whether the set can train. Limits keep one shop's drafts small enough to check and train in
one go: `MAX_DRAFT_BYTES` a file, `MAX_SHOP_BYTES` and `MAX_DRAFTS` all of them together.

The shop's total is checked in the transaction that writes, with the shop's row locked on
PostgreSQL (SELECT ... FOR UPDATE), so two writes at once cannot both pass the limit there;
SQLite has one writer at a time anyway.

A draft never holds NUL or a lone surrogate (`UnstorableDraft`, a 422): PostgreSQL's text
refuses the one, no driver encodes the other, and YAML allows neither, so a draft holding one
would fail every later check and append (a 409 for each gap accepted into it). The API refuses
them in what it parses (admin_api/api.py); this holds for every writer of drafts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from admin_api.errors import Unprocessable
from core.db import UNSTORABLE, Base, UtcDateTime, utcnow
from tenants.models import TenantRow

KINDS = ("nlu", "rules", "stories", "domain", "tests")
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_DRAFT_BYTES = 512 * 1024
MAX_SHOP_BYTES = 2 * 1024 * 1024
MAX_DRAFTS = 200


class TrainingDraftRow(Base):
    __tablename__ = "training_drafts"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # one of KINDS
    name: Mapped[str] = mapped_column(String(64))  # NAME_PATTERN
    content: Mapped[str] = mapped_column(Text)  # the Rasa YAML as sent
    size: Mapped[int] = mapped_column(Integer)  # bytes of content in UTF-8
    updated_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DraftLimit(ValueError):
    """Storing the draft would pass a limit; the message says which, for a person."""


class UnstorableDraft(Unprocessable):
    """The draft would hold NUL or a lone surrogate (see the module's docstring): a 422."""


def _storable(kind: str, name: str, content: str) -> None:
    found = UNSTORABLE.search(content)
    if found:
        line = content.count("\n", 0, found.start()) + 1
        raise UnstorableDraft(f"{file_of(kind, name)} would hold U+{ord(found.group()):04X} "
                              f"on line {line}: a NUL character or an unpaired surrogate, "
                              "which YAML does not allow and cannot be stored")


@dataclass(frozen=True)
class DraftInfo:
    kind: str
    name: str
    size: int
    updated_at: datetime
    updated_by: str | None

    @property
    def file(self) -> str:
        return file_of(self.kind, self.name)


@dataclass(frozen=True)
class Stored:
    info: DraftInfo
    created: bool
    before: dict[str, object] | None  # size and hash of the replaced content, for the audit


def file_of(kind: str, name: str) -> str:
    """How errors name a draft: "nlu/sizes.yml"."""
    return f"{kind}/{name}.yml"


def fingerprint(content: str) -> dict[str, object]:
    """What the audit log keeps of a draft: its size and hash, not the content."""
    data = content.encode("utf-8")
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _info(row: TrainingDraftRow) -> DraftInfo:
    return DraftInfo(row.kind, row.name, row.size, row.updated_at, row.updated_by)


async def list_drafts(sessions: async_sessionmaker, tenant_id: str,
                      kind: str | None = None) -> list[DraftInfo]:
    query = select(TrainingDraftRow.kind, TrainingDraftRow.name, TrainingDraftRow.size,
                   TrainingDraftRow.updated_at, TrainingDraftRow.updated_by).where(
        TrainingDraftRow.tenant_id == tenant_id)
    if kind is not None:
        query = query.where(TrainingDraftRow.kind == kind)
    async with sessions() as session:
        rows = (await session.execute(query.order_by(TrainingDraftRow.kind,
                                                     TrainingDraftRow.name))).all()
    return [DraftInfo(*row) for row in rows]


async def read_draft(sessions: async_sessionmaker, tenant_id: str, kind: str,
                     name: str) -> str | None:
    async with sessions() as session:
        content: str | None = await session.scalar(select(TrainingDraftRow.content).where(
            TrainingDraftRow.tenant_id == tenant_id, TrainingDraftRow.kind == kind,
            TrainingDraftRow.name == name))
    return content


async def read_contents(sessions: async_sessionmaker, tenant_id: str,
                        kind: str | None = None) -> list[tuple[str, str, str]]:
    """Every draft of the shop (of `kind` only, when given) as (kind, name, content), in a
    stable order."""
    query = select(TrainingDraftRow.kind, TrainingDraftRow.name, TrainingDraftRow.content) \
        .where(TrainingDraftRow.tenant_id == tenant_id)
    if kind is not None:
        query = query.where(TrainingDraftRow.kind == kind)
    async with sessions() as session:
        rows = (await session.execute(
            query.order_by(TrainingDraftRow.kind, TrainingDraftRow.name))).all()
    return [(kind, name, content) for kind, name, content in rows]


async def store_draft(sessions: async_sessionmaker, tenant_id: str, kind: str, name: str,
                      content: str, actor: str | None) -> Stored:
    """Insert or replace the draft; `DraftLimit` when the shop's drafts would pass a limit.
    Two writers of a new draft at once: the second one's insert conflicts and it updates."""
    _storable(kind, name, content)
    size = len(content.encode("utf-8"))
    if size > MAX_DRAFT_BYTES:
        raise DraftLimit(f"the draft is {size:,} bytes; a draft may have up to "
                         f"{MAX_DRAFT_BYTES // 1024} KB (split it into several files)")
    for _ in range(2):
        async with sessions() as session:
            # Serialises writers of one shop on PostgreSQL (ignored by SQLite: one writer).
            await session.execute(select(TenantRow.id).where(TenantRow.id == tenant_id)
                                  .with_for_update())
            others = (await session.execute(
                select(func.count(TrainingDraftRow.id), func.coalesce(
                    func.sum(TrainingDraftRow.size), 0)).where(
                    TrainingDraftRow.tenant_id == tenant_id,
                    ~((TrainingDraftRow.kind == kind) & (TrainingDraftRow.name == name))))).one()
            count, total = int(others[0]), int(others[1])
            if total + size > MAX_SHOP_BYTES:
                raise DraftLimit(
                    f"the shop's drafts would total {total + size:,} bytes; all drafts together "
                    f"may have up to {MAX_SHOP_BYTES // 1024 // 1024} MB (delete or shorten some)")
            row = await session.scalar(select(TrainingDraftRow).where(
                TrainingDraftRow.tenant_id == tenant_id, TrainingDraftRow.kind == kind,
                TrainingDraftRow.name == name))
            before = fingerprint(row.content) if row is not None else None
            if row is None:
                if count >= MAX_DRAFTS:
                    raise DraftLimit(f"the shop has {count} drafts, the most it may have; "
                                     "delete one or put more into one file")
                row = TrainingDraftRow(tenant_id=tenant_id, kind=kind, name=name)
                session.add(row)
            row.content, row.size, row.updated_by, row.updated_at = content, size, actor, utcnow()
            try:
                await session.commit()
            except IntegrityError:
                continue
            return Stored(_info(row), created=before is None, before=before)
    raise RuntimeError("could not store the draft")  # pragma: no cover


Edit = Callable[[Mapping[tuple[str, str], str]], Mapping[tuple[str, str], str]]


async def update_drafts(sessions: async_sessionmaker, tenant_id: str, edit: Edit,
                        actor: str | None) -> dict[tuple[str, str], Stored]:
    """Change several drafts at once, all or none: `edit` gets every draft of the shop as
    read in the transaction ((kind, name) -> content) and answers the new contents of those
    it changes or creates (it may raise: nothing is stored). The limits hold as for
    store_draft; `DraftLimit` when they would not. The shop's row is locked meanwhile on
    PostgreSQL, so a draft written at the same time is not lost in between."""
    async with sessions() as session:
        await session.execute(select(TenantRow.id).where(TenantRow.id == tenant_id)
                              .with_for_update())
        rows = {(row.kind, row.name): row for row in (await session.scalars(
            select(TrainingDraftRow).where(TrainingDraftRow.tenant_id == tenant_id))).all()}
        changed = edit({key: row.content for key, row in rows.items()})
        for (kind, name), content in changed.items():
            _storable(kind, name, content)
        sizes = {key: row.size for key, row in rows.items()}
        sizes.update({key: len(content.encode("utf-8")) for key, content in changed.items()})
        for kind, name in changed:
            if sizes[(kind, name)] > MAX_DRAFT_BYTES:
                raise DraftLimit(f"{file_of(kind, name)} would be {sizes[(kind, name)]:,} "
                                 f"bytes; a draft may have up to {MAX_DRAFT_BYTES // 1024} KB")
        if sum(sizes.values()) > MAX_SHOP_BYTES and changed:
            raise DraftLimit(f"the shop's drafts would total {sum(sizes.values()):,} bytes; all "
                             f"drafts together may have up to {MAX_SHOP_BYTES // 1024 // 1024} "
                             "MB (delete or shorten some)")
        if len(sizes) > MAX_DRAFTS and len(sizes) > len(rows):
            raise DraftLimit(f"the shop has {len(rows)} drafts; it may have up to {MAX_DRAFTS}")
        stored: dict[tuple[str, str], tuple[TrainingDraftRow, dict[str, object] | None]] = {}
        for (kind, name), content in changed.items():
            row = rows.get((kind, name))
            before = fingerprint(row.content) if row is not None else None
            if row is None:
                row = TrainingDraftRow(tenant_id=tenant_id, kind=kind, name=name)
                session.add(row)
            row.content, row.size = content, sizes[(kind, name)]
            row.updated_by, row.updated_at = actor, utcnow()
            stored[(kind, name)] = (row, before)
        await session.commit()  # a new draft another writer created meanwhile: IntegrityError
        return {key: Stored(_info(row), created=before is None, before=before)
                for key, (row, before) in stored.items()}


async def remove_draft(sessions: async_sessionmaker, tenant_id: str, kind: str,
                       name: str) -> dict[str, object] | None:
    """Delete the draft; the fingerprint of what was deleted, None when there was none."""
    async with sessions() as session:
        content = await session.scalar(select(TrainingDraftRow.content).where(
            TrainingDraftRow.tenant_id == tenant_id, TrainingDraftRow.kind == kind,
            TrainingDraftRow.name == name))
        if content is None:
            return None
        await session.execute(delete(TrainingDraftRow).where(
            TrainingDraftRow.tenant_id == tenant_id, TrainingDraftRow.kind == kind,
            TrainingDraftRow.name == name))
        await session.commit()
    return fingerprint(content)
