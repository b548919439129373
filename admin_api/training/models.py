"""A shop's own model versions: what was trained (a snapshot of its drafts), by whom, how it
ended, and which version the shop's bot serves.

A version is made by POST /models with the shop's drafts as they were at that moment (`files`,
{"nlu/x.yml": content}, and their hash): editing drafts later never changes what a version was
trained from, and the same snapshot can be submitted again after the workshop restarts. Its id
(32 lowercase hex) is ours and is also the version's name in the workshop (POST /train) and in
the model file's name there (shops/<shop>/<version>.tar.gz). `state` is `training` until the
job (admin_api/training/jobs.py) records `ready` (fingerprint, size, training time) or
`failed` (the workshop's message), or a designer cancels it: `cancelled`, its job too (the
jobs row's status `cancelled`: a claim never starts it, and the worker running it loses it at
its next heartbeat), with who did it in `error`. `stage` and `queue_position` are what the
workshop last said, for people watching. `evaluation` stays null until testing and comparison
fill it. A version that is not training and not the shop's active one may be deleted, its
training job's row with it.

The shop's active version is a row of its own in `shop_models` (tenant_id primary key,
version_id null = the base model) rather than a flag on the versions: "one active version a
shop" is then the primary key itself, switching is one upsert instead of clearing one flag and
setting another (two activations at once could leave two flags set), going back to the base is
recorded with who and when like any switch, and the tenants table (tenants/models.py) stays as
it is.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from admin_api.training.base import base_digest
from core.db import Base, UtcDateTime, utcnow
from core.jobs import ACTIVE, Job, JobRow
from tenants.models import TenantRow

TRAINING, READY, FAILED, CANCELLED = "training", "ready", "failed", "cancelled"
STATES = (TRAINING, READY, FAILED, CANCELLED)
# A cancelled training's job row says so too (core/jobs.py's states end a job done or failed;
# a row in any status but queued or running is never claimed nor held up by).
JOB_CANCELLED = "cancelled"
ID_PATTERN = r"^[0-9a-f]{32}$"


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (Index("ix_model_versions_tenant_id_created_at", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4().hex, ours
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id"))
    job_id: Mapped[str | None] = mapped_column(String(36))  # core/jobs.py, set once queued
    state: Mapped[str] = mapped_column(String(16))  # one of STATES
    stage: Mapped[str | None] = mapped_column(String(200))  # the workshop's words, latest
    queue_position: Mapped[int | None] = mapped_column(Integer)  # >0: waiting in its queue
    created_by: Mapped[str | None] = mapped_column(String(200))  # the principal's actor
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    files: Mapped[dict[str, str]] = mapped_column(JSON)  # {"nlu/x.yml": content} trained
    snapshot_sha256: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str | None] = mapped_column(String(200))  # Rasa's, from the workshop
    training_seconds: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)  # for people, from the workshop
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # tests and comparison


class ShopModelRow(Base):
    __tablename__ = "shop_models"

    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id"),
                                           primary_key=True)
    version_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("model_versions.id"))
    activated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    activated_by: Mapped[str | None] = mapped_column(String(200))


@dataclass(frozen=True)
class ModelVersion:
    """One version as stored (a snapshot: read again for news)."""

    id: str
    tenant_id: str
    job_id: str | None
    state: str
    stage: str | None
    queue_position: int | None
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None
    files: dict[str, str]
    snapshot_sha256: str
    fingerprint: str | None
    training_seconds: float | None
    size_bytes: int | None
    error: str | None
    evaluation: dict[str, Any] | None

    @classmethod
    def of(cls, row: ModelVersionRow) -> ModelVersion:
        return cls(id=row.id, tenant_id=row.tenant_id, job_id=row.job_id, state=row.state,
                   stage=row.stage, queue_position=row.queue_position,
                   created_by=row.created_by, created_at=row.created_at,
                   finished_at=row.finished_at, files=dict(row.files or {}),
                   snapshot_sha256=row.snapshot_sha256, fingerprint=row.fingerprint,
                   training_seconds=row.training_seconds, size_bytes=row.size_bytes,
                   error=row.error, evaluation=row.evaluation)


@dataclass(frozen=True)
class Active:
    """Which model the shop's bot serves: `version_id` None is the base model."""

    version_id: str | None
    activated_at: datetime | None  # None: never switched (the base from the start)
    activated_by: str | None


