"""Appending events to a conversation, the conversation named in the body (runs in .venv-bot).

    POST /webhooks/switchboard/events  {"sender": "<tenant>:<channel>:<key>", "events": [...]}
    -> {"appended": <n>}   (same bearer JWT as Rasa's HTTP API)

The admin service appends an agent's reply and the bot's resumption this way (admin_api/
rasa.py). Rasa's own `POST /conversations/{id}/tracker/events` names the conversation in the
path, and a sender id cannot travel there safely: Rasa's Sanic 21 does not unquote path
parameters, so any character a path must escape (a space, "é", "'" in an email address)
names another conversation, and one it need not escape can leave the path altogether: HTTP
clients resolve "." and ".." segments, so a REST sender "x/../../../conversations/<another
shop>:rest:<visitor>" had an agent's reply and a resume written into another shop's
conversation. In the body the id is taken as it is, and must be tenant-scoped.

Otherwise this does what Rasa's route does (rasa/server.py `append_events`): under the
conversation's lock, the tracker (with a session started when the events do not start one)
is updated with the events and saved, by the agent of the sender's shop (bot/runtime.py).
"""

from __future__ import annotations

import logging
from typing import Any

from rasa.server import update_conversation_with_events
from rasa.shared.core.events import Event
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.runtime import ShopRouter, shop_of
from core.rasa_http import valid_bearer
from core.settings import BotSettings

log = logging.getLogger(__name__)

MAX_EVENTS = 50  # an agent's reply and a resume are a few


def register(webhook: Blueprint) -> None:
    @webhook.route("/events", methods=["POST"])
    async def append_events(request: Request) -> HTTPResponse:
        if not valid_bearer(request.headers.get("Authorization", ""),
                            BotSettings.from_env().rasa_jwt_key):
            return _problem(401, "send Authorization: Bearer <JWT> as for Rasa's HTTP API")
        sender, raw = _body(request)
        if not sender or not shop_of(sender):
            return _problem(400, "`sender` must be a tenant-scoped sender id")
        if raw is None:
            return _problem(400, f"`events` must be a list of 1 to {MAX_EVENTS} events")
        events = [event for event in map(_event, raw) if event is not None]
        if len(events) != len(raw):
            return _problem(400, "an event of `events` is not one Rasa knows")
        agent = request.app.ctx.agent
        if isinstance(agent, ShopRouter):
            await agent.prepare(shop_of(sender))  # the sender's shop's agent serves below
        async with agent.lock_store.lock(sender):
            tracker = await update_conversation_with_events(sender, agent.processor,
                                                            agent.domain, events)
            await agent.tracker_store.save(tracker)
        return response.json({"appended": len(events)})


def _body(request: Request) -> tuple[str | None, list[Any] | None]:
    try:
        body = request.json
    except Exception:  # Sanic's InvalidUsage, RecursionError: no JSON we can read
        return None, None
    if not isinstance(body, dict):
        return None, None
    sender, events = body.get("sender"), body.get("events")
    if not isinstance(events, list) or not 0 < len(events) <= MAX_EVENTS:
        events = None
    return (sender if isinstance(sender, str) else None), events


def _event(raw: Any) -> Event | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Event.from_parameters(raw)
    except Exception:  # Rasa raises what a malformed event's fields make it raise
        log.info("tracker events: refused an event of type %r", raw.get("event"))
        return None


def _problem(status: int, detail: str) -> HTTPResponse:
    return response.json({"detail": detail}, status=status)
