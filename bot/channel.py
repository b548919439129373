"""Rasa's REST channel, answering also what Rasa made of the message (runs in .venv-bot).

    POST /webhooks/switchboard/webhook  {"sender", "message", "metadata"}
    -> {"messages": [...as the REST channel...],
        "turn": {"intent", "confidence", "actions", "responses", "paused"}}

Rasa's own REST channel returns only the bot's messages; the gateway also records per turn
the intent, its confidence and the turn's outcome (core/conversations.py `outcome_of`), which
needs the actions Rasa ran and the responses it said. Asking Rasa's HTTP API for the tracker
afterwards would cost a second request and a tracker load per turn. Instead, while this
channel hands a message to Rasa, a context variable holds a `TurnRecord`; the processor's
`save_tracker`, called once at the end of `handle_message` with the tracker in memory, is
wrapped to keep a reference to that tracker in the record (only for the same sender, and only
inside this channel's request: every other caller runs as before). The turn's facts are then
read from the events after the message's own `UserUttered`, newest first, which stops at that
event: the cost does not grow with the conversation (tests/bot/test_channel.py counts the
events read).

- `intent`, `confidence`: the parse of this message (after our NLU components).
- `actions`: the actions run for it, in order, without `action_listen` and
  `action_extract_slots` (run on every turn, they say nothing about it).
- `responses`: names of the domain responses said (BotUttered metadata `utter_action`, for
  responses said by Rasa's own actions and by custom actions alike).
- `paused`: the conversation is paused for a person (Rasa recorded the message, answered
  nothing).
- `model`: which model answered: "base", or the shop's own version (bot/runtime.py).

`GET /webhooks/switchboard/models` (same bearer JWT as Rasa's HTTP API) says which model
answers which shop, which are loaded and the memory they take (`ShopRouter.describe`).
`POST /webhooks/switchboard/events` appends events to the conversation its body names
(bot/tracker_events.py: an agent's reply, a resume).

At most BOT_TURN_SLOTS turns run inside Rasa at once; the others wait, each shop's in the order
they came and the shops taking turns, and a turn kept waiting by the action server gives its
slot up meanwhile (bot/turn_gate.py says why and how). Measured with `.venv/bin/python
bench/stock_flow.py --rounds 2` (embedded, 20 conversations at a time): our p95 466 / 501 ms
with the default 3 slots, 712 / 577 ms with BOT_TURN_SLOTS=64 (no limit in practice; the stack
takes the variable from the environment), at the same throughput (48-55 turns/s) and ratio to
the stock bot (3.45-3.57x). Our stack alone with the settings alternated in one run: p95 / p50
1.24-1.40 with 3 slots, 1.28 with 2, 1.62-1.89 with 64.

`turn` is null when Rasa failed before saving the tracker (its messages so far still come
back, as the REST channel does). The plain `rest` channel stays enabled in credentials.yml
(the benchmarks and metrics tests use it).
"""

from __future__ import annotations

import contextvars
import functools
import logging
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.processor import MessageProcessor
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import tracker_events
from bot.featurizer import encoded_ahead, load_ahead_encoder
from bot.runtime import ShopRouter, served_by, shop_of
from bot.turn_gate import TurnGate, waiting_on
from core.rasa_http import valid_bearer
from core.settings import BotSettings

log = logging.getLogger(__name__)

# Run on every turn: they tell nothing about this one.
PLUMBING = frozenset({"action_listen", "action_extract_slots"})


@dataclass
class TurnRecord:
    """One message's handling: the gate it runs in, and the tracker Rasa saved at its end, if
    it got that far."""

    sender_id: str
    gate: TurnGate
    tracker: DialogueStateTracker | None = None


_current: contextvars.ContextVar[TurnRecord | None] = contextvars.ContextVar(
    "switchboard_turn", default=None)
_installed: list[bool] = []


