"""The workshop: the bot side's home for designers' work, a small HTTP service in Rasa's
interpreter (Python 3.10, `.venv-bot`), on loopback.

    PYTHONPATH=. .venv-bot/bin/python -m bot.workshop

Our 3.11 processes never import Rasa (DESIGN.md, Processes); what needs Rasa's own machinery
for a shop's training data runs here, called over HTTP. Now one route:

    POST /validate  {"files": {"nlu/bikes.yml": "<yaml>", "rules/bikes.yml": ..., ...}}
                 -> {"errors": [{"file", "line", "message"}], "complete": bool}

the shop's drafts layered over the base data, checked as `rasa data validate` checks a
project (bot/rasa_checks.py). Training comes in issue 15's next slice, as a worker here.

Authenticated like Rasa's HTTP API (bot/serve.py): `Authorization: Bearer <JWT>`, HS256 with
`BotSettings.rasa_jwt_key`, which the admin service mints with core/rasa_http.py
`rasa_api_token`; anything else is 401. `GET /health` answers without a token (compose's
healthcheck) and says nothing about data.

One Rasa interpreter serves every call: the checks run one at a time on one worker thread
(Rasa's warnings and log capture are process-wide), off the event loop; Rasa is imported and
the base's own warnings computed on that thread as the server starts, so the first call waits
for that (about 5 s) and later ones take 1.5-2 s. Bodies over `MAX_BODY` are refused (413), bad
JSON is 400, each with `{"detail": ...}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
from aiohttp import web

from bot.rasa_checks import Checker, parse_files
from core.logs import configure
from core.settings import BotSettings, Secret

log = logging.getLogger(__name__)

# A shop's drafts total at most 2 MB (admin_api/training/drafts.py MAX_SHOP_BYTES); JSON
# escaping of newlines and quotes adds a little.
MAX_BODY = 4 * 1024 * 1024

JWT_KEY = web.AppKey("jwt_key", Secret)
CHECKER = web.AppKey("checker", Checker)
WORKER = web.AppKey("worker", ThreadPoolExecutor)
WARM = web.AppKey("warm", asyncio.Future)


def problem(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own refusals (413, 404, 405) as JSON too."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason)


def authorized(request: web.Request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    try:
        jwt.decode(token.strip(), request.app[JWT_KEY].reveal(), algorithms=["HS256"],
                   options={"require": ["exp"]})
    except jwt.PyJWTError:
        return False
    return True


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "ready": request.app[WARM].done()})


async def validate(request: web.Request) -> web.Response:
    if not authorized(request):
        return problem(401, "send Authorization: Bearer <JWT signed with the key derived from "
                            "RASA_TOKEN> (core/rasa_http.py rasa_api_token)")
    body = await request.read()  # past MAX_BODY aiohttp raises 413
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return problem(400, f"the body is not JSON: {exc}")
    if not isinstance(payload, dict) or "files" not in payload:
        return problem(400, 'send {"files": {"<kind>/<name>.yml": "<yaml>", ...}}')
    try:
        files = parse_files(payload["files"])
    except ValueError as exc:
        return problem(400, str(exc))
    loop = asyncio.get_running_loop()
    report = await loop.run_in_executor(request.app[WORKER], request.app[CHECKER].check, files)
    log.info("checked %d drafts: %d findings%s", len(files), len(report.errors),
             "" if report.complete else " (schema errors: checks across files skipped)")
    return web.json_response({"errors": [f.as_json() for f in report.errors],
                              "complete": report.complete})


async def warm_up(app: web.Application) -> None:
    """Rasa's import and the base run on the worker thread while the server already answers."""
    loop = asyncio.get_running_loop()
    app[WARM] = loop.run_in_executor(app[WORKER], app[CHECKER].base_warnings)


async def shut_down(app: web.Application) -> None:
    app[WORKER].shutdown(wait=False, cancel_futures=True)


def create_app(settings: BotSettings, checker: Checker | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors])
    app[JWT_KEY] = settings.rasa_jwt_key
    app[CHECKER] = checker or Checker()
    app[WORKER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workshop")
    app.on_startup.append(warm_up)
    app.on_cleanup.append(shut_down)
    app.router.add_get("/health", health)
    app.router.add_post("/validate", validate)
    return app


def main() -> None:
    settings = BotSettings.from_env()  # a missing RASA_TOKEN stops the workshop here
    configure(settings.log_level)
    log.info("workshop listening on %s:%d", settings.workshop_host, settings.workshop_port)
    web.run_app(create_app(settings), host=settings.workshop_host, port=settings.workshop_port,
                access_log=None, print=None)


if __name__ == "__main__":
    main()
