"""The shop's own model versions over the admin API (issue 15): a designer trains the shop's
drafts, watches the version go queued -> training -> ready, activates it, trains another,
rolls back and returns to the base; the workshop is a stand-in speaking its training contract
(tests/fakes/workshop_server.py TrainingWorkshop), the admin app and its job workers are real.
After training each version is tested and compared in the workshop (its evaluation, stored
and shown; the shop's recent visitor messages sent masked; a failed evaluation leaves the
version ready). Also: drafts that do not pass are refused with their errors, the plan, another
shop's versions, a version not ready, the workshop down, a training that fails, a workshop that
restarted mid-training, an admin that stops mid-training, and roles. A designer cancels a
version queued, training or being tested (the workshop stops it, the shop trains again at
once; reading and activating go on meanwhile) and deletes versions that are not in use."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from admin_api.app import create_app
from admin_api.tables import AuditRow
from admin_api.training import models as training_models
from admin_api.training.jobs import training_handlers
from admin_api.worker import Worker
from core import jobs
from core.conversations import record_message
from core.db import utcnow
from tests.admin_api.conftest import Admin, admin_settings
from tests.admin_api.test_training_drafts import DOMAIN, NLU, RULES, put
from tests.fakes import RecordedRequest, Response
from tests.fakes.workshop_server import TrainingWorkshop
from tests.sanic_client import RunningAppClient, stop_app
from tests.servers import free_port

pytestmark = pytest.mark.asyncio


@pytest.fixture
def workshop() -> Iterator[TrainingWorkshop]:
    with TrainingWorkshop(queued_for=0.2, running_for=0.6) as fake:
        yield fake


@pytest.fixture(autouse=True)
def served_by_the_fake(request: pytest.FixtureRequest, workshop: TrainingWorkshop) -> None:
    """The admin app asks the stand-in, and its training workers ask it every 0.1 s (1 s in
    production) so that a test sees each state without waiting seconds."""
    if "admin" in request.fixturenames:
        admin: Admin = request.getfixturevalue("admin")
        admin.use_workshop(workshop.base_url).app.config.TRAINING_POLL = 0.1


async def drafts(admin: Admin, nlu: str = NLU) -> None:
    for kind, text in (("domain", DOMAIN), ("nlu", nlu), ("rules", RULES)):
        status, body = await put(admin, kind, "sizes", text)
        assert status in (200, 201), body


async def train(admin: Admin, role: str = "designer") -> dict[str, Any]:
    status, body = await admin.call("POST", "/models", role=role)
    assert status == 202, body
    assert set(body) == {"id", "job"} and len(body["id"]) == 32
    return dict(body)


async def model(admin: Admin, model_id: str) -> dict[str, Any]:
    status, body = await admin.call("GET", f"/models/{model_id}", role="designer")
    assert status == 200, body
    return dict(body)


async def ended(admin: Admin, model_id: str, timeout: float = 20) -> tuple[dict[str, Any],
                                                                          list[dict[str, Any]]]:
    """The version once ready or failed, and every reading on the way."""
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = await model(admin, model_id)
        seen.append(body)
        if body["state"] in ("ready", "failed"):
            return body, seen
        assert asyncio.get_running_loop().time() < deadline, seen[-1]
        await asyncio.sleep(0.05)


async def job_ended(admin: Admin, job_id: str, timeout: float = 20) -> dict[str, Any]:
    """The version's job once it has ended: the worker ends it just after it writes the
    version ready or failed, so a reading right after `ended` may still find it running."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, job = await admin.call("GET", f"/jobs/{job_id}", role="designer")
        assert status == 200, job
        if job["status"] not in ("queued", "running"):
            return dict(job)
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.05)


async def activate(admin: Admin, model_id: str, role: str = "designer") -> tuple[int, Any]:
    return await admin.call("POST", f"/models/{model_id}/activate", role=role)


async def said(admin: Admin, text: str, days_ago: float = 0, direction: str = "in",
               shop: str | None = None) -> None:
    await record_message(admin.sessions, tenant_id=shop or admin.demo.id,
                         sender_id=f"{shop or admin.demo.id}:rest:{uuid.uuid4().hex[:6]}",
                         channel="rest", direction=direction, text=text,
                         at=utcnow() - timedelta(days=days_ago))


