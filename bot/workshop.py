"""The workshop: the bot side's home for designers' work, a small HTTP service in Rasa's
interpreter (Python 3.10, `.venv-bot`), on loopback.

    PYTHONPATH=. .venv-bot/bin/python -m bot.workshop

Our 3.11 processes never import Rasa (DESIGN.md, Processes); what needs Rasa's own machinery
for a shop's training data runs here, called over HTTP. Its routes:

    POST /validate  {"files": {"nlu/bikes.yml": "<yaml>", "rules/bikes.yml": ..., ...}}
                 -> {"errors": [{"file", "line", "message"}], "warnings": [...],
                     "complete": bool}

the shop's drafts layered over the base data, checked as `rasa data validate` checks a
project (bot/rasa_checks.py); warnings never stop a training;

    POST   /train  {"shop", "version", "files"} -> 202 (new) or 200 (known) with the job
    GET    /train/{version}                      -> the job: state, progress, stage, position,
                                                    error, model {file, fingerprint, size, seconds}
    DELETE /train/{version}                      -> cancels it

a shop model trained in a process of its own, queued (bot/training.py; 409 while another
version of the shop is in line or training, 404 for a version this process does not know);

    POST   /evaluate {"shop", "version", "files",
                      "against": {"version": "<id>" | null, "files": {...}},
                      "messages": ["<visitor text>", ...]}  -> 202 (new) or 200 (known)
    GET    /evaluate/{version}   -> the job as for training, with `against` and, once done,
                                    `result` (bot/evaluate_shop.py: held-out metrics, tests,
                                    routing, seconds)
    DELETE /evaluate/{version}   -> cancels it

a trained version tested and compared with the shop's version `against` (null: the base
model), in the same queue as trainings (same slots, one job a shop: 409), keyed by the version
tested; 404 when either model file does not exist, or for an evaluation this process does not
know. `messages` are the shop's recent visitor texts, masked by the admin service, at most
MAX_MESSAGES;

    GET /shops/{shop}/active  PUT /shops/{shop}/active {"version": "<id>" | null}

which trained version a shop's conversations use (null: the base model), the file every bot
runtime watches (bot/shop_models.py); 404 when that version's model does not exist;

    DELETE /shops/{shop}/models/{version}   -> {"shop", "version", "deleted": bool}

a version's model file and its training-time record gone (the admin deletes the version):
its training or testing, if any, is cancelled first; 409 while the shop's bot serves it or
another version's testing compares with it (that test would lose its model half-way).

Authenticated like Rasa's HTTP API (bot/serve.py): `Authorization: Bearer <JWT>`, HS256 with
`BotSettings.rasa_jwt_key`, which the admin service mints with core/rasa_http.py
`rasa_api_token`; anything else is 401. `GET /health` answers without a token (compose's
healthcheck) and says nothing about data.

One Rasa interpreter serves every call: the checks run one at a time on one worker thread
(Rasa's warnings and log capture are process-wide), off the event loop; Rasa is imported and
the base's own warnings computed on that thread as the server starts, so the first call waits
for that (about 5 s) and later ones take 1.5-2 s. Training runs in child processes, so checks
go on meanwhile. Bodies over `MAX_BODY` are refused (413), bad JSON is 400, each with
`{"detail": ...}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from bot.rasa_checks import Checker, parse_files
from bot.shop_models import Registry, check_shop, check_version
from bot.training import Busy, TrainingJob, TrainingQueue
from core.logs import configure
from core.rasa_http import valid_bearer
from core.settings import BotSettings, Secret

log = logging.getLogger(__name__)
T = TypeVar("T")

# A shop's drafts total at most 2 MB (admin_api/training/drafts.py MAX_SHOP_BYTES); JSON
# escaping of newlines and quotes adds a little.
MAX_BODY = 4 * 1024 * 1024
# The admin sends at most 2,000 (admin_api/training/jobs.py); a message is cut at MAX_TEXT.
MAX_MESSAGES = 5000
MAX_TEXT = 1000

JWT_KEY = web.AppKey("jwt_key", Secret)
QUEUE = web.AppKey("queue", TrainingQueue)
REGISTRY = web.AppKey("registry", Registry)
OPEN = frozenset({"/health"})  # answered without a token
CHECKER = web.AppKey("checker", Checker)
WORKER = web.AppKey("worker", ThreadPoolExecutor)
WARM = web.AppKey("warm", asyncio.Future)


def problem(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own refusals (413, 404, 405) and malformed requests as JSON too."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason)
    except BadRequest as exc:
        return problem(400, str(exc))


@web.middleware
async def require_token(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path not in OPEN and not valid_bearer(
            request.headers.get("Authorization", ""), request.app[JWT_KEY]):
        return problem(401, "send Authorization: Bearer <JWT signed with the key derived from "
                            "RASA_TOKEN> (core/rasa_http.py rasa_api_token)")
    response: web.StreamResponse = await handler(request)
    return response


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "ready": request.app[WARM].done()})


class BadRequest(Exception):
    """The request's body is not what the route takes; the message says why."""


