"""The job runner inside the admin process: claims queued jobs (core/jobs.py), runs them off the
request path, reports their progress and records how they ended.

Every admin process runs one worker for knowledge jobs (and a few for shops' model training,
`install_training`, which only wait on the workshop); leases make several processes safe (a job
runs once, a dead process's job is taken over). The worker polls every POLL seconds; a request
that queues a job in this process wakes it at once, so a job starts within milliseconds here and
within POLL elsewhere. It runs one job at a time: ingestion is CPU work (embedding, in a thread
via asyncio.to_thread, never on the event loop), and a second job at once would only share the
same cores. While a job runs, the worker writes its progress and renews its lease every
HEARTBEAT seconds; if the lease was lost (the process stalled longer than the lease and another
worker took the job), it stops working on it.

A job ends `done` with its handler's result, or `failed` with a sentence for people: the
handler's JobFailed message (a PDF without text), or a generic one for an unexpected error,
whose traceback goes to the log, never to the caller. A worker that is stopped (the server
shuts down) interrupts its job and hands it back to the queue, so another process, or this one
restarted, runs it again at once instead of after the lease runs out.

Measured through the real stack (tests/integration/test_knowledge_api.py, embedded, model
warmed at start): the upload answered in 71 ms, its job done 2.0 s later, and the first answer
citing the new document 2.1 s after that (a whole turn: the action server loads the new index
version on that turn's search).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sanic import Sanic
from sqlalchemy.ext.asyncio import async_sessionmaker

from core import jobs
from core.jobs import Job
from core.settings import Settings
from core.tasks import wait_or_cancel
from knowledge.embeddings import get_embedder
from knowledge.index import IndexFiles
from knowledge.library import BadDocument, Library, Uploads

log = logging.getLogger(__name__)

POLL = 1.0  # seconds between looks for jobs queued by other processes
HEARTBEAT = 1.0  # seconds between progress writes (and lease renewals) of a running job
UNEXPECTED = "the job failed unexpectedly; the error was logged for the operators"

# The kinds of knowledge jobs (the routes queue them, the handlers below run them).
INGEST = "knowledge.ingest"
DELETE = "knowledge.delete"
REINDEX = "knowledge.reindex"


class JobFailed(Exception):
    """A job cannot be done, for a reason its caller should read (no traceback, no secret)."""


@dataclass
class JobRun:
    """What a handler gets: the job and a progress meter that any thread may move."""

    job: Job
    progress: float = 0.0

    def report(self, fraction: float) -> None:
        # Called from the embedding thread too: a float assignment is atomic, and the
        # heartbeat writes whatever is latest. Never backwards, and 1 only once done.
        self.progress = max(self.progress, min(float(fraction), 0.99))


Handler = Callable[[JobRun], Coroutine[Any, Any, dict[str, Any]]]


def worker_name() -> str:
    """This process's name on its leases (a restarted process with the same pid is another)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(self, sessions: async_sessionmaker, handlers: Mapping[str, Handler], *,
                 owner: str | None = None, poll: float = POLL, heartbeat: float = HEARTBEAT,
                 lease: timedelta = jobs.LEASE) -> None:
        self.sessions = sessions
        self.handlers = dict(handlers)
        self.owner = owner or worker_name()
        self.poll = poll
        self.heartbeat = heartbeat
        self.lease = lease
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._current: asyncio.Task[dict[str, Any]] | None = None  # the job being run

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run_forever(), name="job-worker")
        return self._task

    def wake(self) -> None:
        """A job was queued in this process: look now, not at the next poll."""
        self._wake.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop taking jobs. A job being run is interrupted and handed back to the queue, so
        another admin process (or this one, restarted) runs it again at once: a shutdown
        neither waits for a long ingestion nor leaves it to the lease's expiry."""
        self._stopping = True
        self._wake.set()
        if self._current is not None:
            self._current.cancel()
        if self._task is not None:
            await wait_or_cancel(self._task, timeout)

    async def run_forever(self) -> None:
        log.info("job worker started", extra={"owner": self.owner, "kinds": sorted(self.handlers)})
        while not self._stopping:
            try:
                ran = await self.run_once()
            except Exception:
                log.exception("job worker: claiming failed; trying again")
                ran = None
            if ran is None and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll)

    async def run_once(self) -> Job | None:
        """Claim one job and run it to its end; None when there was nothing to run."""
        job = await jobs.claim(self.sessions, self.owner, kinds=tuple(self.handlers),
                               lease=self.lease)
        if job is None:
            return None
        await self._run(job)
        return job

    async def _run(self, job: Job) -> None:
        run = JobRun(job)
        extra = {"job_id": job.id, "tenant_id": job.tenant_id, "kind": job.kind,
                 "attempt": job.attempts}
        log.info("job started", extra=extra)
        work: asyncio.Task[dict[str, Any]] = asyncio.create_task(
            self.handlers[job.kind](run), name=f"job-{job.id}")
        self._current = work
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=self.heartbeat)
                if done:
                    break
                try:
                    ours = await jobs.report_progress(self.sessions, job.id, self.owner,
                                                      run.progress, lease=self.lease)
                except Exception:  # the database blinked: the lease is long enough to retry
                    log.warning("job progress not recorded", exc_info=True, extra=extra)
                    continue
                if not ours:
                    log.info("job no longer ours (cancelled, or its lease taken over by "
                             "another worker); stopping it here", extra=extra)
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await work
                    return
        finally:
            self._current = None
            if not work.done():  # this coroutine was cancelled: the job must not run on
                work.cancel()
        if work.cancelled():  # stop(): hand the job back for a prompt restart elsewhere
            await jobs.release(self.sessions, job.id, self.owner)
            log.info("job handed back to the queue (shutting down)", extra=extra)
            return
        try:
            result = work.result()
        except JobFailed as exc:
            log.info("job failed", extra={**extra, "error": str(exc)})
            await jobs.fail(self.sessions, job.id, self.owner, str(exc))
        except Exception:
            log.exception("job crashed", extra=extra)
            await jobs.fail(self.sessions, job.id, self.owner, UNEXPECTED)
        else:
            await jobs.finish(self.sessions, job.id, self.owner, result)
            log.info("job done", extra=extra)