class TrainingUnderWay(Exception):
    """The shop already has a version training; `version_id` names it."""

    def __init__(self, version_id: str) -> None:
        super().__init__(version_id)
        self.version_id = version_id


class NotTraining(Exception):
    """The version is no longer training (it ended, or was cancelled, meanwhile)."""


class StillTraining(Exception):
    """The version is queued or training: cancel it before deleting it."""


class ServedVersion(Exception):
    """The version is the shop's active one: activate another before deleting it."""


def snapshot_hash(files: Mapping[str, str]) -> str:
    """The same drafts on the same base give the same hash, whatever order they were read in
    (`ready_from`: a deploy that changed the base makes training them again worthwhile)."""
    snapshot = {"files": dict(files), "base": base_digest()}
    return hashlib.sha256(json.dumps(snapshot, sort_keys=True, ensure_ascii=False)
                          .encode("utf-8")).hexdigest()


def predates_base(version: ModelVersion) -> bool:
    """Trained on another base than the one this process reads (a deploy changed data/,
    bot/domain or config.yml since): its snapshot hash no longer matches its own drafts on
    the current base, so training the same drafts again makes a model that includes it."""
    return version.snapshot_sha256 != snapshot_hash(version.files)


async def create_version(sessions: async_sessionmaker, tenant_id: str,
                         files: Mapping[str, str], actor: str | None) -> ModelVersion:
    """A new version in `training`, unless the shop has one training already
    (`TrainingUnderWay`; a version whose job ended unrecorded is marked failed here). The
    check and the insert run with the shop's row locked on PostgreSQL, so two POST /models at
    once make one version; SQLite has one writer."""
    async with sessions() as session:
        await session.execute(select(TenantRow.id).where(TenantRow.id == tenant_id)
                              .with_for_update())
        under_way = (await session.execute(
            select(ModelVersionRow.id, JobRow.status, JobRow.error)
            .outerjoin(JobRow, JobRow.id == ModelVersionRow.job_id)
            .where(ModelVersionRow.tenant_id == tenant_id, ModelVersionRow.state == TRAINING)
        )).all()
        for version_id, status, error in under_way:
            if status in ACTIVE or status is None:
                raise TrainingUnderWay(version_id)
            # Its job ended without the handler recording it (given up after its workers
            # kept dying, core/jobs.py MAX_ATTEMPTS): the version failed with the job.
            await session.execute(update(ModelVersionRow).where(
                ModelVersionRow.id == version_id).values(
                state=FAILED, queue_position=None, finished_at=utcnow(),
                error=(error or "the training job ended without a model")[:2000]))
        row = ModelVersionRow(id=uuid.uuid4().hex, tenant_id=tenant_id, state=TRAINING,
                              created_by=actor, created_at=utcnow(), files=dict(files),
                              snapshot_sha256=snapshot_hash(files))
        session.add(row)
        await session.commit()
        return ModelVersion.of(row)


async def ready_from(sessions: async_sessionmaker, tenant_id: str,
                     files: Mapping[str, str]) -> ModelVersion | None:
    """The shop's newest ready version trained from exactly these drafts (same names, same
    text), if any: training them again would make the same model."""
    async with sessions() as session:
        row = await session.scalar(
            select(ModelVersionRow).where(ModelVersionRow.tenant_id == tenant_id,
                                          ModelVersionRow.state == READY,
                                          ModelVersionRow.snapshot_sha256 == snapshot_hash(files))
            .order_by(ModelVersionRow.created_at.desc(), ModelVersionRow.id.desc()).limit(1))
    # The hash names the drafts; the row's own files are compared too, never a hash alone.
    return ModelVersion.of(row) if row is not None and row.files == dict(files) else None