def checked(check: Callable[[Any], T], value: Any) -> T:
    """`check(value)`, its ValueError a 400."""
    try:
        return check(value)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


async def json_body(request: web.Request) -> dict[str, Any]:
    body = await request.read()  # past MAX_BODY aiohttp raises 413
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    return payload


async def validate(request: web.Request) -> web.Response:
    payload = await json_body(request)
    if "files" not in payload:
        return problem(400, 'send {"files": {"<kind>/<name>.yml": "<yaml>", ...}}')
    files = checked(parse_files, payload["files"])
    loop = asyncio.get_running_loop()
    report = await loop.run_in_executor(request.app[WORKER], request.app[CHECKER].check, files)
    log.info("checked %d drafts: %d errors, %d warnings%s", len(files), len(report.errors),
             len(report.warnings),
             "" if report.complete else " (schema errors: checks across files skipped)")
    return web.json_response({"errors": [f.as_json() for f in report.errors],
                              "warnings": [f.as_json() for f in report.warnings],
                              "complete": report.complete})


async def train(request: web.Request) -> web.Response:
    payload = await json_body(request)
    queue = request.app[QUEUE]
    files = checked(parse_files, payload.get("files"))
    shop = checked(check_shop, payload.get("shop"))
    version = checked(check_version, payload.get("version"))
    try:
        job, new = queue.submit(shop, version, files)
    except Busy as exc:
        return problem(409, str(exc))
    return web.json_response(queue.describe(job), status=202 if new else 200)