def install() -> None:
    """Wrap, once: MessageProcessor.handle_message, so a turn of this channel runs in its gate
    (bot/turn_gate.py) once it holds its conversation's lock (a turn waiting for another turn
    of the same conversation takes no slot: that one may be out of the gate, waiting to come
    back in); Rasa's HTTP calls (the action server's), so a turn kept waiting by one steps
    out of the gate; MessageProcessor.save_tracker, so the turn sees its tracker."""
    if _installed:
        return
    _installed.append(True)
    save = MessageProcessor.save_tracker
    process = MessageProcessor.handle_message
    call = EndpointConfig.request

    @functools.wraps(process)
    async def handle_message(self: Any, message: UserMessage) -> Any:
        record = _current.get()
        if record is None or record.sender_id != message.sender_id:
            return await process(self, message)
        shop = shop_of(message.sender_id) or ""
        async with encoded_ahead(message.text), record.gate.turn(shop):
            return await process(self, message)

    @functools.wraps(call)
    async def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await waiting_on(call(self, *args, **kwargs))

    MessageProcessor.handle_message = handle_message
    EndpointConfig.request = request

    @functools.wraps(save)
    async def save_tracker(self: Any, tracker: DialogueStateTracker) -> None:
        record = _current.get()
        if record is not None and tracker.sender_id == record.sender_id:
            record.tracker = tracker
        await save(self, tracker)

    MessageProcessor.save_tracker = save_tracker


def turn_facts(tracker: DialogueStateTracker) -> dict[str, Any] | None:
    """What Rasa made of the tracker's latest user message (the keys the module doc names)."""
    actions: list[str] = []
    responses: list[str] = []
    user: UserUttered | None = None
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            user = event
            break
        if isinstance(event, ActionExecuted) and event.action_name not in PLUMBING:
            actions.append(str(event.action_name or event.action_text))
        elif isinstance(event, BotUttered):
            name = (event.metadata or {}).get("utter_action")
            if name:
                responses.append(str(name))
    if user is None:
        return None
    intent = user.intent or {}
    confidence = intent.get("confidence")
    return {"intent": intent.get("name"),
            "confidence": None if confidence is None else round(float(confidence), 4),
            "actions": actions[::-1], "responses": responses[::-1],
            "paused": tracker.is_paused()}


async def handle(on_new_message: Callable[[UserMessage], Awaitable[Any]],
                 message: UserMessage, gate: TurnGate) -> dict[str, Any] | None:
    """Hand `message` to Rasa, which runs it once the gate lets it in (`install`); the turn's
    facts, or None when Rasa saved no tracker."""
    record = TurnRecord(message.sender_id, gate)
    token, model = _current.set(record), served_by.set(None)
    try:
        await on_new_message(message)
        facts = None if record.tracker is None else turn_facts(record.tracker)
        if facts is not None:
            facts["model"] = served_by.get()
    finally:
        _current.reset(token)
        served_by.reset(model)
    return facts


class SwitchboardInput(RestInput):
    """The REST channel's request, plus the turn's facts in the answer (module doc)."""

    @classmethod
    def name(cls) -> str:
        return "switchboard"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        install()
        load_ahead_encoder()
        webhook = Blueprint("switchboard_webhook", __name__)
        from bot.metrics import TURN_WAIT_SECONDS  # after bot/serve.py chose the value storage

        gate = TurnGate(BotSettings.from_env().bot_turn_slots,
                        waited=TURN_WAIT_SECONDS.observe)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/models", methods=["GET"])
        async def models(request: Request) -> HTTPResponse:
            if not valid_bearer(request.headers.get("Authorization", ""),
                                BotSettings.from_env().rasa_jwt_key):
                return response.json({"detail": "send Authorization: Bearer <JWT> as for "
                                                "Rasa's HTTP API"}, status=401)
            router = request.app.ctx.agent
            if not isinstance(router, ShopRouter):
                return response.json({"detail": "the model is still loading"}, status=503)
            return response.json(router.describe())

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            text = self._extract_message(request)
            collector = CollectingOutputChannel()
            message = UserMessage(text, collector, await self._extract_sender(request),
                                  input_channel=self._extract_input_channel(request),
                                  metadata=self.get_metadata(request))
            turn = None
            try:  # as the REST channel: what was said so far goes back, also after an error
                turn = await handle(on_new_message, message, gate)
            except CancelledError:
                log.error("switchboard turn timed out")
            except Exception:
                log.exception("switchboard turn failed")
            return response.json({"messages": collector.messages, "turn": turn})

        tracker_events.register(webhook)  # POST /webhooks/switchboard/events
        return webhook