async def test_train_activate_train_again_roll_back_and_return_to_base(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    # The shop's visitors' last 30 days: distinct texts, newest first, masked.
    await said(admin, "what size is the medium?", days_ago=3)
    await said(admin, "size chart please, mail me at alex@example.com, call +4915112345678 "
                      "or 0151 / 123 456 78, order 100234567 of 2026-11-02", days_ago=2)
    await said(admin, "what size is the medium?", days_ago=1)  # the same again, later
    await said(admin, "/affirm")  # a button's payload
    await said(admin, "do you have a size guide", days_ago=45)  # too old
    await said(admin, "Our frames come in S, M and L", direction="out")  # the bot's
    await said(admin, "how big are your shoes", shop=admin.other.id)  # another shop's
    await drafts(admin)
    # Testing lasts longer than the job's heartbeat (1 s), which writes its progress: the
    # readings near the end of testing show testing's share, on a slow machine too.
    workshop.evaluating_for = 2.0
    first = await train(admin)
    done, seen = await ended(admin, first["id"])
    states = [s["state"] for s in seen]
    assert "training" in states and states[-1] == "ready", states
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress), progress  # never backwards
    training = next(s for s in seen if s["state"] == "training")
    assert training["stage"] == "training the NLU" and 0 <= training["progress"] < 1
    # After the training itself, the version is tested before it is ready.
    testing = [s for s in seen if (s["stage"] or "").startswith("testing: ")]
    assert testing and testing[-1]["state"] == "training", [s["stage"] for s in seen]
    assert testing[-1]["stage"] == "testing: running the test stories"
    assert 0.7 <= testing[-1]["progress"] < 1
    evaluation = done["evaluation"]
    assert evaluation["against"] is None  # the shop served the base model
    assert evaluation["heldout"]["candidate"]["intents"]["ask_size"] == {
        "precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    assert evaluation["heldout"]["against"]["intents"] == {}
    assert evaluation["heldout"]["candidate"]["unscored"] == {"ask_gift_wrap": 2}
    assert evaluation["tests"]["changed"] == [{"story": "returns", "file":
                                               "data/tests/test_returns.yml",
                                               "before": "failed", "after": "passed"}]
    assert evaluation["tests"]["candidate"] == {"passed": 31, "failed": 0, "total": 31}
    masked = ("size chart please, mail me at [email], call [phone] or [phone], order 100234567 "
              "of 2026-11-02")  # an order number and a date are no phone numbers
    assert evaluation["routing"] == {"messages": 2, "changed": 2, "changes": [
        {"from": "ask_question", "to": "ask_size", "count": 2,
         "examples": ["what size is the medium?", masked]}]}
    assert evaluation["seconds"] > 0
    sent = workshop.requests_to("/evaluate", "POST")[0].json()
    assert sent["against"] == {"version": None, "files": {}}
    assert sent["messages"] == ["what size is the medium?", masked]
    assert sent["files"]["nlu/sizes.yml"] == NLU and sent["version"] == first["id"]
    assert done["progress"] == 1 and done["error"] is None and done["stage"] is None
    assert done["fingerprint"] and done["size_bytes"] == 4321
    assert done["training_seconds"] == pytest.approx(0.6)
    assert done["files"] == [{"file": f"{kind}/sizes.yml", "size": len(text)} for kind, text
                             in (("domain", DOMAIN), ("nlu", NLU), ("rules", RULES))]
    assert done["active"] is False
    assert done["job"] == first["job"] and done["created_by"].startswith("key:")
    assert done["finished_at"] >= done["created_at"]
    job = await job_ended(admin, first["job"]["id"])
    assert job["status"] == "done" and job["kind"] == "model.train"
    assert job["result"]["fingerprint"] == done["fingerprint"]
    # The workshop got the drafts as the designer wrote them, under the version's id.
    submitted = workshop.requests_to("/train", "POST")[0].json()
    assert submitted == {"shop": admin.demo.id, "version": first["id"], "files": {
        "domain/sizes.yml": DOMAIN, "nlu/sizes.yml": NLU, "rules/sizes.yml": RULES}}

    status, body = await activate(admin, first["id"])
    assert status == 200, body
    assert body["id"] == first["id"] and body["active"] is True and body["activated_at"]
    assert workshop.active[admin.demo.id] == first["id"]
    assert (await model(admin, "base"))["active"] is False

    # A second version from changed drafts; the first keeps its snapshot.
    await drafts(admin, NLU + "  - intent: ask_size\n    examples: |\n      - size chart?\n")
    second = await train(admin)
    done, _ = await ended(admin, second["id"])
    assert done["state"] == "ready"
    # compared with the shop's active version, whose drafts the workshop gets too
    assert done["evaluation"]["against"] == first["id"]
    sent = workshop.requests_to("/evaluate", "POST")[1].json()
    assert sent["version"] == second["id"]
    assert sent["against"] == {"version": first["id"], "files": {
        "domain/sizes.yml": DOMAIN, "nlu/sizes.yml": NLU, "rules/sizes.yml": RULES}}
    assert (await model(admin, first["id"]))["files"][1]["size"] == len(NLU)
    assert (await activate(admin, second["id"]))[0] == 200
    status, listing = await admin.call("GET", "/models", role="designer")
    assert status == 200 and listing["total"] == 2
    assert [(m["id"], m["active"]) for m in listing["items"]] == [
        (second["id"], True), (first["id"], False)]

    # Rollback, then the base model.
    assert (await activate(admin, first["id"]))[0] == 200
    assert workshop.active[admin.demo.id] == first["id"]
    assert (await model(admin, second["id"]))["active"] is False
    status, body = await activate(admin, "base", role="owner")
    assert status == 200, body
    assert body["id"] == "base" and body["active"] is True and body["state"] == "ready"
    assert workshop.active[admin.demo.id] is None
    _, listing = await admin.call("GET", "/models", role="designer")
    assert not any(m["active"] for m in listing["items"])

    async with admin.sessions() as session:
        rows = (await session.execute(select(AuditRow.action, AuditRow.target, AuditRow.after)
                                      .where(AuditRow.action.startswith("model."))
                                      .order_by(AuditRow.id))).all()
    assert [(action, target) for action, target, _ in rows] == [
        ("model.train", first["id"]), ("model.activate", first["id"]),
        ("model.train", second["id"]), ("model.activate", second["id"]),
        ("model.activate", first["id"]), ("model.activate", "base")]
    assert "frames come in" not in repr(rows)  # the audit keeps names and a hash, no content


async def test_drafts_a_ready_version_was_trained_from_are_not_trained_again(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    """Minutes of CPU for the same model: the designer is pointed at the version instead."""
    await drafts(admin)
    first = await train(admin)
    assert (await ended(admin, first["id"]))[0]["state"] == "ready"
    await drafts(admin)  # saved again, the same text
    status, body = await admin.call("POST", "/models", role="designer")
    assert status == 409, body
    assert body["id"] == first["id"] and body["state"] == "ready" and body["active"] is False
    assert first["id"] in body["detail"] and "activate" in body["detail"], body
    assert (await activate(admin, first["id"]))[0] == 200
    status, body = await admin.call("POST", "/models", role="designer")
    assert status == 409 and body["active"] is True, body
    assert "serves it already" in body["detail"], body
    assert len(workshop.requests_to("/train", "POST")) == 1  # never sent again
    _, listing = await admin.call("GET", "/models", role="designer")
    assert listing["total"] == 1

    # Any change trains: an edited draft, and the drafts of a version that failed.
    await drafts(admin, NLU + "  - intent: ask_size\n    examples: |\n      - size chart?\n")
    workshop.fail_with = "out of memory"
    failed = await train(admin)
    assert (await ended(admin, failed["id"]))[0]["state"] == "failed"
    workshop.fail_with = None
    second = await train(admin)
    assert (await ended(admin, second["id"]))[0]["state"] == "ready"
    # Back to the first version's drafts: that version is named, not the newest.
    await drafts(admin)
    status, body = await admin.call("POST", "/models", role="designer")
    assert status == 409 and body["id"] == first["id"], body


async def test_the_same_drafts_train_again_on_a_base_a_deploy_changed(
        admin: Admin, workshop: TrainingWorkshop, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new base (data/, bot/domain, config.yml) makes another model from the same drafts:
    that training is no repeat, and it is the only way to bring the shop's model up to it."""
    await drafts(admin)
    first = await train(admin)
    assert (await ended(admin, first["id"]))[0]["state"] == "ready"
    assert (await activate(admin, first["id"]))[0] == 200
    assert (await model(admin, first["id"]))["predates_base"] is False
    monkeypatch.setattr(training_models, "base_digest", lambda: "another deploy's base")
    # The active version says it predates the base (the Training tab says so), in the list
    # too; the base model itself never does.
    assert (await model(admin, first["id"]))["predates_base"] is True
    _, listing = await admin.call("GET", "/models", role="designer")
    assert [(m["id"], m["predates_base"]) for m in listing["items"]] == [(first["id"], True)]
    assert (await model(admin, "base"))["predates_base"] is False
    second = await train(admin)
    assert second["id"] != first["id"]
    assert (await ended(admin, second["id"]))[0]["state"] == "ready"
    assert (await model(admin, second["id"]))["predates_base"] is False
    assert len(workshop.requests_to("/train", "POST")) == 2


async def test_drafts_that_do_not_pass_are_not_trained(admin: Admin,
                                                       workshop: TrainingWorkshop) -> None:
    status, body = await admin.call("POST", "/models", role="designer")
    assert status == 422 and "no training data drafts" in body["detail"]
    await drafts(admin)
    broken = RULES.replace("utter_size_guide", "action_measure_the_rider")
    assert (await put(admin, "rules", "sizes", broken))[0] == 200
    status, body = await admin.call("POST", "/models", role="designer")
    assert status == 422, body
    assert [(e["file"], e["line"]) for e in body["errors"]] == [("rules/sizes.yml", 6)]
    assert "action_measure_the_rider" in body["errors"][0]["message"]
    assert (await admin.call("GET", "/models", role="designer"))[1]["total"] == 0
    assert not workshop.requests_to("/train")


class WarningWorkshop(TrainingWorkshop):
    """Rasa's checks find only what Rasa warns about (the real workshop's answer:
    tests/admin_api/test_training_validate.py)."""

    WARNING = {"file": "domain/sizes.yml", "line": 3,
               "message": "The intent 'ask_size' is not used in any story or rule."}

    def route(self, request: RecordedRequest) -> Response:
        if (request.method, request.path) == ("POST", "/validate"):
            return 200, {}, {"errors": [], "warnings": [self.WARNING], "complete": True}
        return super().route(request)


async def test_warnings_are_shown_and_do_not_stop_a_training(admin: Admin) -> None:
    with WarningWorkshop(queued_for=0.1, running_for=0.2) as warning:
        admin.use_workshop(warning.base_url)
        await drafts(admin)
        status, body = await admin.call("POST", "/training/validate", role="designer")
        assert status == 200, body
        assert body["ok"] is True and body["errors"] == []
        assert body["warnings"] == [{**WarningWorkshop.WARNING, "message": "Rasa: The intent "
                                     "'ask_size' is not used in any story or rule."}]
        created = await train(admin)
        assert (await ended(admin, created["id"]))[0]["state"] == "ready"
        assert warning.requests_to("/train")


@pytest_asyncio.fixture
async def billed(admin: Admin, tmp_path: Path,
                 workshop: TrainingWorkshop) -> AsyncIterator[Admin]:
    """The same database and shops, served with billing on: both shops on the free plan,
    which has no own models."""
    settings = admin_settings(tmp_path, admin.database_url, STRIPE_API_KEY="sk_test_x",
                              WORKSHOP_URL=workshop.base_url)
    app = create_app(settings, name=f"admin-models-{uuid.uuid4().hex[:8]}")
    app.config.WEBHOOK_WORKER = False
    app.config.BILLING_WORKER = False
    try:
        yield Admin(app, RunningAppClient(app), admin.sessions, settings, admin.demo,
                    admin.other, admin.database_url)
    finally:
        await stop_app(app)


async def test_training_and_activating_need_a_plan_with_own_models(
        admin: Admin, billed: Admin) -> None:
    await drafts(admin)  # billing off here
    first = await train(admin)
    assert (await ended(admin, first["id"]))[0]["state"] == "ready"
    status, body = await billed.call("POST", "/models", role="designer")
    assert status == 402 and body["limit"] == "own_models", body
    assert (await activate(billed, first["id"]))[0] == 402
    # Back to the base is always allowed; reading stays open.
    assert (await activate(billed, "base"))[0] == 200
    assert (await billed.call("GET", f"/models/{first['id']}", role="designer"))[0] == 200


async def test_another_shops_version_is_not_found(admin: Admin) -> None:
    await drafts(admin)
    ours = await train(admin)
    status, body = await admin.call("GET", f"/models/{ours['id']}", role="owner",
                                    shop=admin.other)
    assert status == 404, body
    status, body = await admin.call("POST", f"/models/{ours['id']}/activate", role="owner",
                                    shop=admin.other)
    assert status == 404, body
    status, body = await admin.call("GET", "/models", role="owner", shop=admin.other)
    assert status == 200 and body["total"] == 0
    status, body = await admin.call("GET", f"/models/{uuid.uuid4().hex}", role="designer")
    assert status == 404
    assert (await admin.call("GET", "/models/not-an-id", role="designer"))[0] == 422


async def test_a_version_not_ready_is_not_activated_and_one_trains_at_a_time(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    workshop.queued_for = 30  # stays queued in the workshop for this test
    await drafts(admin)
    first = await train(admin)
    status, body = await activate(admin, first["id"])
    assert status == 409 and body["state"] == "queued", body
    assert "only a ready version" in body["detail"]
    status, body = await admin.call("POST", "/models", role="designer")
    assert status == 409 and body["id"] == first["id"], body
    assert admin.demo.id not in workshop.active  # nothing was switched

    async def waiting() -> bool:
        body = await model(admin, first["id"])
        return body["stage"] == "waiting for a trainer" and body["queue_position"] == 1
    await until(waiting)


async def until(predicate: Any, timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)


async def test_the_workshop_down_is_503_and_nothing_changes(admin: Admin) -> None:
    admin.use_workshop(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    await drafts(admin)
    status, body = await admin.call("POST", "/models", role="designer")
    assert status == 503 and "did not answer" in body["detail"], body
    status, body = await activate(admin, "base")
    assert status == 503 and "nothing changed" in body["detail"], body
    assert (await admin.call("GET", "/models", role="designer"))[1]["total"] == 0
    assert (await model(admin, "base"))["active"] is True


async def test_a_failed_training_is_recorded_with_the_workshops_reason(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    workshop.fail_with = "the NLU pipeline ran out of memory"
    await drafts(admin)
    first = await train(admin)
    body, _ = await ended(admin, first["id"])
    assert body["state"] == "failed" and body["progress"] is None
    assert body["error"] == "training failed: the NLU pipeline ran out of memory"
    assert body["finished_at"] and body["fingerprint"] is None
    job = await job_ended(admin, first["job"]["id"])
    assert job["status"] == "failed" and job["error"] == body["error"]
    status, answer = await activate(admin, first["id"])
    assert status == 409 and answer["state"] == "failed"
    workshop.fail_with = None
    second = await train(admin)  # a failed version does not hold the shop's place
    assert (await ended(admin, second["id"]))[0]["state"] == "ready"


async def test_a_version_whose_testing_fails_is_ready_with_the_reason(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    workshop.evaluation_fails_with = "evaluation failed: the held-out model did not train"
    await drafts(admin)
    first = await train(admin)
    body, _ = await ended(admin, first["id"])
    assert body["state"] == "ready" and body["error"] is None, body
    assert body["evaluation"] == {"error": "evaluation failed: the held-out model did not "
                                           "train"}
    job = await job_ended(admin, first["job"]["id"])
    assert job["status"] == "done" and job["result"]["evaluated"] is False
    assert (await activate(admin, first["id"]))[0] == 200  # it may be used all the same
    # a workshop without the compared version's model file: ready, and says why
    workshop.evaluation_fails_with = None
    del workshop.models[first["id"]]
    await drafts(admin, NLU + "  - intent: ask_size\n    examples: |\n      - size chart?\n")
    second = await train(admin)
    body, _ = await ended(admin, second["id"])
    assert body["state"] == "ready", body
    assert body["evaluation"]["error"].startswith("the version could not be tested: no model")


async def test_a_workshop_that_restarted_gets_the_version_again(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    workshop.queued_for = 1.0
    await drafts(admin)
    first = await train(admin)

    async def submitted() -> bool:
        return bool(workshop.requests_to("/train", "POST"))
    await until(submitted)
    workshop.restart()  # the queue is gone: GET /train/{version} answers 404
    body, _ = await ended(admin, first["id"])
    assert body["state"] == "ready", body
    posts = [r.json()["version"] for r in workshop.requests_to("/train", "POST")]
    assert posts == [first["id"], first["id"]]


async def test_a_model_whose_training_time_the_workshop_lost_is_ready_all_the_same(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    workshop.knows_training_time = False
    await drafts(admin)
    body, _ = await ended(admin, (await train(admin))["id"])
    assert body["state"] == "ready" and body["training_seconds"] is None, body


async def test_an_admin_that_stops_leaves_the_training_to_the_workshop(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    workshop.queued_for = 30
    await drafts(admin)
    first = await train(admin)

    async def submitted() -> bool:
        return bool(workshop.requests_to("/train", "POST"))
    await until(submitted)
    await stop_app(admin.app)
    job = await jobs.get_job(admin.sessions, admin.demo.id, first["job"]["id"])
    assert job is not None and job.status == "queued"  # handed back for the next process
    assert not workshop.requests_to("/train", "DELETE")
    assert workshop.trainings[first["id"]].cancelled is False


async def test_agents_may_not_train_or_activate(admin: Admin) -> None:
    for method, path in (("POST", "/models"), ("GET", "/models"), ("GET", "/models/base"),
                         ("POST", "/models/base/activate"), ("POST", "/models/base/cancel"),
                         ("DELETE", "/models/base")):
        status, body = await admin.call(method, path, role="agent")
        assert status == 403 and body["detail"].startswith("the agent role may not"), body


async def test_a_workshop_that_blinks_mid_training_is_asked_again(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    await drafts(admin)
    workshop.fail_next(503, times=3, match=lambda r: r.method == "GET"
                       and r.path.startswith("/train/"))
    first = await train(admin)
    body, _ = await ended(admin, first["id"])
    assert body["state"] == "ready", body
    assert len(workshop.requests_to("/train", "POST")) == 1


async def audited(admin: Admin, action: str) -> list[tuple[str | None, str | None]]:
    async with admin.sessions() as session:
        return [(target, actor) for target, actor in (await session.execute(
            select(AuditRow.target, AuditRow.actor).where(AuditRow.action == action)
            .order_by(AuditRow.id))).all()]


async def test_a_queued_version_cancelled_never_starts(admin: Admin,
                                                       workshop: TrainingWorkshop) -> None:
    await drafts(admin)
    for worker in admin.app.ctx.training_workers:  # nobody claims the job meanwhile
        await worker.stop()
    first = await train(admin)
    status, body = await admin.call("POST", f"/models/{first['id']}/cancel", role="designer",
                                    shop=admin.other)
    assert status == 404, body  # another shop's
    status, body = await admin.call("POST", f"/models/{first['id']}/cancel", role="designer")
    assert status == 200, body
    assert body["state"] == "cancelled" and body["progress"] is None and body["stage"] is None
    assert body["error"].startswith("cancelled by key:") and body["finished_at"]
    job = await admin.call("GET", f"/jobs/{first['job']['id']}", role="designer")
    assert job[1]["status"] == "cancelled" and job[1]["error"] == body["error"], job
    listed = (await admin.call("GET", "/jobs?status=cancelled", role="designer"))[1]
    assert [j["id"] for j in listed["items"]] == [first["job"]["id"]]
    worker = Worker(admin.sessions, training_handlers(admin.sessions, admin.app.ctx.workshop))
    assert await worker.run_once() is None  # the cancelled job is not claimed
    assert not workshop.requests_to("/train", "POST")
    status, again = await admin.call("POST", f"/models/{first['id']}/cancel", role="designer")
    assert status == 409 and again["state"] == "cancelled", again
    assert "only a queued or training version" in again["detail"]
    status, again = await activate(admin, first["id"])
    assert status == 409 and again["state"] == "cancelled", again
    assert await audited(admin, "model.cancel") == [(first["id"], body["error"][13:])]


async def test_cancelling_stops_the_workshop_and_frees_the_shop(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    workshop.running_for = 30
    await drafts(admin)
    first = await train(admin)

    async def training() -> bool:
        return (await model(admin, first["id"]))["stage"] == "training the NLU"
    await until(training)
    status, body = await admin.call("POST", f"/models/{first['id']}/cancel", role="owner")
    assert status == 200 and body["state"] == "cancelled", body
    assert workshop.trainings[first["id"]].cancelled  # DELETE /train/{version}
    assert (await job_ended(admin, first["job"]["id"]))["status"] == "cancelled"
    # The shop's place is free at once: the next training starts and ends ready.
    workshop.running_for = 0.3
    second = await train(admin)
    assert (await ended(admin, second["id"]))[0]["state"] == "ready"
    assert (await model(admin, first["id"]))["state"] == "cancelled"


async def test_a_version_being_tested_is_read_and_others_activated_until_it_is_cancelled(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    await drafts(admin)
    first = await train(admin)
    assert (await ended(admin, first["id"]))[0]["state"] == "ready"
    workshop.evaluating_for = 30
    await drafts(admin, NLU + "  - intent: ask_size\n    examples: |\n      - size chart?\n")
    second = await train(admin)

    async def testing() -> bool:
        return (await model(admin, second["id"]))["stage"] == "testing: running the test stories"
    await until(testing)
    # While it is tested: reading it, and activating another version (and back), answer.
    assert (await activate(admin, first["id"]))[0] == 200
    assert (await activate(admin, "base"))[0] == 200
    assert (await model(admin, second["id"]))["state"] == "training"
    status, body = await activate(admin, second["id"])  # itself: not before it is ready
    assert status == 409 and body["state"] == "training", body
    assert body["detail"].startswith("the version is training (testing: running the test")
    status, body = await admin.call("POST", f"/models/{second['id']}/cancel", role="designer")
    assert status == 200 and body["state"] == "cancelled", body
    assert workshop.requests_to(f"/evaluate/{second['id']}", "DELETE")
    job = await job_ended(admin, second["job"]["id"])
    assert job["status"] == "cancelled" and job["result"] is None, job
    body = await model(admin, second["id"])  # the handler's end recorded nothing over it
    assert body["state"] == "cancelled" and body["evaluation"] is None, body
    status, body = await admin.call("POST", f"/models/{first['id']}/cancel", role="designer")
    assert status == 409 and body["state"] == "ready", body


async def test_a_version_not_in_use_is_deleted_with_its_model_file(
        admin: Admin, workshop: TrainingWorkshop) -> None:
    await drafts(admin)
    first = await train(admin)
    assert (await ended(admin, first["id"]))[0]["state"] == "ready"
    assert (await activate(admin, first["id"]))[0] == 200
    status, body = await admin.call("DELETE", f"/models/{first['id']}", role="designer")
    assert status == 409 and body["active"] is True, body
    assert "activate another one (or base) first" in body["detail"]
    workshop.queued_for = 30
    await drafts(admin, NLU + "  - intent: ask_size\n    examples: |\n      - size chart?\n")
    second = await train(admin)  # from changed drafts: the same ones are not trained again
    status, body = await admin.call("DELETE", f"/models/{second['id']}", role="designer")
    assert status == 409 and body["state"] == "queued", body
    assert "cancel it first" in body["detail"]
    assert (await admin.call("POST", f"/models/{second['id']}/cancel", role="designer"))[0] \
        == 200
    status, body = await admin.call("DELETE", f"/models/{second['id']}", role="owner",
                                    shop=admin.other)
    assert status == 404, body
    status, body = await admin.call("DELETE", "/models/base", role="designer")
    assert status == 409 and "cannot be deleted" in body["detail"], body
    status, body = await admin.call("DELETE", f"/models/{second['id']}", role="designer")
    assert status == 204, body
    assert (await admin.call("GET", f"/models/{second['id']}", role="designer"))[0] == 404
    assert (await admin.call("GET", f"/jobs/{second['job']['id']}", role="designer"))[0] == 404
    assert (await activate(admin, "base"))[0] == 200
    workshop.fail_next(503, match=lambda r: r.method == "DELETE")  # the workshop down
    status, body = await admin.call("DELETE", f"/models/{first['id']}", role="designer")
    assert status == 503 and "nothing was deleted" in body["detail"], body
    assert first["id"] in workshop.models
    assert (await model(admin, first["id"]))["state"] == "ready"
    status, body = await admin.call("DELETE", f"/models/{first['id']}", role="designer")
    assert status == 204, body
    assert first["id"] not in workshop.models  # its file is gone
    assert workshop.requests_to(f"/shops/{admin.demo.id}/models/{second['id']}", "DELETE")
    assert (await admin.call("GET", "/models", role="designer"))[1]["total"] == 0
    assert [target for target, _ in await audited(admin, "model.delete")] == [
        second["id"], first["id"]]