def parse_messages(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise ValueError("messages must be a list of strings")
    if len(value) > MAX_MESSAGES:
        raise ValueError(f"at most {MAX_MESSAGES} messages")
    return [m[:MAX_TEXT] for m in value]


async def evaluate(request: web.Request) -> web.Response:
    payload = await json_body(request)
    queue = request.app[QUEUE]
    files = checked(parse_files, payload.get("files"))
    shop = checked(check_shop, payload.get("shop"))
    version = checked(check_version, payload.get("version"))
    against = payload.get("against")
    if not isinstance(against, dict) or "version" not in against:
        return problem(400, 'send "against": {"version": "<id>" or null, "files": {...}}')
    against_version = against["version"]
    if against_version is not None:
        checked(check_version, against_version)
    against_files = checked(parse_files, against.get("files") or {})
    messages = checked(parse_messages, payload.get("messages"))
    try:
        job, new = queue.evaluate(shop, version, files, against_version, against_files,
                                  messages)
    except Busy as exc:
        return problem(409, str(exc))
    except FileNotFoundError as exc:
        return problem(404, f"{exc}: train it first")
    return web.json_response(queue.describe(job), status=202 if new else 200)


async def evaluation(request: web.Request) -> web.Response:
    return web.json_response(request.app[QUEUE].describe(_job(request, "evaluate")))


async def cancel_evaluation(request: web.Request) -> web.Response:
    queue = request.app[QUEUE]
    job = _job(request, "evaluate")
    queue.cancel(job.version, "evaluate")
    return web.json_response(queue.describe(job))


def _job(request: web.Request, kind: str = "train") -> TrainingJob:
    queue = request.app[QUEUE]
    job = (queue.jobs if kind == "train" else queue.evaluations).get(
        request.match_info["version"])
    if job is None:
        raise web.HTTPNotFound(reason="this workshop does not know that version (it may have "
                                      "restarted): submit it again")
    return job


async def training(request: web.Request) -> web.Response:
    return web.json_response(request.app[QUEUE].describe(_job(request)))


async def cancel_training(request: web.Request) -> web.Response:
    queue = request.app[QUEUE]
    job = _job(request)
    queue.cancel(job.version)
    return web.json_response(queue.describe(job))


async def active_model(request: web.Request) -> web.Response:
    shop = checked(check_shop, request.match_info["shop"])
    return web.json_response({"shop": shop, "version": request.app[REGISTRY].active().get(shop)})


async def set_active_model(request: web.Request) -> web.Response:
    shop = checked(check_shop, request.match_info["shop"])
    payload = await json_body(request)
    if "version" not in payload:
        return problem(400, 'send {"version": "<version id>"} or {"version": null} for the base')
    version = payload["version"]
    if version is not None:
        checked(check_version, version)
    try:
        await asyncio.to_thread(request.app[REGISTRY].set_active, shop, version)
    except FileNotFoundError:
        return problem(404, f"shop {shop} has no trained model {version}")
    return web.json_response({"shop": shop, "version": version})


async def delete_model(request: web.Request) -> web.Response:
    shop = checked(check_shop, request.match_info["shop"])
    version = checked(check_version, request.match_info["version"])
    if request.app[REGISTRY].active().get(shop) == version:
        return problem(409, f"shop {shop} uses model {version}: switch it to another first")
    queue = request.app[QUEUE]
    for testing in queue.evaluations.values():
        if testing.shop == shop and testing.active and testing.request.get(
                "against", {}).get("version") == version:
            return problem(409, f"model {version} is being compared with {testing.version}; "
                                "delete it once that testing has ended")
    for kind, jobs in (("train", queue.jobs), ("evaluate", queue.evaluations)):
        job = jobs.get(version)
        if job is not None and job.shop == shop:
            queue.cancel(version, kind)  # a cancelled training never writes its model
            del jobs[version]  # forgotten: a poll is 404, as for a version never trained
    model = request.app[REGISTRY].model_file(shop, version)
    deleted = await asyncio.to_thread(remove_model, model)
    log.info("shop model %s of shop %s deleted (%s)", version, shop,
             "its file removed" if deleted else "there was no file")
    return web.json_response({"shop": shop, "version": version, "deleted": deleted})


def remove_model(model: Path) -> bool:
    """The model file and its training time's record beside it (bot/training.py `_sidecar`);
    whether the model was there."""
    model.with_name(model.name.replace(".tar.gz", ".json")).unlink(missing_ok=True)
    try:
        model.unlink()
    except FileNotFoundError:
        return False
    return True


async def warm_up(app: web.Application) -> None:
    """Rasa's import and the base run on the worker thread while the server already answers."""
    loop = asyncio.get_running_loop()
    app[WARM] = loop.run_in_executor(app[WORKER], app[CHECKER].base_warnings)


async def shut_down(app: web.Application) -> None:
    await app[QUEUE].close()
    app[WORKER].shutdown(wait=False, cancel_futures=True)


def create_app(settings: BotSettings, checker: Checker | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors, require_token])
    app[JWT_KEY] = settings.rasa_jwt_key
    app[CHECKER] = checker or Checker()
    app[REGISTRY] = Registry(settings.shop_models_dir)
    app[QUEUE] = TrainingQueue(app[REGISTRY], settings.workshop_training_slots)
    app[WORKER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workshop")
    app.on_startup.append(warm_up)
    app.on_cleanup.append(shut_down)
    app.router.add_get("/health", health)
    app.router.add_post("/validate", validate)
    app.router.add_post("/train", train)
    app.router.add_get("/train/{version}", training)
    app.router.add_delete("/train/{version}", cancel_training)
    app.router.add_post("/evaluate", evaluate)
    app.router.add_get("/evaluate/{version}", evaluation)
    app.router.add_delete("/evaluate/{version}", cancel_evaluation)
    app.router.add_get("/shops/{shop}/active", active_model)
    app.router.add_put("/shops/{shop}/active", set_active_model)
    app.router.add_delete("/shops/{shop}/models/{version}", delete_model)
    return app


def main() -> None:
    settings = BotSettings.from_env()  # a missing RASA_TOKEN stops the workshop here
    configure(settings.log_level)
    log.info("workshop listening on %s:%d", settings.workshop_host, settings.workshop_port)
    web.run_app(create_app(settings), host=settings.workshop_host, port=settings.workshop_port,
                access_log=None, print=None)


if __name__ == "__main__":
    main()