async def _set(sessions: async_sessionmaker, tenant_id: str, version_id: str,
               only_training: bool = False, **values: Any) -> bool:
    where = [ModelVersionRow.id == version_id, ModelVersionRow.tenant_id == tenant_id]
    if only_training:
        where.append(ModelVersionRow.state == TRAINING)
    async with sessions() as session:
        result = await session.execute(update(ModelVersionRow).where(*where).values(**values)
                                       .execution_options(synchronize_session=False))
        await session.commit()
    return bool(getattr(result, "rowcount", 0))


async def attach_job(sessions: async_sessionmaker, tenant_id: str, version_id: str,
                     job_id: str) -> None:
    await _set(sessions, tenant_id, version_id, job_id=job_id)


async def note_stage(sessions: async_sessionmaker, tenant_id: str, version_id: str,
                     stage: str, position: int | None) -> None:
    """What the workshop says it is doing (only while training)."""
    await _set(sessions, tenant_id, version_id, only_training=True, stage=stage[:200],
               queue_position=position)


async def finish_version(sessions: async_sessionmaker, tenant_id: str, version_id: str, *,
                         fingerprint: str, size_bytes: int, training_seconds: float | None,
                         evaluation: Mapping[str, Any] | None = None) -> bool:
    """Ready to activate, with its evaluation (tests and comparison) in the same write.
    False when it was no longer training (nothing written)."""
    return await _set(sessions, tenant_id, version_id, only_training=True, state=READY,
                      stage=None, queue_position=None, finished_at=utcnow(),
                      fingerprint=fingerprint[:200], size_bytes=size_bytes,
                      training_seconds=training_seconds,
                      evaluation=None if evaluation is None else dict(evaluation))


async def fail_version(sessions: async_sessionmaker, tenant_id: str, version_id: str,
                       error: str) -> bool:
    """Failed, with a sentence for people. False when it was no longer training."""
    return await _set(sessions, tenant_id, version_id, only_training=True, state=FAILED,
                      queue_position=None, finished_at=utcnow(), error=error[:2000])


async def cancel_version(sessions: async_sessionmaker, tenant_id: str, version_id: str,
                         actor: str | None) -> None:
    """Cancelled, with its job, in one transaction: the version only while it is training
    (`NotTraining` otherwise: the training job recorded it first), the job only while queued
    or running (an ended job keeps how it ended). The workshop is told by the caller."""
    now = utcnow()
    said = f"cancelled by {actor or 'someone'}"
    async with sessions() as session:
        result = await session.execute(
            update(ModelVersionRow)
            .where(ModelVersionRow.id == version_id, ModelVersionRow.tenant_id == tenant_id,
                   ModelVersionRow.state == TRAINING)
            .values(state=CANCELLED, stage=None, queue_position=None, finished_at=now,
                    error=said[:2000])
            .execution_options(synchronize_session=False))
        if not getattr(result, "rowcount", 0):
            await session.rollback()
            raise NotTraining(version_id)
        job_id = await session.scalar(select(ModelVersionRow.job_id)
                                      .where(ModelVersionRow.id == version_id))
        if job_id is not None:
            await session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.tenant_id == tenant_id,
                       JobRow.status.in_(ACTIVE))
                .values(status=JOB_CANCELLED, finished_at=now, error=said[:2000],
                        lease_owner=None, lease_expires_at=None)
                .execution_options(synchronize_session=False))
        await session.commit()


async def delete_version(sessions: async_sessionmaker, tenant_id: str, version_id: str) -> bool:
    """The version's row and its ended training job's row gone; False when the shop has no
    such version. `ServedVersion` for the shop's active one, `StillTraining` while it trains
    (both checked in the deleting transaction; the caller serialises it with activations)."""
    async with sessions() as session:
        row = await session.scalar(select(ModelVersionRow).where(
            ModelVersionRow.id == version_id, ModelVersionRow.tenant_id == tenant_id))
        if row is None:
            return False
        job_status = None if row.job_id is None else await session.scalar(
            select(JobRow.status).where(JobRow.id == row.job_id))
        # Training with its job ended unrecorded is shown failed (and may go); with the job
        # queued or running, or not queued yet (POST /models is between its two writes), not.
        if row.state == TRAINING and (job_status is None or job_status in ACTIVE):
            raise StillTraining(version_id)
        active = await session.get(ShopModelRow, tenant_id)
        if active is not None and active.version_id == version_id:
            raise ServedVersion(version_id)
        if row.job_id is not None:
            await session.execute(delete(JobRow).where(
                JobRow.id == row.job_id, JobRow.tenant_id == tenant_id,
                JobRow.status.not_in(ACTIVE)))
        await session.execute(delete(ModelVersionRow).where(
            ModelVersionRow.id == version_id, ModelVersionRow.tenant_id == tenant_id))
        await session.commit()
    return True


