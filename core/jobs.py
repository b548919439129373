"""Background jobs (knowledge ingestion now, training later): a row per job that any process can
claim, with progress and a result, so the API that queued it answers `GET /jobs/{id}`.

A job is queued by an API request and run off the request path by a worker that claims it with
a lease (the same idea as connectors/leases.py): one UPDATE sets the worker as `lease_owner`
and `lease_expires_at` to now + LEASE, and matches only a queued job or a running one whose
lease ran out. The UPDATE's row count says who won, so two workers (in one process or in
several admin processes) never run the same job at once: on SQLite one writer at a time, on
PostgreSQL the second UPDATE waits for the first's row lock and then no longer matches.

The worker renews its lease with each progress report (every couple of seconds). A worker that
dies stops renewing: its job is taken over by any worker once the lease has run out, up to
MAX_ATTEMPTS claims; a job whose workers keep dying (a document that crashes the process)
then fails with a message instead of taking the service down again and again.

One shop's jobs of one family (`FAMILIES`: the knowledge base's, the shop's models') run one
at a time, in the order they were queued: two ingestions of the same shop would each rebuild
its index from what they saw, and the later build could miss the other's chunks. A claim
therefore skips a job when its shop has a running job of the same family whose lease is
alive. Families touch nothing of each other's (a model is trained in the workshop from
drafts, an index built here from documents), so an owner's upload is not held up by a
designer's training of a minute or more; a kind in no family waits for every running job of
its shop. On PostgreSQL claims take a transaction-level advisory lock first: without it two
workers could each claim a different job of the same shop in the same instant (each UPDATE's
"nothing of this family running" check reads a snapshot without the other's uncommitted
claim). Claims are rare (one a poll per worker), so serialising them costs nothing
noticeable.

Everything here is plain SQL on our `jobs` table; what a kind of job does lives with its
worker (admin_api/worker.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Float,
    Index,
    Integer,
    String,
    Text,
    and_,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Mapped, aliased, mapped_column

from core.db import Base, UtcDateTime, utcnow

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
FAMILIES = ("knowledge.", "model.")  # kinds' prefixes: one of a shop's family runs at a time
ACTIVE = ("queued", "running")

# Renewed with every progress report (a worker reports at least every HEARTBEAT seconds), so
# a lease outlives several missed renewals of a busy event loop; short enough that a job of a
# dead process is taken over within a minute.
LEASE = timedelta(seconds=30)
# A job claimed this often without ever finishing killed its workers (or they were killed
# while running it): it fails instead of being tried again.
MAX_ATTEMPTS = 3
ABANDONED = ("the job was interrupted {n} times (its worker stopped while running it) and "
             "was given up; start it again, and if it stops again, contact support")
# pg_advisory_xact_lock key of the claim (any constant that no other code of ours uses).
_CLAIM_LOCK = 0x5B_10B5


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created_at", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4, shown to the caller
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # "knowledge.ingest", "knowledge.reindex", ...
    status: Mapped[str] = mapped_column(String(16), default="queued")  # one of JOB_STATES
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")  # 0..1
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)  # for the caller: no secrets, no traceback
    created_by: Mapped[str | None] = mapped_column(String(200))  # the principal's label
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


@dataclass(frozen=True)
class Job:
    """One job as its callers see it (a snapshot: read again for news)."""

    id: str
    tenant_id: str
    kind: str
    status: str
    progress: float
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int

    @classmethod
    def of(cls, row: Any) -> Job:
        return cls(id=row.id, tenant_id=row.tenant_id, kind=row.kind, status=row.status,
                   progress=float(row.progress or 0.0), params=dict(row.params or {}),
                   result=row.result, error=row.error, created_by=row.created_by,
                   created_at=row.created_at, started_at=row.started_at,
                   finished_at=row.finished_at, attempts=row.attempts or 0)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


_COLUMNS = (JobRow.id, JobRow.tenant_id, JobRow.kind, JobRow.status, JobRow.progress,
            JobRow.params, JobRow.result, JobRow.error, JobRow.created_by, JobRow.created_at,
            JobRow.started_at, JobRow.finished_at, JobRow.attempts)


async def enqueue(sessions: async_sessionmaker, tenant_id: str, kind: str,
                  params: dict[str, Any] | None = None, created_by: str | None = None) -> Job:
    """A new queued job of the shop; a worker picks it up on its next poll (or at once when
    woken in this process)."""
    row = JobRow(id=str(uuid.uuid4()), tenant_id=tenant_id, kind=kind, status="queued",
                 progress=0.0, params=params or {}, created_by=created_by, created_at=utcnow(),
                 attempts=0)
    async with sessions() as session:
        session.add(row)
        await session.commit()
    return Job.of(row)


async def get_job(sessions: async_sessionmaker, tenant_id: str, job_id: str) -> Job | None:
    """The shop's job; None for an unknown id and for another shop's job alike."""
    async with sessions() as session:
        row = (await session.execute(select(*_COLUMNS).where(
            JobRow.id == job_id, JobRow.tenant_id == tenant_id))).first()
    return Job.of(row) if row is not None else None


async def list_jobs(sessions: async_sessionmaker, tenant_id: str, *, offset: int = 0,
                    limit: int = 50, kind: str | None = None,
                    status: str | None = None) -> tuple[list[Job], int]:
    """The shop's jobs, newest first, and how many there are in all."""
    where = [JobRow.tenant_id == tenant_id]
    if kind is not None:
        where.append(JobRow.kind == kind)
    if status is not None:
        where.append(JobRow.status == status)
    async with sessions() as session:
        total = (await session.execute(select(func.count()).select_from(JobRow).where(*where))
                 ).scalar_one()
        rows = (await session.execute(
            select(*_COLUMNS).where(*where)
            .order_by(JobRow.created_at.desc(), JobRow.id).offset(offset).limit(limit))).all()
    return [Job.of(row) for row in rows], int(total)


