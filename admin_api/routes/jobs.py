"""Background jobs of the shop (knowledge ingestion, model training): how far along one is, and
how it ended. Jobs are queued by other routes (POST /knowledge/documents answers
`{"job": {...}}`, POST /models too); admin_api/worker.py runs them. A model version's training
cancelled by a designer (POST /models/{id}/cancel) shows its job `cancelled`, with who
cancelled it in `error`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import Field

from admin_api.api import API, Call, Model, Page, PageQuery
from admin_api.errors import NotFound
from admin_api.principal import DESIGNERS
from core.jobs import Job, get_job, list_jobs

_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]


class JobOut(Model):
    id: str
    kind: str = Field(description="knowledge.ingest | knowledge.delete | knowledge.reindex | "
                                  "model.train")
    status: JobStatus = Field(description="queued, running, then done, failed or cancelled")
    progress: float = Field(ge=0, le=1, description="0..1; 1 once done")
    result: dict[str, Any] | None = Field(
        description="what the job did, once done (e.g. the document's id and chunk count)")
    error: str | None = Field(description="why it failed, for people, or who cancelled it; "
                                          "null otherwise")
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(id=job.id, kind=job.kind, status=cast(JobStatus, job.status),
                   progress=round(job.progress, 3), result=job.result, error=job.error,
                   created_by=job.created_by, created_at=job.created_at,
                   started_at=job.started_at, finished_at=job.finished_at)


class JobFilter(PageQuery):
    kind: str | None = Field(None, max_length=32, pattern=r"^[a-z][a-z0-9._-]*$",
                             description="only jobs of this kind")
    status: JobStatus | None = None


@API.route("GET", "/jobs/{job_id}", roles=DESIGNERS, response=JobOut,
           summary="Read a background job")
async def read_job(call: Call[None, None]) -> JobOut:
    """Poll this until `status` is done, failed or cancelled; `progress` moves from 0 to 1
    meanwhile."""
    job_id = call.path["job_id"]
    # Only a well-formed id reaches the database (PostgreSQL refuses a NUL byte with an error).
    job = (await get_job(call.ctx.sessions, call.shop, job_id)
           if _JOB_ID.fullmatch(job_id) else None)
    if job is None:
        raise NotFound("no such job in your shop")
    return JobOut.of(job)


@API.route("GET", "/jobs", roles=DESIGNERS, query=JobFilter, response=Page[JobOut],
           summary="List the shop's background jobs")
async def list_background_jobs(call: Call[None, JobFilter]) -> Page[JobOut]:
    """Newest first."""
    found, total = await list_jobs(call.ctx.sessions, call.shop, offset=call.query.offset,
                                   limit=call.query.page_size, kind=call.query.kind,
                                   status=call.query.status)
    return Page[JobOut](items=[JobOut.of(job) for job in found], total=total,
                        page=call.query.page, page_size=call.query.page_size)
