"""Background jobs (knowledge ingestion now, training later): a row per job that any process can
claim, with progress and a result, so the API that queued it answers `GET /jobs/{id}`.

A job is queued by an API request and run off the request path by a worker that claims it with
a lease (the same idea as connectors/leases.py): a worker that dies leaves an expired lease that
another worker takes over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow

JOB_STATES = ("queued", "running", "done", "failed")


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
