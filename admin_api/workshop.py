"""The admin service's calls to the workshop (bot/workshop.py): Rasa's own checks of a shop's
drafts, and training and activating shops' own models, run in Rasa's interpreter, since our
3.11 code never imports Rasa.

`POST {WORKSHOP_URL}/validate` with `{"files": {"<kind>/<name>.yml": "<yaml>"}}` answers
`{"errors": [{"file", "line", "message"}], "warnings": [...], "complete": bool}` (warnings
never stop a training; a workshop that sends none has none). The key is the short-lived JWT
Rasa's HTTP API takes (core/rasa_http.py), in the Authorization header.

No retries: a check takes 1.5-2 s of Rasa's time (the workshop's first one a few more), the
designer asked for it and can ask again, and a second try after a timeout would only queue
behind the first. Not reachable, a timeout, or an answer that is not the expected JSON:
`WorkshopUnavailable`, which POST /training/validate answers as 503.

Training (issue 15): `POST /train {shop, version, files}` queues a version (202, or 200 when
the workshop knows it already: a resubmit is harmless), 409 while another version of the shop
is queued or running (`TrainingConflict`); `GET /train/{version}` says how far it is (404 when
the workshop does not know it, e.g. after a restart: `UnknownVersion`, submit it again);
`DELETE /train/{version}` cancels it; `PUT /shops/{shop}/active {version}` switches the shop's
bot to a trained version or (None) to the base model, 404 when that model's file does not
exist (`UnknownVersion`); `DELETE /shops/{shop}/models/{version}` removes a version's model
file (200 whether or not there was one; 409 `TrainingConflict` while the shop's bot serves it
or another version's testing compares with it). The same rule for everything else:
unreachable, a 5xx, an unexpected status or an answer that is not the contract's JSON is
`WorkshopUnavailable`.

Testing a trained version (issue 15): `POST /evaluate {shop, version, files, against:
{version, files}, messages}` queues its evaluation in the same queue (202/200, 409 as for
training, 404 `UnknownVersion` when a model file is missing), `GET /evaluate/{version}` follows
it (404 once the workshop forgot it: submit again) and carries `result` once done,
`DELETE /evaluate/{version}` cancels it. The result is the workshop's JSON as it is
(bot/evaluate_shop.py); the admin stores it, and GET /models/{id} types it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from admin_api.training.nodes import Problem
from core.rasa_http import Authorization
from core.settings import Secret

log = logging.getLogger(__name__)

# Connecting is loopback or the backend network: 2 s is long. A check runs 1.5-2 s, the first
# one after the workshop starts waits for Rasa's import too (about 5 s); checks run one at a
# time there, so a few designers at once queue.
TIMEOUT = httpx.Timeout(30.0, connect=2.0)


class WorkshopUnavailable(Exception):
    """The workshop did not check the drafts; the message says why, for the log and the 503."""


class TrainingConflict(Exception):
    """409: another version of the shop is queued or running in the workshop."""


class UnknownVersion(Exception):
    """404: the workshop does not know that version (or, activating, has no model file)."""


@dataclass(frozen=True)
class TrainedModel:
    file: str  # shops/<shop>/<version>.tar.gz, under the workshop's models directory
    fingerprint: str
    size: int  # bytes
    seconds: float | None  # training time; None when the workshop no longer knows it


@dataclass(frozen=True)
class Training:
    """A version's training as the workshop last told it."""

    version: str
    state: str  # queued | running | done | failed
    progress: float  # 0..1
    stage: str  # words for people
    position: int | None  # 0 running, k: k-th in the queue
    error: str | None
    model: TrainedModel | None  # once done


@dataclass(frozen=True)
class Evaluation:
    """A version's evaluation as the workshop last told it (states as for training)."""

    version: str
    state: str  # queued | running | done | failed
    progress: float
    stage: str
    position: int | None
    error: str | None
    result: dict[str, Any] | None  # once done


