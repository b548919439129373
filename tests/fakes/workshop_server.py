"""Stand-ins for the workshop (bot/workshop.py) when Rasa itself is beside the point:
`QuietWorkshop` answers POST /validate (with a bearer JWT) that Rasa found nothing;
`TrainingWorkshop` also speaks the training contract (queued -> running -> done in a few
hundred ms, or failed) and the evaluation contract (POST/GET/DELETE /evaluate: running -> done
with a canned result built from what was sent, or failed; DELETE cancels a running one), and
deletes model files (DELETE /shops/{shop}/models/{version}). The real workshop runs in
tests/bot/test_workshop.py and tests/admin_api/test_training_validate.py."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from tests.fakes import FakeServer, RecordedRequest, Response

CANCELLED = "cancelled"  # the workshop's error for a job cancelled by DELETE


class QuietWorkshop(FakeServer):
    def authorized(self, request: RecordedRequest) -> bool:
        return request.headers.get("authorization", "").startswith("Bearer ey")

    def route(self, request: RecordedRequest) -> Response:
        if (request.method, request.path) != ("POST", "/validate"):
            return 404, {}, {"detail": "not found"}
        return 200, {}, {"errors": [], "complete": True}


@dataclass
class FakeTraining:
    shop: str
    version: str
    files: dict[str, str]
    submitted: float  # time.monotonic()
    fail_with: str | None
    cancelled: bool = False


class TrainingWorkshop(QuietWorkshop):
    """The workshop's training contract (admin_api/workshop.py): a version submitted to POST
    /train is queued for `queued_for` seconds, runs for `running_for` (progress moving), then
    is done with a model file, or failed with `fail_with` when that was set at submission. One
    version of a shop at a time (409). `restart()` forgets the queue as a restarted workshop
    does (GET /train/{version} is then 404); trained model files stay (PUT /shops/{shop}/active
    finds them)."""

    def __init__(self, queued_for: float = 0.1, running_for: float = 0.3,
                 evaluating_for: float = 0.3) -> None:
        super().__init__()
        self.queued_for, self.running_for = queued_for, running_for
        self.evaluating_for = evaluating_for
        self.fail_with: str | None = None
        self.knows_training_time = True  # False: as a workshop without the model's record
        self.evaluation_fails_with: str | None = None
        self.evaluations: dict[str, tuple[dict[str, Any], float, str | None]] = {}
        self.trainings: dict[str, FakeTraining] = {}
        self.models: dict[str, str] = {}  # version -> shop, once done (the files on disk)
        self.active: dict[str, str | None] = {}  # shop -> version

    def restart(self) -> None:
        with self._lock:
            self.trainings.clear()

    def route(self, request: RecordedRequest) -> Response:
        parts = request.path.strip("/").split("/")
        with self._lock:
            if (request.method, parts) == ("POST", ["train"]):
                return self._submit(request)
            if parts[0] == "train" and len(parts) == 2:
                found = self.trainings.get(parts[1])
                if found is None or request.method not in ("GET", "DELETE"):
                    return 404, {}, {"detail": "unknown version: submit it again"}
                if request.method == "DELETE":
                    found.cancelled = True
                return 200, {}, self._status(found)
            if (request.method, parts) == ("POST", ["evaluate"]):
                return self._evaluate(request)
            if parts[0] == "evaluate" and len(parts) == 2 and request.method in ("GET",
                                                                                 "DELETE"):
                if parts[1] not in self.evaluations:
                    return 404, {}, {"detail": "unknown evaluation: submit it again"}
                if request.method == "DELETE" and self._evaluation(parts[1])["state"] == "running":
                    body, started, _ = self.evaluations[parts[1]]
                    self.evaluations[parts[1]] = (body, started, CANCELLED)  # failed now
                return 200, {}, self._evaluation(parts[1])
            if parts[0] == "shops" and len(parts) == 3 and parts[2] == "active":
                return self._active(request, parts[1])
            if (request.method, parts[0], parts[2:3]) == ("DELETE", "shops", ["models"]) \
                    and len(parts) == 4:
                return self._delete_model(parts[1], parts[3])
        return super().route(request)

    def _submit(self, request: RecordedRequest) -> Response:
        body = request.json()
        if not isinstance(body, dict) or not re.fullmatch(r"[0-9a-f]{32}", str(
                body.get("version"))) or not isinstance(body.get("files"), dict):
            return 400, {}, {"detail": "malformed body"}
        version, shop = body["version"], str(body.get("shop"))
        if version in self.trainings:
            return 200, {}, self._status(self.trainings[version])
        for other in self.trainings.values():
            if other.shop == shop and self._state(other) in ("queued", "running"):
                return 409, {}, {"detail": f"version {other.version} of the shop is in training"}
        training = self.trainings[version] = FakeTraining(shop, version, body["files"],
                                                          time.monotonic(), self.fail_with)
        return 202, {}, self._status(training)

    def _state(self, training: FakeTraining) -> str:
        age = time.monotonic() - training.submitted
        if training.cancelled:
            return "failed"
        if age < self.queued_for:
            return "queued"
        if age < self.queued_for + self.running_for:
            return "running"
        return "failed" if training.fail_with else "done"

    def _status(self, training: FakeTraining) -> dict[str, Any]:
        state = self._state(training)
        age = time.monotonic() - training.submitted
        model = None
        if state == "done":
            self.models[training.version] = training.shop
            digest = hashlib.sha256(json.dumps(training.files, sort_keys=True).encode())
            model = {"file": f"shops/{training.shop}/{training.version}.tar.gz",
                     "fingerprint": digest.hexdigest()[:32], "size": 4321,
                     "seconds": self.running_for if self.knows_training_time else None}
        return {"version": training.version, "shop": training.shop, "state": state,
                "progress": {"queued": 0.0, "done": 1.0}.get(
                    state, min((age - self.queued_for) / self.running_for, 1.0)),
                "stage": {"queued": "waiting for a trainer", "running": "training the NLU",
                          "done": "done"}.get(state, "failed"),
                "position": {"queued": 1, "running": 0}.get(state),
                "error": ("cancelled" if training.cancelled else training.fail_with)
                if state == "failed" else None,
                "model": model}

    def _evaluate(self, request: RecordedRequest) -> Response:
        body = request.json()
        version, shop = str(body.get("version")), str(body.get("shop"))
        against = (body.get("against") or {}).get("version")
        if self.models.get(version) != shop or (against is not None
                                                and self.models.get(against) != shop):
            return 404, {}, {"detail": f"no model {version}.tar.gz for shop {shop}"}
        if version in self.evaluations:
            return 200, {}, self._evaluation(version)
        self.evaluations[version] = (body, time.monotonic(), self.evaluation_fails_with)
        return 202, {}, self._evaluation(version)

    def _evaluation(self, version: str) -> dict[str, Any]:
        body, started, fails_with = self.evaluations[version]
        running = fails_with != CANCELLED and time.monotonic() - started < self.evaluating_for
        state = "running" if running else ("failed" if fails_with else "done")
        scores = {"intents": {"ask_size": {"precision": 1.0, "recall": 0.5, "f1": 0.6667,
                                           "support": 2}},
                  "accuracy": 0.5, "macro_f1": 0.6667, "examples": 2,
                  "unscored": {"ask_gift_wrap": 2}}
        messages = body.get("messages") or []
        result = {
            "against": body["against"]["version"],
            "heldout": {"candidate": scores, "against": {**scores, "intents": {}}},
            "tests": {"candidate": {"passed": 31, "failed": 0, "total": 31},
                      "against": {"passed": 30, "failed": 1, "total": 31},
                      "changed": [{"story": "returns", "file": "data/tests/test_returns.yml",
                                   "before": "failed", "after": "passed"}], "failed": []},
            "routing": {"messages": len(messages), "changed": len(messages),
                        "changes": [{"from": "ask_question", "to": "ask_size",
                                     "count": len(messages), "examples": messages[:3]}]
                        if messages else []},
            "seconds": self.evaluating_for, "seconds_by_part": {"tests": 0.1}}
        return {"version": version, "shop": body["shop"], "state": state,
                "progress": 0.5 if running else 1.0,
                "stage": "running the test stories" if running else state, "position": 0
                if running else None, "error": fails_with if state == "failed" else None,
                "against": body["against"]["version"],
                "result": result if state == "done" else None}

    def _delete_model(self, shop: str, version: str) -> Response:
        if self.active.get(shop) == version:
            return 409, {}, {"detail": f"shop {shop} uses model {version}: switch it first"}
        training = self.trainings.get(version)
        if training is not None and training.shop == shop:
            training.cancelled = True
        deleted = self.models.get(version) == shop
        if deleted:
            del self.models[version]
        return 200, {}, {"shop": shop, "version": version, "deleted": deleted}

    def _active(self, request: RecordedRequest, shop: str) -> Response:
        if request.method == "GET":
            return 200, {}, {"shop": shop, "version": self.active.get(shop)}
        if request.method != "PUT":
            return 404, {}, {"detail": "not found"}
        version = request.json().get("version")
        if version is not None and self.models.get(version) != shop:
            return 404, {}, {"detail": "no model file for that version"}
        self.active[shop] = version
        return 200, {}, {"shop": shop, "version": version}