async def active_jobs(sessions: async_sessionmaker, tenant_id: str,
                      kind_prefix: str = "") -> list[Job]:
    """The shop's queued and running jobs (a handful at most), oldest first."""
    async with sessions() as session:
        rows = (await session.execute(
            select(*_COLUMNS).where(JobRow.tenant_id == tenant_id, JobRow.status.in_(ACTIVE),
                                    JobRow.kind.startswith(kind_prefix, autoescape=True))
            .order_by(JobRow.created_at, JobRow.id))).all()
    return [Job.of(row) for row in rows]


def _claimable(table: Any, now: datetime,
               kinds: tuple[str, ...] | None = None) -> ColumnElement[bool]:
    """Waiting (or abandoned by its worker), and of `kinds` when given."""
    waiting = or_(table.status == "queued",
                  and_(table.status == "running", table.lease_expires_at <= now))
    return waiting if kinds is None else and_(waiting, table.kind.in_(kinds))


def _same_family(one: Any, other: Any) -> ColumnElement[bool]:
    """Two kinds that must not run together for one shop (see the module's docstring)."""
    def in_a_family(kind: Any) -> ColumnElement[bool]:
        return or_(*(kind.startswith(family) for family in FAMILIES))
    return or_(~in_a_family(one), ~in_a_family(other),
               *(and_(one.startswith(family), other.startswith(family)) for family in FAMILIES))