class WorkshopClient:
    def __init__(self, base_url: str, jwt_key: Secret,
                 client: httpx.AsyncClient | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._authorization = Authorization(jwt_key)
        self._client = client  # made at first use: most admin processes never validate

    async def _send(self, method: str, path: str, body: Any = None,
                    expect: tuple[int, ...] = (200,), typed: bool = True) -> Any:
        """The answer's JSON for an `expect`ed status; when `typed`, 404 `UnknownVersion` and
        409 `TrainingConflict` (with the workshop's detail); anything else
        `WorkshopUnavailable`."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT)
        try:
            answer = await self._client.request(method, f"{self._base}{path}", json=body,
                                                headers=self._authorization.headers())
        except httpx.HTTPError as exc:
            raise WorkshopUnavailable(f"the workshop is not reachable ({type(exc).__name__})"
                                      ) from None
        if typed and answer.status_code in (404, 409) and answer.status_code not in expect:
            kind = UnknownVersion if answer.status_code == 404 else TrainingConflict
            raise kind(_detail(answer))
        if answer.status_code not in expect:
            raise WorkshopUnavailable(f"the workshop answered {answer.status_code}")
        try:
            return answer.json()
        except ValueError:
            raise WorkshopUnavailable("the workshop's answer is not what it should be") from None

    async def validate(self, files: Mapping[str, str]) -> list[Problem]:
        """Rasa's findings about the drafts ({"nlu/x.yml": content}) over the base: its errors,
        then its warnings (severity "warning")."""
        answer = await self._send("POST", "/validate", {"files": dict(files)}, typed=False)
        try:
            return [*(_problem(item) for item in answer["errors"]),
                    *(_problem(item, "warning") for item in answer.get("warnings", []))]
        except (KeyError, TypeError, ValueError):
            raise WorkshopUnavailable("the workshop's answer is not what it should be") from None

    async def train(self, shop: str, version: str, files: Mapping[str, str]) -> Training:
        """Queue the version (or hear about it, when the workshop knows it already)."""
        return _training(await self._send(
            "POST", "/train", {"shop": shop, "version": version, "files": dict(files)},
            expect=(200, 202)))

    async def training(self, version: str) -> Training:
        """How far the version's training is; `UnknownVersion` when the workshop lost it."""
        return _training(await self._send("GET", f"/train/{version}"))

    async def cancel(self, version: str) -> Training:
        """Cancel a queued or running training; `UnknownVersion` when there is none."""
        return _training(await self._send("DELETE", f"/train/{version}"))

    async def evaluate(self, shop: str, version: str, files: Mapping[str, str],
                       against: str | None, against_files: Mapping[str, str],
                       messages: list[str]) -> Evaluation:
        """Queue the trained version's tests and comparison with `against` (None: the base)."""
        return _evaluation(await self._send(
            "POST", "/evaluate", {"shop": shop, "version": version, "files": dict(files),
                                  "against": {"version": against, "files": dict(against_files)},
                                  "messages": messages}, expect=(200, 202)))

    async def evaluation(self, version: str) -> Evaluation:
        """How far the version's evaluation is; `UnknownVersion` when the workshop lost it."""
        return _evaluation(await self._send("GET", f"/evaluate/{version}"))

    async def cancel_evaluation(self, version: str) -> Evaluation:
        return _evaluation(await self._send("DELETE", f"/evaluate/{version}"))

    async def set_active(self, shop: str, version: str | None) -> None:
        """Serve `version` (None: the base model) to the shop; `UnknownVersion` when that
        version's model file does not exist in the workshop."""
        answer = await self._send("PUT", f"/shops/{shop}/active", {"version": version})
        if not isinstance(answer, dict) or answer.get("version") != version:
            raise WorkshopUnavailable("the workshop's answer is not what it should be")

    async def delete_model(self, shop: str, version: str) -> bool:
        """Remove the version's model file (its training or testing stopped first); whether
        there was one."""
        answer = await self._send("DELETE", f"/shops/{shop}/models/{version}")
        if not isinstance(answer, dict) or not isinstance(answer.get("deleted"), bool):
            raise WorkshopUnavailable("the workshop's answer is not what it should be")
        return bool(answer["deleted"])

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _problem(item: Any, severity: Literal["error", "warning"] = "error") -> Problem:
    if not isinstance(item, dict):
        raise TypeError("a finding is an object")
    return Problem(str(item["file"]), int(item["line"]), str(item["message"]), severity)


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail)[:500] if detail else f"the workshop answered {answer.status_code}"


def _training(item: Any) -> Training:
    try:
        model = item.get("model")
        trained = None if model is None else TrainedModel(
            file=str(model["file"]), fingerprint=str(model["fingerprint"]),
            size=int(model["size"]),
            seconds=None if model.get("seconds") is None else float(model["seconds"]))
        position = item.get("position")
        error = item.get("error")
        return Training(
            version=str(item["version"]), state=str(item["state"]),
            progress=min(max(float(item.get("progress") or 0.0), 0.0), 1.0),
            stage=str(item.get("stage") or ""),
            position=None if position is None else int(position),
            error=None if error is None else str(error), model=trained)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise WorkshopUnavailable("the workshop's answer is not what it should be") from None


def _evaluation(item: Any) -> Evaluation:
    try:
        result = item.get("result")
        if result is not None and not isinstance(result, dict):
            raise TypeError("a result is an object")
        position = item.get("position")
        error = item.get("error")
        return Evaluation(
            version=str(item["version"]), state=str(item["state"]),
            progress=min(max(float(item.get("progress") or 0.0), 0.0), 1.0),
            stage=str(item.get("stage") or ""),
            position=None if position is None else int(position),
            error=None if error is None else str(error), result=result)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise WorkshopUnavailable("the workshop's answer is not what it should be") from None
