"""The shop's own model versions (issue 15): trained from its drafts, watched, activated, rolled
back. Designers and owners.

`POST /models` checks the drafts as POST /training/validate does (ours and Rasa's; refused with
422 and the same errors when they do not pass, 503 when Rasa's checks cannot run), snapshots
them into a new version and queues its `model.train` job (admin_api/training/jobs.py), which
trains it in the workshop. One version of a shop trains at a time (409 names the one training).
Drafts exactly as a ready version was trained from are not trained again (minutes of the
workshop's CPU for the same model): 409 names that version (`id`, `state` ready, `active`), so
the designer activates it, or changes a draft first.
`GET /models[/{id}]` shows each version: queued, training (progress and the workshop's stage;
after the training itself, "testing: ..." while it is tested and compared), ready, failed
(why) or cancelled (by whom), with its snapshot's files, fingerprint, size, training time, its
`evaluation` and whether the shop's bot serves it. `POST /models/{id}/activate` switches the
shop's bot to a ready version (any earlier one too: that is a rollback); the id `base` names
the base model every shop starts with, there and in GET /models/base.

`POST /models/{id}/cancel` stops a version that is queued or training (testing included): an
action on the version, like activate, that leaves it listed as `cancelled`, rather than a
DELETE, which would leave nothing to read back. The version and its job are recorded
cancelled first, in one transaction (a queued job is then never claimed; a running one's
worker loses it at its next heartbeat, within a second, and the next of the shop's jobs may
start), then the workshop is told (DELETE /train and /evaluate: its trainer process is
killed and its slot goes to the next training). A workshop that does not answer does not undo
the cancel: one that restarted has forgotten the training anyway, and one that was only slow
is told again by the job's handler as it stops (admin_api/training/jobs.py). Cancelling a
version that has ended is 409.

`DELETE /models/{id}` removes a version that is neither training (409: cancel it first) nor
the one the shop's bot serves (409: activate another first): the workshop deletes its model
file first (503 when it cannot: nothing is deleted, and a retry does it), then its row and its
job's row go; serialised with activations of the shop, so a version is never deleted while it
is being activated.

Reading never waits on the workshop or on a job: GET /models[/{id}] reads our tables only,
whatever is training or being tested. Activating another version while one is tested is
allowed: the version under test is compared with the version that was active when its
training ended (its `evaluation.against` names it), whatever is activated meanwhile.

Activating tells the workshop first (`PUT /shops/{shop}/active`: the bot runtime follows the
file it writes within about a second) and records the switch after. The workshop's file is what
visitors get, so it goes first: if the workshop cannot be told (503, or 409 when its model file
is gone) nothing is recorded and the shop keeps what it had, and GET /models never says a
version is active that the bot does not serve. If recording fails after the workshop switched,
the workshop is switched back (best effort) and the call fails; a retry does both again (the
workshop's PUT is idempotent). Two activations of one shop at once are serialised (a
PostgreSQL advisory lock across processes; an asyncio lock in one process, which is what SQLite
deployments are), so the workshop and our record end on the same version.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import text

from admin_api.api import API, Call, Model, Page, PageQuery
from admin_api.audit import record
from admin_api.errors import Conflict, NotFound, Unavailable, Unprocessable
from admin_api.plan_limits import require_own_models
from admin_api.principal import DESIGNERS
from admin_api.routes.training import check_drafts
from admin_api.training.drafts import file_of, read_contents
from admin_api.training.jobs import TRAIN, stop_in_workshop
from admin_api.training.models import (
    CANCELLED,
    FAILED,
    READY,
    Active,
    ModelVersion,
    NotTraining,
    ServedVersion,
    StillTraining,
    TrainingUnderWay,
    attach_job,
    cancel_version,
    create_version,
    delete_version,
    fail_version,
    get_active,
    get_version,
    get_version_and_job,
    list_versions,
    predates_base,
    ready_from,
    set_active,
)
from admin_api.workshop import TrainingConflict, UnknownVersion, WorkshopUnavailable
from core.jobs import Job, enqueue

log = logging.getLogger(__name__)

BASE = "base"
ModelState = Literal["queued", "training", "ready", "failed", "cancelled"]
UNDER_WAY = ("queued", "training")
_locks: dict[str, asyncio.Lock] = {}  # shop -> its activations in this process, one at a time
STOP_WAIT = 10.0  # seconds a cancel waits for the workshop to stop the version (about 50 ms)


class ModelPath(Model):
    model_id: str = Field(pattern=r"^([0-9a-f]{32}|base)$",
                          description="a version's id (32 hex digits), or base: the base model")


class JobRef(Model):
    id: str = Field(description="GET /api/v1/jobs/{id} follows it too")


class ModelCreated(Model):
    id: str = Field(description="the new version; GET /api/v1/models/{id} follows it")
    job: JobRef


class ModelFileOut(Model):
    file: str = Field(description='a draft trained: "<kind>/<name>.yml"')
    size: int = Field(description="bytes")


class _Stored(BaseModel):
    """Read from the stored evaluation (the workshop's JSON): fields it may add later are
    ignored rather than refused."""

    model_config = ConfigDict(extra="ignore", serialize_by_alias=True, validate_by_name=True,
                              validate_by_alias=True)


class IntentScore(_Stored):
    precision: float = Field(ge=0, le=1)
    recall: float = Field(ge=0, le=1)
    f1: float = Field(ge=0, le=1)
    support: int = Field(description="held-out examples of the intent")


class HeldOutScores(_Stored):
    intents: dict[str, IntentScore] = Field(
        description="per intent with at least 5 examples; nlu_fallback counts as wrong")
    accuracy: float = Field(ge=0, le=1)
    macro_f1: float = Field(ge=0, le=1)
    examples: int = Field(description="held-out examples scored")
    unscored: dict[str, int] = Field(
        default_factory=dict, description="intents with fewer than 5 examples, by their count: "
                                          "all trained on, none held out, so not scored")


class HeldOut(_Stored):
    candidate: HeldOutScores = Field(description="this version's data set")
    against: HeldOutScores = Field(description="the data set of the model compared with")


class StoryTotals(_Stored):
    passed: int
    failed: int
    total: int


class StoryRef(_Stored):
    story: str
    file: str = Field(description="data/tests/<file>.yml (the base's) or tests/<name>.yml "
                                  "(the shop's own test draft)")


class StoryChange(StoryRef):
    before: Literal["passed", "failed"] = Field(description="on the model compared with")
    after: Literal["passed", "failed"] = Field(description="on this version")


class StoryTests(_Stored):
    candidate: StoryTotals
    against: StoryTotals
    changed: list[StoryChange] = Field(description="stories whose outcome differs")
    failed: list[StoryRef] = Field(description="this version's failed stories")


class RouteChange(_Stored):
    from_: str = Field(alias="from", description="intent on the model compared with")
    to: str = Field(description="intent on this version")
    count: int
    examples: list[str] = Field(description="up to 3 messages, emails and phone numbers "
                                            "masked")


class Routing(_Stored):
    messages: int = Field(description="distinct visitor messages of the last 30 days parsed "
                                      "(at most 2,000, newest first)")
    changed: int = Field(description="how many of them this version routes differently")
    changes: list[RouteChange] = Field(description="by (from, to), largest first")


class EvaluationOut(_Stored):
    against: str | None = Field(description="the version compared with: the shop's active "
                                             "one when this was trained; null = the base model")
    heldout: HeldOut = Field(description="intent metrics on a held-out fifth of each data set "
                                         "(the same examples for both)")
    tests: StoryTests = Field(description="the base's conversation tests and the shop's own, "
                                           "on both models (a wrong intent or action fails a "
                                           "story)")
    routing: Routing
    seconds: float = Field(description="how long testing took")
    seconds_by_part: dict[str, float] = Field(
        default_factory=dict, description="heldout, loading, tests, routing")


class EvaluationFailed(_Stored):
    error: str = Field(description="why the version could not be tested; it is ready anyway")


def evaluation_out(stored: dict[str, Any] | None) -> EvaluationOut | EvaluationFailed | None:
    if stored is None:
        return None
    try:
        if "error" in stored:
            return EvaluationFailed.model_validate(stored)
        return EvaluationOut.model_validate(stored)
    except ValidationError as exc:
        log.error("a stored evaluation does not read as one: %s", exc.errors()[:3])
        return EvaluationFailed(error="the stored evaluation could not be read")


class ModelOut(Model):
    id: str = Field(description="32 hex digits, or base")
    state: ModelState = Field(description="queued, training (testing included), ready (may be "
                                          "activated), failed, or cancelled (POST "
                                          "/models/{id}/cancel)")
    progress: float | None = Field(ge=0, le=1, description="0..1 while queued or training; 1 "
                                                           "once ready; null when failed or "
                                                           "cancelled")
    stage: str | None = Field(description="what the workshop is doing, in words for people, "
                                          "while queued or training")
    queue_position: int | None = Field(description="k: k-th in the workshop's queue")
    error: str | None = Field(description="why the training failed, or who cancelled it "
                                          "(\"cancelled by user:...\"); null otherwise")
    created_by: str | None
    created_at: datetime | None = Field(description="null only for base")
    finished_at: datetime | None
    training_seconds: float | None
    size_bytes: int | None = Field(description="the model file's size")
    fingerprint: str | None = Field(description="Rasa's fingerprint of the trained model")
    files: list[ModelFileOut] = Field(description="the drafts this version was trained from")
    active: bool = Field(description="the shop's bot serves this model")
    activated_at: datetime | None = Field(description="when it was made active; null unless "
                                                      "active")
    evaluation: EvaluationOut | EvaluationFailed | None = Field(
        description="held-out metrics, test results and the comparison with the shop's active "
                    "version (or the base), computed after training; null until then (and "
                    "for base). When testing failed it is {\"error\": \"...\"} and the "
                    "version is ready all the same: the model trained")
    job: JobRef | None = Field(description="the training job; null for base")
    predates_base: bool = Field(
        description="trained before the base training data every shop shares (data/, "
                           "bot/domain, config.yml) last changed: training again, even from "
                           "unchanged drafts, makes a version that includes the current base; "
                           "false for base")


def _state(version: ModelVersion, job: Job | None) -> tuple[ModelState, str | None]:
    """The state to show and its error: a job that ended without recording the version (its
    workers kept dying) failed it."""
    if version.state == READY:
        return "ready", None
    if version.state == FAILED:
        return "failed", version.error
    if version.state == CANCELLED:
        return "cancelled", version.error
    if job is not None and job.status == "failed":
        return "failed", job.error
    if version.queue_position == 0:  # the workshop said it is running
        return "training", None
    return "queued", None


def _stage(version: ModelVersion, job: Job | None) -> str:
    if version.stage:
        return version.stage
    if job is not None and job.status == "running":
        return "submitting to the workshop"
    return "waiting for the shop's other jobs" if job is not None else "queued"


def model_out(version: ModelVersion, job: Job | None, active: Active) -> ModelOut:
    state, error = _state(version, job)
    is_active = active.version_id == version.id
    progress = {"ready": 1.0, "failed": None, "cancelled": None}.get(
        state, round(job.progress, 3) if job else 0.0)  # 0.035, not 0.034999999999999996
    return ModelOut(
        id=version.id, state=state, progress=progress,
        stage=_stage(version, job) if state in UNDER_WAY else None,
        queue_position=version.queue_position if state in UNDER_WAY else None,
        error=error, created_by=version.created_by, created_at=version.created_at,
        finished_at=version.finished_at or (job.finished_at if state == "failed" and job
                                            else None),
        training_seconds=version.training_seconds, size_bytes=version.size_bytes,
        fingerprint=version.fingerprint,
        files=[ModelFileOut(file=name, size=len(content.encode("utf-8")))
               for name, content in sorted(version.files.items())],
        active=is_active, activated_at=active.activated_at if is_active else None,
        evaluation=evaluation_out(version.evaluation),
        job=JobRef(id=version.job_id) if version.job_id else None,
        predates_base=predates_base(version))


def base_out(active: Active) -> ModelOut:
    """The base model as a version-like entry: always ready."""
    is_active = active.version_id is None
    return ModelOut(id=BASE, state="ready", progress=1.0, stage=None, queue_position=None,
                    error=None, created_by=None, created_at=None, finished_at=None,
                    training_seconds=None, size_bytes=None, fingerprint=None, files=[],
                    active=is_active, activated_at=active.activated_at if is_active else None,
                    evaluation=None, job=None, predates_base=False)


async def _answer(call: Call[Any, Any], model_id: str) -> ModelOut:
    active = await get_active(call.ctx.sessions, call.shop)
    if model_id == BASE:
        return base_out(active)
    found = await get_version_and_job(call.ctx.sessions, call.shop, model_id)
    if found is None:
        raise NotFound("no such model version in your shop; GET /api/v1/models lists them")
    return model_out(*found, active)


@API.route("POST", "/models", roles=DESIGNERS, response=ModelCreated, status=202,
           errors=(402, 409, 503), summary="Train a model version from the shop's drafts")
async def create_model(call: Call[None, None]) -> ModelCreated:
    """Checks the drafts first (422 with `errors` as POST /training/validate gives them), then
    trains them as they are now in the background: follow `job` or GET /models/{id}. 409 when
    a version is training (`id` names it), and when a ready version was trained from these
    very drafts (`id`, `state` "ready" and `active` name it: activate it instead)."""
    await require_own_models(call)
    drafts = await read_contents(call.ctx.sessions, call.shop)
    if not drafts:
        raise Unprocessable("the shop has no training data drafts to train: add some with PUT "
                            "/api/v1/training/{kind}/{name} first", extra={"errors": []})
    files = {file_of(kind, name): content for kind, name, content in drafts}
    same = await ready_from(call.ctx.sessions, call.shop, files)
    if same is not None:
        active = (await get_active(call.ctx.sessions, call.shop)).version_id == same.id
        use = ("the shop's bot serves it already" if active else "activate it with POST "
               f"/api/v1/models/{same.id}/activate")
        raise Conflict(f"nothing to train: the drafts are exactly those version {same.id} "
                       f"(ready) was trained from; {use}, or change a draft first",
                       extra={"id": same.id, "state": "ready", "active": active})
    checked = await check_drafts(call, drafts)
    if checked.problems:
        raise Unprocessable(
            f"the drafts have {len(checked.problems)} problem(s) to fix before training "
            "(POST /api/v1/training/validate shows the same)",
            extra={"errors": [{"file": p.file, "line": p.line, "message": p.message}
                              for p in checked.problems]})
    try:
        version = await create_version(call.ctx.sessions, call.shop, files,
                                       call.principal.actor)
    except TrainingUnderWay as exc:
        raise Conflict(f"the shop's version {exc.version_id} is training; wait until it is "
                       "ready or failed (GET /api/v1/models/{id})",
                       extra={"id": exc.version_id}) from None
    try:
        job = await enqueue(call.ctx.sessions, call.shop, TRAIN, {"version": version.id},
                            call.principal.actor)
        await attach_job(call.ctx.sessions, call.shop, version.id, job.id)
    except Exception:
        await fail_version(call.ctx.sessions, call.shop, version.id,
                           "the training could not be queued; train again")
        raise
    for worker in getattr(call.ctx, "training_workers", []):
        worker.wake()
    await record(call, "model.train", target=version.id,
                 after={"files": sorted(files), "sha256": version.snapshot_sha256,
                        "job": job.id})
    return ModelCreated(id=version.id, job=JobRef(id=job.id))


@API.route("GET", "/models", roles=DESIGNERS, query=PageQuery, response=Page[ModelOut],
           summary="List the shop's model versions")
async def list_models(call: Call[None, PageQuery]) -> Page[ModelOut]:
    """Newest first; the base model is not listed (GET /models/base)."""
    versions, total = await list_versions(call.ctx.sessions, call.shop,
                                          offset=call.query.offset, limit=call.query.page_size)
    active = await get_active(call.ctx.sessions, call.shop)
    return Page[ModelOut](items=[model_out(version, job, active) for version, job in versions],
                          total=total, page=call.query.page, page_size=call.query.page_size)


@API.route("GET", "/models/{model_id}", roles=DESIGNERS, params=ModelPath, response=ModelOut,
           summary="Read a model version of the shop")
async def read_model(call: Call[None, None]) -> ModelOut:
    """Poll this while it trains; `base` is the base model. Once ready, `evaluation` holds
    the version's held-out metrics, its test results and how it would route the shop's last
    30 days of visitor messages, each next to the model it was compared with; a version whose
    testing failed is ready with `evaluation: {"error": "..."}`."""
    return await _answer(call, call.path["model_id"])


@contextlib.asynccontextmanager
async def _one_activation_at_a_time(call: Call[Any, Any]) -> AsyncIterator[None]:
    lock = _locks.setdefault(call.shop, asyncio.Lock())
    async with lock:
        if call.ctx.engine.dialect.name != "postgresql":
            yield
            return
        key = int.from_bytes(hashlib.sha256(f"activate:{call.shop}".encode()).digest()[:8],
                             "big", signed=True)
        async with call.ctx.sessions() as session:
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            yield
            await session.commit()  # ends the transaction: the lock goes with it


@API.route("POST", "/models/{model_id}/activate", roles=DESIGNERS, params=ModelPath,
           response=ModelOut, errors=(402, 409, 503),
           summary="Serve a model version to the shop's visitors (or base)")
async def activate_model(call: Call[None, None]) -> ModelOut:
    """Switches the shop's bot to this ready version (an earlier one: a rollback; `base`: the
    base model) within about a second; conversations go on, on the new model. 409 when the
    version is not ready."""
    model_id = call.path["model_id"]
    version_id = None if model_id == BASE else model_id
    if version_id is not None:
        await require_own_models(call)  # going back to the base is always allowed
        version = await get_version(call.ctx.sessions, call.shop, version_id)
        if version is None:
            raise NotFound("no such model version in your shop; GET /api/v1/models lists them")
        if version.state != READY:
            shown = await _answer(call, version_id)
            doing = f" ({shown.stage})" if shown.stage else ""  # "testing: ..." after training
            raise Conflict(f"the version is {shown.state}{doing}; only a ready version can be "
                           "activated", extra={"state": shown.state})
    async with _one_activation_at_a_time(call):
        before = await get_active(call.ctx.sessions, call.shop)
        await _tell_workshop(call, version_id)
        try:
            async with call.ctx.sessions() as session:
                await set_active(session, call.shop, version_id, call.principal.actor)
                await session.commit()
        except Exception:
            log.exception("the shop's active model was not recorded; switching the workshop "
                          "back", extra={"tenant_id": call.shop})
            with contextlib.suppress(UnknownVersion, WorkshopUnavailable):
                await call.ctx.workshop.set_active(call.shop, before.version_id)
            raise
    await record(call, "model.activate", target=model_id,
                 before={"version": before.version_id or BASE},
                 after={"version": model_id})
    log.info("model activated", extra={"tenant_id": call.shop, "version": model_id})
    return await _answer(call, model_id)


async def _tell_workshop(call: Call[Any, Any], version_id: str | None) -> None:
    try:
        await call.ctx.workshop.set_active(call.shop, version_id)
    except UnknownVersion:
        raise Conflict("the workshop has no model file for this version (its storage was "
                       "lost?); train the version again", extra={"state": "ready"}) from None
    except WorkshopUnavailable as exc:
        log.warning("the workshop was not told the shop's active model: %s", exc)
        raise Unavailable("the workshop, which serves shops their models, did not answer; "
                          "nothing changed; try again in a minute") from None


@API.route("POST", "/models/{model_id}/cancel", roles=DESIGNERS, params=ModelPath,
           response=ModelOut, errors=(409,),
           summary="Cancel a version's training (queued, training or being tested)")
async def cancel_model(call: Call[None, None]) -> ModelOut:
    """Stops the version: queued, it never starts; training or being tested, the workshop
    stops it and its place goes to the next training. It ends `cancelled` (`error` says who
    cancelled it), its job too, and the shop may train again at once. 409 when the version
    has ended (ready, failed or cancelled; DELETE /models/{id} removes one that is not
    needed), and for base."""
    model_id = call.path["model_id"]
    if model_id == BASE:
        raise Conflict("the base model is not trained here: there is nothing to cancel",
                       extra={"state": "ready"})
    before = await _answer(call, model_id)
    try:
        if before.state not in UNDER_WAY:
            raise NotTraining(model_id)
        await cancel_version(call.ctx.sessions, call.shop, model_id, call.principal.actor)
    except NotTraining:
        state = (await _answer(call, model_id)).state
        raise Conflict(f"the version is {state}: only a queued or training version can be "
                       "cancelled (DELETE /api/v1/models/{id} removes a version)",
                       extra={"state": state}) from None
    # Bounded: the cancel stands already, and the job's handler tells a slow workshop again.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_in_workshop(call.ctx.workshop, model_id), STOP_WAIT)
    await record(call, "model.cancel", target=model_id,
                 before={"state": before.state, "stage": before.stage},
                 after={"state": "cancelled"})
    log.info("model training cancelled", extra={"tenant_id": call.shop, "version": model_id})
    return await _answer(call, model_id)


@API.route("DELETE", "/models/{model_id}", roles=DESIGNERS, params=ModelPath,
           errors=(409, 503), summary="Delete a model version of the shop")
async def delete_model(call: Call[None, None]) -> None:
    """Removes a version and its model file; GET /models no longer lists it. 409 for the
    version the shop's bot serves (activate another first), for one still queued or training
    (cancel it first: POST /models/{id}/cancel) and for base; 503 when the workshop, which
    keeps the model files, did not answer (nothing was deleted)."""
    model_id = call.path["model_id"]
    if model_id == BASE:
        raise Conflict("the base model is every shop's starting point and cannot be deleted",
                       extra={"state": "ready"})
    async with _one_activation_at_a_time(call):
        shown = await _answer(call, model_id)
        _refuse_deleting(shown)
        try:
            await call.ctx.workshop.delete_model(call.shop, model_id)
        except TrainingConflict as exc:
            raise Conflict(f"the workshop still needs the version's model: {exc}",
                           extra={"state": shown.state}) from None
        except (UnknownVersion, WorkshopUnavailable) as exc:
            log.warning("the workshop did not delete a model version's file: %s", exc)
            raise Unavailable("the workshop, which keeps the model files, did not answer; "
                              "nothing was deleted; try again in a minute") from None
        try:
            found = await delete_version(call.ctx.sessions, call.shop, model_id)
        except (ServedVersion, StillTraining):  # cannot be: checked above, under the lock
            _refuse_deleting(await _answer(call, model_id))
            raise
    if not found:  # deleted by another call meanwhile
        raise NotFound("no such model version in your shop; GET /api/v1/models lists them")
    await record(call, "model.delete", target=model_id,
                 before={"state": shown.state, "files": [f.file for f in shown.files],
                         "fingerprint": shown.fingerprint})
    log.info("model version deleted", extra={"tenant_id": call.shop, "version": model_id})


def _refuse_deleting(shown: ModelOut) -> None:
    if shown.active:
        raise Conflict("the shop's bot serves this version: activate another one (or base) "
                       "first with POST /api/v1/models/{id}/activate, then delete it",
                       extra={"state": shown.state, "active": True})
    if shown.state in UNDER_WAY:
        raise Conflict(f"the version is {shown.state}: cancel it first with POST "
                       "/api/v1/models/{id}/cancel, then delete it",
                       extra={"state": shown.state, "active": False})