async def get_version(sessions: async_sessionmaker, tenant_id: str,
                      version_id: str) -> ModelVersion | None:
    """The shop's version; None for an unknown id and for another shop's alike."""
    async with sessions() as session:
        row = await session.scalar(select(ModelVersionRow).where(
            ModelVersionRow.id == version_id, ModelVersionRow.tenant_id == tenant_id))
    return ModelVersion.of(row) if row is not None else None


def _with_job() -> Select[tuple[ModelVersionRow, JobRow]]:
    """Versions with their training jobs, in one statement: the job (admin_api/training/
    jobs.py) records the version ready before it ends its own row, and two separate reads could
    land between those writes (a version still training beside a job already at 1.0)."""
    return select(ModelVersionRow, JobRow).outerjoin(JobRow, and_(
        JobRow.id == ModelVersionRow.job_id, JobRow.tenant_id == ModelVersionRow.tenant_id))


async def get_version_and_job(sessions: async_sessionmaker, tenant_id: str,
                              version_id: str) -> tuple[ModelVersion, Job | None] | None:
    """The shop's version and its training job as of one moment; None as `get_version`."""
    async with sessions() as session:
        row = (await session.execute(_with_job().where(
            ModelVersionRow.id == version_id, ModelVersionRow.tenant_id == tenant_id))).first()
    if row is None:
        return None
    version, job = row
    return ModelVersion.of(version), None if job is None else Job.of(job)


async def list_versions(sessions: async_sessionmaker, tenant_id: str, *, offset: int = 0,
                        limit: int = 50) -> tuple[list[tuple[ModelVersion, Job | None]], int]:
    """The shop's versions with their training jobs (as `get_version_and_job`), newest first,
    and how many versions there are in all."""
    async with sessions() as session:
        total = await session.scalar(select(func.count()).select_from(ModelVersionRow)
                                     .where(ModelVersionRow.tenant_id == tenant_id))
        rows = (await session.execute(
            _with_job().where(ModelVersionRow.tenant_id == tenant_id)
            .order_by(ModelVersionRow.created_at.desc(), ModelVersionRow.id.desc())
            .offset(offset).limit(limit))).all()
    return ([(ModelVersion.of(version), None if job is None else Job.of(job))
             for version, job in rows], int(total or 0))


async def ready_count(sessions: async_sessionmaker, tenant_id: str) -> int:
    """The shop's own trained models: its versions ready to serve (GET /billing's
    usage.shop_models)."""
    async with sessions() as session:
        found = await session.scalar(select(func.count()).select_from(ModelVersionRow).where(
            ModelVersionRow.tenant_id == tenant_id, ModelVersionRow.state == READY))
    return int(found or 0)


async def get_active(sessions: async_sessionmaker, tenant_id: str) -> Active:
    async with sessions() as session:
        row = await session.get(ShopModelRow, tenant_id)
    if row is None:
        return Active(None, None, None)
    return Active(row.version_id, row.activated_at, row.activated_by)


async def set_active(session: AsyncSession, tenant_id: str, version_id: str | None,
                     actor: str | None) -> Active:
    """Record the shop's active version (None: the base) in the caller's transaction (the
    caller commits: see admin_api/routes/models.py for the order with the workshop)."""
    now = utcnow()
    row = await session.get(ShopModelRow, tenant_id)
    if row is None:
        session.add(ShopModelRow(tenant_id=tenant_id, version_id=version_id, activated_at=now,
                                 activated_by=actor))
    else:
        row.version_id, row.activated_at, row.activated_by = version_id, now, actor
    return Active(version_id, now, actor)