async def claim(sessions: async_sessionmaker, owner: str, *, kinds: tuple[str, ...] | None = None,
                lease: timedelta = LEASE) -> Job | None:
    """The oldest job this worker may run, leased to `owner`; None when there is none.

    Takes over a running job whose lease ran out (its worker died); fails such a job instead
    once it was claimed MAX_ATTEMPTS times. Skips jobs whose shop runs one of their family."""
    now = utcnow()
    # Every admin process asks every second or two with several workers: when nothing waits
    # (nearly always), one read answers, without the lock and the writes below. A session of
    # its own: the claim's transaction never starts from an older snapshot (SQLite's WAL).
    async with sessions() as session:
        waiting = await session.scalar(
            select(JobRow.id).where(_claimable(JobRow, now, kinds)).limit(1))
    if waiting is None:
        return None
    async with sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                  {"key": _CLAIM_LOCK})
        await session.execute(
            update(JobRow)
            .where(JobRow.status == "running", JobRow.lease_expires_at <= now,
                   JobRow.attempts >= MAX_ATTEMPTS)
            .values(status="failed", finished_at=now, lease_expires_at=None,
                    error=ABANDONED.format(n=MAX_ATTEMPTS))
            .execution_options(synchronize_session=False))
        busy, candidate = aliased(JobRow), aliased(JobRow)
        held_up = (select(busy.id)
                   .where(busy.tenant_id == candidate.tenant_id, busy.status == "running",
                          busy.lease_expires_at > now, _same_family(busy.kind, candidate.kind))
                   .exists())
        oldest = (select(candidate.id)
                  .where(_claimable(candidate, now, kinds), ~held_up)
                  .order_by(candidate.created_at, candidate.id).limit(1).scalar_subquery())
        row = (await session.execute(
            update(JobRow)
            .where(JobRow.id == oldest, _claimable(JobRow, now))
            .values(status="running", lease_owner=owner, lease_expires_at=now + lease,
                    attempts=JobRow.attempts + 1,
                    started_at=func.coalesce(JobRow.started_at, now))
            .returning(*_COLUMNS)
            .execution_options(synchronize_session=False))).first()
        await session.commit()
    return Job.of(row) if row is not None else None


def _held(job_id: str, owner: str) -> tuple[ColumnElement[bool], ...]:
    return (JobRow.id == job_id, JobRow.lease_owner == owner, JobRow.status == "running")


async def _update_held(sessions: async_sessionmaker, job_id: str, owner: str,
                       **values: Any) -> bool:
    async with sessions() as session:
        result = await session.execute(
            update(JobRow).where(*_held(job_id, owner)).values(**values)
            .execution_options(synchronize_session=False))
        await session.commit()
    return bool(getattr(result, "rowcount", 0))


async def report_progress(sessions: async_sessionmaker, job_id: str, owner: str,
                          progress: float, *, lease: timedelta = LEASE) -> bool:
    """Record progress (0..1) and renew the lease. False when the job is no longer ours (its
    lease ran out and another worker took it over): the caller should stop working on it."""
    return await _update_held(sessions, job_id, owner,
                              progress=min(max(float(progress), 0.0), 1.0),
                              lease_expires_at=utcnow() + lease)


async def finish(sessions: async_sessionmaker, job_id: str, owner: str,
                 result: dict[str, Any]) -> bool:
    """Done, with its result. False (nothing written) when the job is no longer ours."""
    return await _update_held(sessions, job_id, owner, status="done", progress=1.0,
                              result=result, finished_at=utcnow(), lease_expires_at=None)


async def fail(sessions: async_sessionmaker, job_id: str, owner: str, error: str) -> bool:
    """Failed, with a sentence for people (never a traceback or a secret)."""
    return await _update_held(sessions, job_id, owner, status="failed", error=error[:2000],
                              finished_at=utcnow(), lease_expires_at=None)


async def release(sessions: async_sessionmaker, job_id: str, owner: str) -> bool:
    """Hand a job back to the queue (its worker is shutting down): another worker, or this one
    after a restart, starts it again at once. The interrupted claim does not count against
    MAX_ATTEMPTS: a shutdown is not the job's fault."""
    async with sessions() as session:
        result = await session.execute(
            update(JobRow).where(*_held(job_id, owner))
            .values(status="queued", progress=0.0, lease_owner=None, lease_expires_at=None,
                    attempts=func.max(JobRow.attempts - 1, 0)
                    if session.get_bind().dialect.name == "sqlite"
                    else func.greatest(JobRow.attempts - 1, 0))
            .execution_options(synchronize_session=False))
        await session.commit()
    return bool(getattr(result, "rowcount", 0))