def knowledge_handlers(library: Library) -> dict[str, Handler]:
    """The knowledge base's jobs; their params are written by admin_api/routes/knowledge.py."""

    async def ingest(run: JobRun) -> dict[str, Any]:
        params = run.job.params
        try:
            return await library.add(run.job.tenant_id, params["source"], params["upload"],
                                     run.report)
        except BadDocument as exc:
            raise JobFailed(str(exc)) from None
        except FileNotFoundError:
            raise JobFailed("the uploaded file is no longer there; upload it again") from None

    async def delete(run: JobRun) -> dict[str, Any]:
        return await library.remove(run.job.tenant_id, run.job.params["source"], run.report)

    async def reindex(run: JobRun) -> dict[str, Any]:
        return await library.reindex(run.job.tenant_id, run.report)

    return {INGEST: ingest, DELETE: delete, REINDEX: reindex}


def library_for(settings: Settings, sessions: async_sessionmaker) -> Library:
    """The shop knowledge bases on this deployment's storage, embedded as the CLI does (the
    same model and precision, so the same file gives the same vectors and answers)."""
    return Library(sessions, IndexFiles(settings.knowledge_dir),
                   Uploads.under(settings.knowledge_dir),
                   lambda: get_embedder(precision=settings.embed_precision))


async def _warm(library: Library) -> None:
    try:
        await library.warm()
    except Exception:
        log.warning("embedding model not loaded ahead; the first job loads it", exc_info=True)


def install(app: Sanic, settings: Settings) -> None:
    """Start the worker with the server (after the connections are open) and stop it first."""

    @app.after_server_start
    async def start_worker(app: Sanic) -> None:
        app.ctx.library = library_for(settings, app.ctx.sessions)
        app.ctx.worker = None
        # Tests that drive the app through Sanic's ASGI test client (which starts and stops
        # the "server" around every request) turn this off and run a Worker of their own.
        if app.config.get("JOB_WORKER", True):
            app.ctx.worker = Worker(app.ctx.sessions, knowledge_handlers(app.ctx.library))
            app.ctx.worker.start()
            # Load the embedding model now, in a thread, rather than in the first upload's job
            # (seconds; tens of seconds on a busy machine): that job is then done sooner. Not
            # under Sanic's test client, which starts the app around every request, nor where
            # KNOWLEDGE_WARM is false (processes that never ingest keep the CPU and memory).
            if settings.knowledge_warm and not Sanic.test_mode:
                app.ctx.warming = asyncio.create_task(_warm(app.ctx.library),
                                                      name="warm-embedder")

    @app.before_server_stop
    async def stop_worker(app: Sanic) -> None:
        if getattr(app.ctx, "worker", None) is not None:
            await app.ctx.worker.stop()

    install_training(app)
    install_webhooks(app, settings)


def install_training(app: Sanic) -> None:
    """Workers of their own for shops' model training (admin_api/training/jobs.py): a training
    waits minutes on the workshop, and the knowledge worker runs one job at a time, so sharing
    it would hold other shops' ingestion up that long. JOB_WORKER=False turns them off too;
    TRAINING_POLL in the app's config sets how often they ask the workshop (tests)."""
    # Imported here: admin_api.training.jobs builds on this module's Worker and JobFailed.
    from admin_api.training.jobs import POLL, WORKERS, training_handlers

    @app.after_server_start
    async def start_training_workers(app: Sanic) -> None:
        app.ctx.training_workers = []
        if app.config.get("JOB_WORKER", True):
            handlers = training_handlers(app.ctx.sessions, app.ctx.workshop,
                                         poll=float(app.config.get("TRAINING_POLL", POLL)))
            app.ctx.training_workers = [Worker(app.ctx.sessions, handlers)
                                        for _ in range(WORKERS)]
            for worker in app.ctx.training_workers:
                worker.start()

    @app.before_server_stop
    async def stop_training_workers(app: Sanic) -> None:
        await asyncio.gather(*(worker.stop() for worker in
                               getattr(app.ctx, "training_workers", [])))


def install_webhooks(app: Sanic, settings: Settings) -> None:
    """Shops' webhooks are sent from every admin process (admin_api/webhooks.py: each event
    once, whichever process takes it). WEBHOOK_WORKER=False in the app's config turns it off
    (tests that run a Dispatcher of their own)."""
    # Imported here: admin_api.webhooks names conversations as the admin routes do
    # (admin_api/routes/conversations.py), and the routes import this module.
    from admin_api.webhooks import Dispatcher

    @app.after_server_start
    async def start_webhooks(app: Sanic) -> None:
        app.ctx.webhooks = None
        if app.config.get("WEBHOOK_WORKER", True):
            # As for the subscriptions' URLs (admin_api/routes/webhooks.py): private
            # network targets only where ALLOW_PRIVATE_DESTINATIONS says (development).
            app.ctx.webhooks = Dispatcher(app.ctx.sessions, app.ctx.box,
                                          settings.conversation_id_key, owner=worker_name(),
                                          destinations=settings.destinations)
            app.ctx.webhooks.start()

    @app.before_server_stop
    async def stop_webhooks(app: Sanic) -> None:
        if getattr(app.ctx, "webhooks", None) is not None:
            await app.ctx.webhooks.stop()
