"""Talking to the Rasa server over its REST channel, on loopback, with bounded waits.

Turns go to our own flavour of that channel (bot/channel.py, /webhooks/switchboard/webhook),
which answers the bot's messages and what Rasa made of the message: intent, confidence, the
actions it ran, the responses it said, whether a person owns the conversation. A `BotTurn`
carries both; its `understood()` is what the inbox records on the visitor's message row. An
answer in the plain REST format (a list of messages) is still read, with nothing understood.

Rasa's HTTP API (/status) is called with a short-lived JWT in the Authorization header, never
with `?token=` in the URL: httpx's error texts quote the URL, and so would every log line or
response that showed one (bot/serve.py says why Rasa runs with --jwt-secret).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from connectors import metrics
from connectors.errors import BotUnreachable, UpstreamUnavailable
from connectors.fairness import FairSlots
from core import logs
from core.conversations import NOTHING_UNDERSTOOD, Understood, outcome_of
from core.rasa_http import Authorization
from core.runtimes import Runtimes
from core.settings import Secret

log = logging.getLogger(__name__)

# Turns sent to Rasa at once. More would only wait inside Rasa, which works through them a few
# at a time; the rest wait here, where waiting is cheap. Queued inside httpx's connection pool
# instead, each request start and finish scans every queued request against every connection:
# at 200 visitors that scan took over half the gateway's CPU and delayed every webhook's answer.
# Shared fairly between shops (connectors/fairness.py): one shop holds at most PER_SHOP of them.
MAX_TURNS_IN_FLIGHT = 32
PER_SHOP = 24
UNREACHABLE = "The bot is not reachable right now; please try again shortly."
TURN_PATH = "/webhooks/switchboard/webhook"  # bot/channel.py


@dataclass(frozen=True)
class BotTurn:
    """The bot's messages for one visitor message, and what Rasa made of that message."""

    messages: list[dict[str, Any]]
    intent: str | None = None
    confidence: float | None = None
    actions: tuple[str, ...] = ()
    responses: tuple[str, ...] = ()
    paused: bool = False
    known: bool = False  # Rasa said what it made of it (our channel did, and got that far)

    @classmethod
    def from_answer(cls, answer: Any) -> BotTurn:
        """Our channel's {"messages", "turn"}, or the REST channel's list of messages."""
        if isinstance(answer, list):
            return cls(messages=answer)
        if not isinstance(answer, Mapping) or not isinstance(answer.get("messages"), list):
            raise ValueError("not a Rasa channel answer")
        turn = answer.get("turn")
        if not isinstance(turn, Mapping):
            return cls(messages=answer["messages"])
        confidence = turn.get("confidence")
        return cls(messages=answer["messages"],
                   intent=turn.get("intent") if isinstance(turn.get("intent"), str) else None,
                   confidence=float(confidence) if isinstance(confidence, int | float) else None,
                   actions=tuple(str(a) for a in turn.get("actions") or ()),
                   responses=tuple(str(r) for r in turn.get("responses") or ()),
                   paused=bool(turn.get("paused")), known=True)

    def understood(self) -> Understood:
        """Intent, confidence and outcome to record (core/conversations.py `outcome_of`)."""
        if not self.known:
            return NOTHING_UNDERSTOOD
        return Understood(self.intent, self.confidence, outcome_of(
            self.intent, self.actions, self.messages, self.responses, self.paused))


