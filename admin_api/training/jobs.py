"""The `model.train` job: a shop's model version trained in the workshop (bot/workshop.py, in
Rasa's interpreter; never in an admin process), followed until it ends and recorded.

The handler submits the version's snapshot (`POST /train`), then asks `GET /train/{version}`
every POLL seconds: its progress goes to the job (GET /jobs/{id}), its stage words and queue
position to the version (GET /models/{id}; the jobs table has no place for them). Done: the
version is tested and compared in the workshop (admin_api/training/evaluation.py; it stays
`training`, its stage saying "testing: ...", the job's progress going on from TRAINED), then
it is `ready` with the model's fingerprint, size, training time and `evaluation` (the result,
or `{"error": ...}`: a failed evaluation does not fail the version). Failed training: the
version is `failed` and the job fails with the workshop's message.

What can go wrong on the way, and what the handler does:
- The workshop does not know the version (404: it restarted and lost its queue): submit it
  again at once, from the snapshot; a submit of a known version is harmless (200).
- The workshop does not answer (or answers 5xx): keep asking for UNREACHABLE seconds (a
  restart takes some), then give up; the job fails saying so.
- 409 (another version of the shop is in the workshop: one this admin gave up on while the
  workshop still had it): wait for it like for a queue, within the deadline.
- The whole training takes longer than DEADLINE: give up.
Giving up also cancels the version in the workshop (best effort), so it does not hold the
shop's place there.

A designer cancelling the version (POST /models/{id}/cancel) records it and its job cancelled
and tells the workshop (`stop_in_workshop`). The job's worker then loses the job at its next
heartbeat (core/jobs.py: the row is no longer running under its lease) and cancels this
handler, which, finding the version cancelled, tells the workshop again: a training submitted
between the route's word to the workshop and the worker's heartbeat is stopped all the same.
A result that arrives after the cancel records nothing.

The admin process stopping (the worker cancels its job and hands it back to the queue,
admin_api/worker.py) leaves the workshop's training running: the job is claimed again at once
by another admin process or this one restarted, which submits the same version, hears that
the workshop knows it, and follows it on. Cancelling would throw away minutes of training for
a restart of the admin.

These jobs run in workers of their own (`WORKERS` in each admin process, next to the knowledge
worker; admin_api/worker.py `install`), so a training that takes minutes never holds up other
shops' knowledge ingestion. They only wait on the workshop, which has its own queue and limit:
a few at once let it see several shops' trainings and tell each its place in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from admin_api.training import evaluation
from admin_api.training.models import (
    CANCELLED,
    TRAINING,
    fail_version,
    finish_version,
    get_version,
    note_stage,
)
from admin_api.worker import UNEXPECTED, Handler, JobFailed, JobRun
from admin_api.workshop import (
    TrainedModel,
    Training,
    TrainingConflict,
    UnknownVersion,
    WorkshopClient,
    WorkshopUnavailable,
)

log = logging.getLogger(__name__)

TRAIN = "model.train"
POLL = 1.0  # seconds between questions to the workshop (its progress moves about that often)
# A workshop restart (Rasa's import alone is about 5 s) must not fail a training; a workshop
# gone for minutes is an outage the designer should hear about rather than wait on.
UNREACHABLE = 300.0
# Training base + a typical overlay is to take at most 3 min here (issue 15); a queue of
# several shops ahead comes on top. Past an hour something is stuck.
DEADLINE = 3600.0
WORKERS = 3  # model.train jobs followed at once by each admin process
# The job's progress at the end of training; testing takes the rest. Measured here (2 cores):
# training 30-40 s, testing 25-47 s (admin_api/training/evaluation.py).
TRAINED = 0.7


def training_handlers(sessions: async_sessionmaker, workshop: WorkshopClient, *,
                      poll: float = POLL, unreachable: float = UNREACHABLE,
                      deadline: float = DEADLINE) -> dict[str, Handler]:
    """The handler of `model.train` jobs (params: {"version": id}, queued by POST /models)."""

    async def train(run: JobRun) -> dict[str, Any]:
        tenant_id, version_id = run.job.tenant_id, str(run.job.params.get("version"))
        version = await get_version(sessions, tenant_id, version_id)
        if version is None:
            raise JobFailed("the model version to train no longer exists")
        if version.state != TRAINING:  # recorded already (the job was taken over after it)
            return {"version": version_id, "state": version.state}
        follow = _Follow(sessions, workshop, run, version_id, version.files,
                         poll=poll, unreachable=unreachable, deadline=deadline)
        try:
            model = await follow.run()
        except JobFailed as exc:
            await fail_version(sessions, tenant_id, version_id, str(exc))
            raise
        except asyncio.CancelledError:
            await follow.stop_if_cancelled()
            raise
        except Exception:
            await fail_version(sessions, tenant_id, version_id, UNEXPECTED)
            raise
        try:
            tested = await follow.evaluate()
        except asyncio.CancelledError:
            await follow.stop_if_cancelled()
            raise
        if not await finish_version(sessions, tenant_id, version_id,
                                    fingerprint=model.fingerprint, size_bytes=model.size,
                                    training_seconds=model.seconds, evaluation=tested):
            log.info("model trained, but cancelled meanwhile: not recorded", extra=follow.extra)
            return {"version": version_id, "state": CANCELLED}
        log.info("model trained and tested", extra={
            **follow.extra, "seconds": model.seconds, "bytes": model.size,
            "tested": "error" not in tested})
        return {"version": version_id, "fingerprint": model.fingerprint,
                "size_bytes": model.size, "training_seconds": model.seconds,
                "evaluated": "error" not in tested}

    return {TRAIN: train}


async def stop_in_workshop(workshop: WorkshopClient, version_id: str) -> bool:
    """Cancel the version's training and testing in the workshop (whichever it has: a known
    one that ended stays as it ended); False when the workshop could not be told."""
    told = True
    for cancel in (workshop.cancel, workshop.cancel_evaluation):
        try:
            await cancel(version_id)
        except UnknownVersion:
            pass  # not there (never submitted, or the workshop restarted): nothing runs
        except (TrainingConflict, WorkshopUnavailable) as exc:
            log.warning("the workshop was not told to stop a cancelled version: %s", exc,
                        extra={"version": version_id})
            told = False
    return told


class _Follow:
    """One version's training, from submitting it to its end."""

    def __init__(self, sessions: async_sessionmaker, workshop: WorkshopClient, run: JobRun,
                 version_id: str, files: dict[str, str], *, poll: float, unreachable: float,
                 deadline: float) -> None:
        self.sessions, self.workshop, self.job_run = sessions, workshop, run
        self.tenant_id, self.version_id, self.files = run.job.tenant_id, version_id, files
        self.poll, self.unreachable, self.deadline = poll, unreachable, deadline
        self.extra = {"job_id": run.job.id, "tenant_id": self.tenant_id,
                      "version": version_id}
        self._said: tuple[str, int | None] | None = None

    async def stop_if_cancelled(self) -> None:
        """The handler is being cancelled: by the admin stopping (the workshop trains on, see
        the module doc) or, its job cancelled, by the worker; then the workshop stops too."""
        version = await get_version(self.sessions, self.tenant_id, self.version_id)
        if version is not None and version.state == CANCELLED:
            log.info("the version was cancelled; stopping it in the workshop", extra=self.extra)
            await stop_in_workshop(self.workshop, self.version_id)

    async def evaluate(self) -> dict[str, Any]:
        """The trained version's evaluation, or {"error": ...}; never fails the job."""
        try:
            against, against_files = await evaluation.comparison(self.sessions,
                                                                  self.tenant_id)
            messages = await evaluation.visitor_texts(self.sessions, self.tenant_id)
            await self._say("trained; testing it", 0)
            return await evaluation.follow(
                self.workshop, self.tenant_id, self.version_id, self.files, against,
                against_files, messages, say=lambda stage: self._say(stage, 0),
                report=lambda p: self.job_run.report(TRAINED + (1 - TRAINED) * p),
                poll=self.poll, unreachable=self.unreachable)
        except Exception:
            log.exception("testing a trained version failed unexpectedly", extra=self.extra)
            return {"error": "testing failed unexpectedly; the error was logged for the "
                             "operators"}

    async def run(self) -> TrainedModel:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.deadline
        silent_since: float | None = None
        submitted = False
        while True:
            status: Training | None = None
            try:
                if submitted:
                    status = await self.workshop.training(self.version_id)
                else:
                    status = await self.workshop.train(self.tenant_id, self.version_id,
                                                       self.files)
                    submitted = True
                silent_since = None
            except UnknownVersion:
                log.info("the workshop does not know the version; submitting it again",
                         extra=self.extra)
                await self._say("the workshop restarted; submitting the training again", None)
                if submitted:
                    submitted = False
                    continue  # at once: nothing to wait for
            except TrainingConflict as exc:
                silent_since = None
                await self._say(f"waiting for the workshop: {exc}", None)
            except WorkshopUnavailable as exc:
                silent_since = silent_since if silent_since is not None else loop.time()
                log.warning("the workshop did not answer about a training: %s", exc,
                            extra=self.extra)
                if loop.time() - silent_since > self.unreachable:
                    await self._give_up()
                    raise JobFailed(
                        f"the workshop, which trains models, did not answer for "
                        f"{self.unreachable / 60:.0f} minutes; train the version again "
                        "later") from None
                await self._say("the workshop does not answer; asking again",
                                self._said[1] if self._said else None)
            if status is not None:
                ended = await self._heard(status)
                if ended is not None:
                    return ended
            if loop.time() > give_up_at:
                await self._give_up()
                raise JobFailed(f"the training did not end within {self.deadline / 60:.0f} "
                                "minutes and was stopped; train the version again")
            await asyncio.sleep(self.poll)

    async def _heard(self, status: Training) -> TrainedModel | None:
        """Record what the workshop said; the model once the training is done."""
        if status.state == "failed":
            log.info("training failed in the workshop", extra={**self.extra,
                                                               "error": status.error})
            raise JobFailed(f"training failed: {status.error or 'the workshop gave no reason'}")
        if status.state == "done":
            model = status.model
            if model is None:
                raise JobFailed("the workshop finished the training without a model")
            return model
        self.job_run.report(TRAINED * status.progress)
        stage = status.stage or ("waiting in the workshop's queue" if status.state == "queued"
                                 else "training")
        await self._say(stage, status.position)
        return None

    async def _say(self, stage: str, position: int | None) -> None:
        """The stage and queue position on the version, when they changed."""
        if self._said != (stage, position):
            self._said = (stage, position)
            await note_stage(self.sessions, self.tenant_id, self.version_id, stage, position)

    async def _give_up(self) -> None:
        """Free the shop's place in the workshop (it may be there still, unheard)."""
        with contextlib.suppress(UnknownVersion, TrainingConflict, WorkshopUnavailable):
            await self.workshop.cancel(self.version_id)
