"""Background jobs on a real database (SQLite, and PostgreSQL when it answers): a queued job is
run by exactly one worker however many ask at once, a dead worker's job is taken over when its
lease runs out (and given up after MAX_ATTEMPTS), one shop's jobs run one at a time, and only
the lease holder writes progress and the outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core import jobs
from core.db import create_engine, session_factory, utcnow
from core.jobs import JobRow
from core.settings import async_database_url
from tests.databases import database_params, migrated_url

pytestmark = pytest.mark.asyncio
SHOP, OTHER = "shop-a", "shop-b"


@pytest_asyncio.fixture(params=database_params())
async def database(request: pytest.FixtureRequest,
                   tmp_path: Path) -> AsyncIterator[tuple[str, async_sessionmaker]]:
    url = async_database_url(migrated_url(request.param, tmp_path))
    engine = create_engine(url)
    try:
        yield url, session_factory(engine)
    finally:
        await engine.dispose()


async def expire_leases(sessions: async_sessionmaker) -> None:
    """What the clock does to a dead worker's lease."""
    async with sessions() as session:
        await session.execute(update(JobRow).where(JobRow.status == "running")
                              .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()


async def test_a_queued_job_is_claimed_by_exactly_one_of_many_workers(
        database: tuple[str, async_sessionmaker]) -> None:
    url, sessions = database
    queued = await jobs.enqueue(sessions, SHOP, "knowledge.ingest", {"source": "a.md"}, "key:x")
    # Eight "processes": each its own engine (own connection pool), all claiming at once.
    engines: list[AsyncEngine] = [create_engine(url) for _ in range(8)]
    try:
        claims = await asyncio.gather(*(
            jobs.claim(session_factory(engine), f"worker-{n}")
            for n, engine in enumerate(engines)))
    finally:
        for engine in engines:
            await engine.dispose()
    won = [job for job in claims if job is not None]
    assert len(won) == 1
    assert won[0].id == queued.id and won[0].status == "running" and won[0].attempts == 1
    assert won[0].params == {"source": "a.md"} and won[0].started_at is not None
    assert await jobs.claim(sessions, "late") is None  # nothing left to run


async def test_progress_and_the_outcome_are_written_only_by_the_lease_holder(
        database: tuple[str, async_sessionmaker]) -> None:
    _, sessions = database
    job = await jobs.enqueue(sessions, SHOP, "knowledge.ingest")
    fresh = await jobs.get_job(sessions, SHOP, job.id)
    assert fresh is not None and fresh.status == "queued" and fresh.progress == 0.0
    claimed = await jobs.claim(sessions, "me")
    assert claimed is not None

    assert await jobs.report_progress(sessions, job.id, "me", 0.4)
    assert not await jobs.report_progress(sessions, job.id, "someone-else", 0.9)
    seen = await jobs.get_job(sessions, SHOP, job.id)
    assert seen is not None and seen.status == "running" and seen.progress == pytest.approx(0.4)

    assert not await jobs.finish(sessions, job.id, "someone-else", {"chunks": 1})
    assert await jobs.finish(sessions, job.id, "me", {"chunks": 12})
    done = await jobs.get_job(sessions, SHOP, job.id)
    assert done is not None and done.status == "done" and done.progress == 1.0
    assert done.result == {"chunks": 12} and done.error is None and done.finished_at is not None
    # Finished is final: a late report from the same worker changes nothing.
    assert not await jobs.report_progress(sessions, job.id, "me", 0.5)
    assert not await jobs.fail(sessions, job.id, "me", "too late")


async def test_another_shops_job_is_not_found(database: tuple[str, async_sessionmaker]) -> None:
    _, sessions = database
    job = await jobs.enqueue(sessions, SHOP, "knowledge.reindex")
    assert await jobs.get_job(sessions, OTHER, job.id) is None
    assert await jobs.get_job(sessions, SHOP, "not-a-job") is None
    mine, total = await jobs.list_jobs(sessions, SHOP)
    theirs, none = await jobs.list_jobs(sessions, OTHER)
    assert [j.id for j in mine] == [job.id] and total == 1 and theirs == [] and none == 0


async def test_a_dead_workers_job_is_taken_over_when_its_lease_runs_out(
        database: tuple[str, async_sessionmaker]) -> None:
    _, sessions = database
    job = await jobs.enqueue(sessions, SHOP, "knowledge.ingest")
    assert (await jobs.claim(sessions, "dies")) is not None
    await jobs.report_progress(sessions, job.id, "dies", 0.3)
    assert await jobs.claim(sessions, "successor") is None  # its lease is alive: hands off

    await expire_leases(sessions)
    taken = await jobs.claim(sessions, "successor")
    assert taken is not None and taken.id == job.id and taken.attempts == 2
    # The dead worker, should it wake up, no longer owns the job.
    assert not await jobs.finish(sessions, job.id, "dies", {"chunks": 1})
    assert await jobs.finish(sessions, job.id, "successor", {"chunks": 2})
    final = await jobs.get_job(sessions, SHOP, job.id)
    assert final is not None and final.result == {"chunks": 2}


async def test_a_job_that_keeps_killing_its_workers_is_given_up_with_a_message(
        database: tuple[str, async_sessionmaker]) -> None:
    _, sessions = database
    job = await jobs.enqueue(sessions, SHOP, "knowledge.ingest")
    for n in range(jobs.MAX_ATTEMPTS):
        claimed = await jobs.claim(sessions, f"worker-{n}")
        assert claimed is not None and claimed.attempts == n + 1
        await expire_leases(sessions)
    assert await jobs.claim(sessions, "next") is None
    failed = await jobs.get_job(sessions, SHOP, job.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error and "interrupted 3 times" in failed.error
    assert "Traceback" not in failed.error


async def test_one_shops_jobs_run_one_at_a_time_in_order_others_run_alongside(
        database: tuple[str, async_sessionmaker]) -> None:
    _, sessions = database
    first = await jobs.enqueue(sessions, SHOP, "knowledge.ingest")
    second = await jobs.enqueue(sessions, SHOP, "knowledge.delete")
    theirs = await jobs.enqueue(sessions, OTHER, "knowledge.ingest")

    a = await jobs.claim(sessions, "w1")
    b = await jobs.claim(sessions, "w2")
    assert a is not None and b is not None
    assert (a.id, b.id) == (first.id, theirs.id)  # not `second`: its shop is busy
    assert await jobs.claim(sessions, "w3") is None
    await jobs.finish(sessions, first.id, "w1", {})
    c = await jobs.claim(sessions, "w3")
    assert c is not None and c.id == second.id


async def test_a_shops_upload_does_not_wait_for_its_model_training(
        database: tuple[str, async_sessionmaker]) -> None:
    """Families run side by side for one shop; within one, and for kinds in none, one at a
    time."""
    _, sessions = database
    training = await jobs.enqueue(sessions, SHOP, "model.train")
    upload = await jobs.enqueue(sessions, SHOP, "knowledge.ingest")
    second_training = await jobs.enqueue(sessions, SHOP, "model.train")
    a = await jobs.claim(sessions, "workshop", kinds=("model.train",))
    b = await jobs.claim(sessions, "kb", kinds=("knowledge.ingest",))
    assert a is not None and b is not None and (a.id, b.id) == (training.id, upload.id)
    assert await jobs.claim(sessions, "workshop-2", kinds=("model.train",)) is None
    await jobs.finish(sessions, b.id, "kb", {})
    odd = await jobs.enqueue(sessions, SHOP, "export.run")  # in no family: waits for all
    assert await jobs.claim(sessions, "any", kinds=("export.run",)) is None
    await jobs.finish(sessions, a.id, "workshop", {})
    c = await jobs.claim(sessions, "any")
    assert c is not None and c.id == second_training.id
    assert await jobs.claim(sessions, "any-2", kinds=("export.run",)) is None
    await jobs.finish(sessions, c.id, "any", {})
    d = await jobs.claim(sessions, "any-2")
    assert d is not None and d.id == odd.id


async def test_one_shops_jobs_never_run_together_when_many_workers_claim_at_once(
        database: tuple[str, async_sessionmaker]) -> None:
    url, sessions = database
    for n in range(5):
        await jobs.enqueue(sessions, SHOP, "knowledge.ingest", {"n": n})
    engines = [create_engine(url) for _ in range(6)]
    try:
        claims = await asyncio.gather(*(
            jobs.claim(session_factory(engine), f"worker-{n}")
            for n, engine in enumerate(engines)))
    finally:
        for engine in engines:
            await engine.dispose()
    won = [job for job in claims if job is not None]
    assert len(won) == 1 and won[0].params == {"n": 0}


async def test_a_worker_claims_only_the_kinds_it_runs(
        database: tuple[str, async_sessionmaker]) -> None:
    _, sessions = database
    await jobs.enqueue(sessions, SHOP, "training.run")
    assert await jobs.claim(sessions, "kb", kinds=("knowledge.ingest",)) is None
    other = await jobs.claim(sessions, "trainer", kinds=("training.run",))
    assert other is not None and other.kind == "training.run"
    active = await jobs.active_jobs(sessions, SHOP, "training.")
    assert [j.id for j in active] == [other.id]


async def test_asking_when_nothing_waits_reads_and_writes_nothing(
        database: tuple[str, async_sessionmaker]) -> None:
    """Every admin process's workers ask every second or two: idle, that is one read each."""
    _, sessions = database
    done = await jobs.enqueue(sessions, SHOP, "knowledge.ingest")
    assert await jobs.claim(sessions, "kb") is not None
    await jobs.finish(sessions, done.id, "kb", {"chunks": 1})
    await jobs.enqueue(sessions, SHOP, "training.run")  # waiting, but for another worker
    engine = sessions.kw["bind"]
    statements: list[str] = []
    listen = (engine.sync_engine, "before_cursor_execute")

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(*listen, seen)
    try:
        assert await jobs.claim(sessions, "kb", kinds=("knowledge.ingest",)) is None
    finally:
        event.remove(*listen, seen)
    assert statements == ["SELECT"], statements


async def test_a_released_job_is_queued_again_without_counting_the_attempt(
        database: tuple[str, async_sessionmaker]) -> None:
    _, sessions = database
    job = await jobs.enqueue(sessions, SHOP, "knowledge.ingest")
    assert (await jobs.claim(sessions, "stopping")) is not None
    await jobs.report_progress(sessions, job.id, "stopping", 0.7)
    assert not await jobs.release(sessions, job.id, "someone-else")
    assert await jobs.release(sessions, job.id, "stopping")
    back = await jobs.get_job(sessions, SHOP, job.id)
    assert back is not None and back.status == "queued" and back.progress == 0
    assert back.attempts == 0
    again = await jobs.claim(sessions, "successor")  # at once: no lease to wait out
    assert again is not None and again.id == job.id and again.attempts == 1