class RasaClient:
    def __init__(self, base_url: str, jwt_key: Secret, timeout: float,
                 action_server_url: str) -> None:
        """`base_url`: RASA_URL, one runtime or several (core/runtimes.py picks per shop)."""
        self.runtimes = Runtimes.parse(base_url)
        self._authorization = Authorization(jwt_key)
        self._actions = action_server_url
        self._timeout = timeout
        self.slots = FairSlots(MAX_TURNS_IN_FLIGHT, PER_SHOP)
        # Room for the health and status calls besides the turns.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=2.0),
            limits=httpx.Limits(max_connections=MAX_TURNS_IN_FLIGHT + 4,
                                max_keepalive_connections=MAX_TURNS_IN_FLIGHT + 4),
        )

    async def turn(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        """Send one visitor message; return the bot's messages for it and what Rasa made of
        it. Counted and timed by channel (connectors/metrics.py); a failure also by its kind
        where it is raised."""
        started, answered = time.perf_counter(), False
        try:
            turn = await self._turn(sender_id, text, metadata)
            answered = True
            return turn
        finally:
            metrics.turn_finished(metadata.get("channel"), time.perf_counter() - started,
                                  answered)

    async def _turn(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        # The shop's share of the slots; the sender id starts with the shop's id too.
        shop = str(metadata.get("tenant_id") or sender_id.split(":", 1)[0])
        try:
            # Waiting for a free slot counts against the turn's time, as a queued request did.
            async with asyncio.timeout(self._timeout):
                await self.slots.acquire(shop)
        except TimeoutError:
            log.error("rasa busy", extra={"sender": logs.visitor(sender_id)})
            metrics.rasa_error("busy")
            raise UpstreamUnavailable(
                "The bot is too busy to answer right now; please try again.") from None
        try:
            response = await self._post(sender_id, text, metadata)
        finally:
            self.slots.release(shop)
        if response.status_code != 200:
            log.error("rasa error", extra={"sender": logs.visitor(sender_id),
                                           "status": response.status_code})
            metrics.rasa_error("status")
            raise UpstreamUnavailable("The bot could not handle this message right now.")
        try:
            turn = BotTurn.from_answer(response.json())
        except ValueError:
            log.error("rasa answer not understood", extra={"sender": logs.visitor(sender_id)})
            metrics.rasa_error("status")
            raise UpstreamUnavailable("The bot could not handle this message right now.") from None
        messages = turn.messages
        # A paused conversation (a person owns it) is answered by nobody: not an outage.
        if not messages and not turn.paused and not await self.actions_alive():
            # Rasa answers [] and only logs when the action server is down: say so.
            log.error("action server unreachable", extra={"sender": logs.visitor(sender_id)})
            metrics.rasa_error("actions_down")
            raise UpstreamUnavailable("The bot's action server is not reachable right now.")
        if log.isEnabledFor(logging.DEBUG):
            # Texts only as a length unless LOG_MESSAGE_TEXT (core/logs.py, development only).
            log.debug("rasa turn", extra={
                "sender": logs.visitor(sender_id), "text": logs.message_text(text),
                "replies": [logs.message_text(m.get("text")) for m in messages],
                "intent": turn.intent, "actions": list(turn.actions)})
        return turn

    async def _post(self, sender_id: str, text: str, metadata: dict[str, Any]) -> httpx.Response:
        try:
            return await self._http.post(
                f"{self.runtimes.for_sender(sender_id)}{TURN_PATH}",
                json={"sender": sender_id, "message": text, "metadata": metadata},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            log.error("rasa unreachable", extra={"sender": logs.visitor(sender_id),
                                                 "error": type(exc).__name__})
            metrics.rasa_error("unreachable")
            raise BotUnreachable(UNREACHABLE) from None
        except httpx.TimeoutException:
            log.error("rasa timed out", extra={"sender": logs.visitor(sender_id)})
            metrics.rasa_error("timeout")
            raise UpstreamUnavailable("The bot did not answer in time; please try again.") from None
        except httpx.TransportError as exc:
            log.error("rasa unreachable", extra={"sender": logs.visitor(sender_id),
                                                 "error": type(exc).__name__})
            metrics.rasa_error("unreachable")
            raise UpstreamUnavailable(UNREACHABLE) from None

    async def actions_alive(self) -> bool:
        try:
            response = await self._http.get(f"{self._actions}/health", timeout=2.0)
            return response.status_code == 200
        except httpx.HTTPError:
            return False

    async def status(self) -> dict[str, Any]:
        """Rasa's /status (model loaded?) for the health check: every runtime's; the first's
        answer, once all have answered (one down is a shop's share of visitors unanswered)."""
        answers = []
        for base in self.runtimes.urls:
            response = await self._http.get(f"{base}/status",
                                            headers=self._authorization.headers(), timeout=2.0)
            response.raise_for_status()
            answers.append(response.json())
        return answers[0]

    async def aclose(self) -> None:
        await self._http.aclose()
