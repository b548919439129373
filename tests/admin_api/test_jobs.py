"""Background jobs as callers see them (GET /jobs/{id}, GET /jobs) and as the admin process's
worker runs them: progress that moves while a job runs, a result once done, a failure that
says why without a traceback, a shutdown that hands the job back for a prompt restart, and
two workers that never run one job twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from admin_api.worker import JobFailed, JobRun, Worker
from core import jobs
from tests.admin_api.conftest import Admin

pytestmark = pytest.mark.asyncio
KIND = "test.work"


async def read(admin: Admin, job_id: str, **kwargs: Any) -> dict[str, Any]:
    status, body = await admin.call("GET", f"/jobs/{job_id}", **kwargs)
    assert status == 200, body
    return body


async def until(predicate: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


async def test_a_job_reports_progress_while_it_runs_then_its_result(admin: Admin) -> None:
    admin.app.config.JOB_WORKER = False
    gate = asyncio.Event()

    async def work(run: JobRun) -> dict[str, Any]:
        run.report(0.5)
        await gate.wait()
        return {"chunks": 7, "params": run.job.params}

    worker = Worker(admin.sessions, {KIND: work}, poll=0.02, heartbeat=0.05)
    job = await jobs.enqueue(admin.sessions, admin.demo.id, KIND, {"source": "a.md"}, "key:x")
    queued = await read(admin, job.id, role="designer")
    assert queued["status"] == "queued" and queued["progress"] == 0
    assert queued["result"] is None and queued["started_at"] is None

    worker.start()
    try:
        async def halfway() -> bool:
            body = await read(admin, job.id)
            return body["status"] == "running" and body["progress"] == 0.5
        await until(halfway)
        gate.set()

        async def finished() -> bool:
            return (await read(admin, job.id))["status"] == "done"
        await until(finished)
    finally:
        await worker.stop()
    done = await read(admin, job.id)
    assert done["progress"] == 1 and done["error"] is None
    assert done["result"] == {"chunks": 7, "params": {"source": "a.md"}}
    assert set(done) == {"id", "kind", "status", "progress", "result", "error", "created_by",
                         "created_at", "started_at", "finished_at"}

    status, page = await admin.call("GET", f"/jobs?kind={KIND}", role="designer")
    assert status == 200 and page["total"] == 1 and page["items"][0]["id"] == job.id


async def test_a_failed_job_says_why_and_an_unexpected_error_says_nothing_internal(
        admin: Admin) -> None:
    async def refuses(run: JobRun) -> dict[str, Any]:
        raise JobFailed("report.pdf: no text found (a scan? upload its text instead)")

    async def crashes(run: JobRun) -> dict[str, Any]:
        raise RuntimeError("/srv/secret/path exploded")

    worker = Worker(admin.sessions, {"test.refuses": refuses, "test.crashes": crashes})
    refused = await jobs.enqueue(admin.sessions, admin.demo.id, "test.refuses")
    crashed = await jobs.enqueue(admin.sessions, admin.demo.id, "test.crashes")
    assert (await worker.run_once()) is not None and (await worker.run_once()) is not None

    body = await read(admin, refused.id)
    assert body["status"] == "failed" and body["error"].startswith("report.pdf: no text found")
    assert body["finished_at"] and body["result"] is None
    body = await read(admin, crashed.id)
    assert body["status"] == "failed" and "secret" not in body["error"]
    assert "Traceback" not in body["error"] and "unexpectedly" in body["error"]


async def test_a_shutdown_hands_the_running_job_back_for_another_worker(admin: Admin) -> None:
    started = asyncio.Event()

    async def slow(run: JobRun) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(60)
        return {}

    async def quick(run: JobRun) -> dict[str, Any]:
        return {"by": "successor"}

    first = Worker(admin.sessions, {KIND: slow}, poll=0.02, heartbeat=0.05)
    job = await jobs.enqueue(admin.sessions, admin.demo.id, KIND)
    first.start()
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.wait_for(first.stop(), 5)  # promptly, not after the job's minute
    back = await read(admin, job.id)
    assert back["status"] == "queued" and back["progress"] == 0

    successor = Worker(admin.sessions, {KIND: quick})
    assert (await successor.run_once()) is not None
    done = await read(admin, job.id)
    assert done["status"] == "done" and done["result"] == {"by": "successor"}


async def test_two_workers_run_each_job_once(admin: Admin) -> None:
    ran: list[str] = []

    async def work(run: JobRun) -> dict[str, Any]:
        ran.append(run.job.id)
        await asyncio.sleep(0.05)
        return {}

    queued = [await jobs.enqueue(admin.sessions, shop.id, KIND)
              for shop in (admin.demo, admin.other) for _ in range(3)]
    workers = [Worker(admin.sessions, {KIND: work}, poll=0.02, heartbeat=0.05)
               for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        async def all_done() -> bool:
            states = [(await jobs.get_job(admin.sessions, j.tenant_id, j.id)) for j in queued]
            return all(s is not None and s.status == "done" for s in states)
        await until(all_done)
    finally:
        for worker in workers:
            await worker.stop()
    assert sorted(ran) == sorted(j.id for j in queued)


async def test_jobs_are_for_owners_and_designers_of_the_same_shop(admin: Admin) -> None:
    job = await jobs.enqueue(admin.sessions, admin.other.id, KIND)
    status, body = await admin.call("GET", f"/jobs/{job.id}")
    assert status == 404 and body["detail"]
    status, body = await admin.call("GET", "/jobs/not-a-job")
    assert status == 404
    mine = await jobs.enqueue(admin.sessions, admin.demo.id, KIND)
    for path in (f"/jobs/{mine.id}", "/jobs"):
        status, body = await admin.call("GET", path, role="agent")
        assert status == 403 and body["detail"]
    status, page = await admin.call("GET", "/jobs")
    assert [item["id"] for item in page["items"]] == [mine.id]
