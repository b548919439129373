"""Rasa's texts come from our NLG endpoint (the admin service), so a shop's own wording is said
without retraining; when that endpoint cannot answer, the domain's own text is said instead.

Loaded by Rasa from endpoints.yml (`nlg: type: bot.nlg.SwitchboardNLG`; rasa/core/nlg/
generator.py `_load_from_module_name_in_endpoint_config` calls it with `endpoint_config` and
`domain`). Runs in Rasa's interpreter (Python 3.10, .venv-bot).

Why not Rasa's `CallbackNaturalLanguageGenerator` as it is:
- it posts the whole tracker (every event of the conversation) for each message; we post what
  rendering needs: the response, the action's arguments, the sender id (shop and channel),
  the slots and Rasa's channel name (admin_api/nlg.py reads both shapes);
- it opens a new HTTP session, so a new connection, per message; one kept-alive session per
  event loop costs a loopback round trip instead (bench/turns.py numbers in the report);
- a turn kept waiting for its text gives its place in the turn gate up meanwhile
  (bot/turn_gate.py `waiting_on`), so a slow admin service does not hold up other turns;
- an unreachable endpoint raises and the turn fails; here the domain's templated response is
  said instead, with a warning (at most one a minute), so a down admin service never silences
  the bot.

It is a `TemplatedNaturalLanguageGenerator` so that Rasa hands it the loaded model's domain
responses (rasa/core/agent.py `load_model` updates `responses` only on that class) for the
fallback. URL and token come from core.settings.BotSettings (NLG_URL, and the token derived
from RASA_TOKEN); `url:` in endpoints.yml wins over NLG_URL when given.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.turn_gate import waiting_on
from core.settings import BotSettings, ConfigError

log = logging.getLogger(__name__)

# The endpoint renders from memory in about a millisecond; a second means it is in trouble and
# the visitor is better served by the default text now.
DEFAULT_TIMEOUT = 1.0
WARN_EVERY = 60.0


class SwitchboardNLG(TemplatedNaturalLanguageGenerator):
    def __init__(self, endpoint_config: EndpointConfig | None = None,
                 domain: Domain | None = None) -> None:
        super().__init__(domain.responses if domain is not None else {})
        config = endpoint_config or EndpointConfig()
        self.url: str | None = config.url
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        try:
            settings = BotSettings.from_env()
            self.url = self.url or settings.nlg_url
            self.headers["Authorization"] = f"Bearer {settings.nlg_token.reveal()}"
        except ConfigError as exc:
            # `rasa test` and the like run without RASA_TOKEN: the domain's texts are said.
            log.warning("NLG endpoint not used (%s); saying the domain's texts", exc)
            self.url = None
        self.timeout = aiohttp.ClientTimeout(
            total=float(config.kwargs.get("timeout", DEFAULT_TIMEOUT)))
        self._sessions: dict[int, aiohttp.ClientSession] = {}
        self._warned_at = float("-inf")

    def _session(self) -> aiohttp.ClientSession:
        """One kept-alive session per event loop (a session belongs to the loop it was made on;
        Rasa's Sanic workers and tests may run more than one)."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(id(loop))
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                timeout=self.timeout, headers=self.headers,
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30))
            self._sessions[id(loop)] = session
        return session

    def body(self, utter_action: str, tracker: DialogueStateTracker, output_channel: str,
             arguments: dict[str, Any]) -> bytes:
        return json.dumps({
            "response": utter_action,
            "arguments": arguments,
            "sender_id": tracker.sender_id,
            "slots": tracker.current_slot_values(),
            "channel": {"name": output_channel},
        }, default=str).encode()

    async def generate(self, utter_action: str, tracker: DialogueStateTracker,
                       output_channel: str, **kwargs: Any) -> dict[str, Any] | None:
        domain_responses = kwargs.pop("domain_responses", None)
        if domain_responses:
            self.responses = domain_responses
        if self.url is None:
            return await super().generate(utter_action, tracker, output_channel, **kwargs)
        try:
            status, message = await waiting_on(
                self._ask(self.url, self.body(utter_action, tracker, output_channel, kwargs)))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            problem = type(exc).__name__
        else:
            if status == 200 and isinstance(message, dict):
                return message
            if status == 204:
                return None  # no variant fits this channel: nothing is said, as Rasa does
            problem = "an answer that is not a message" if status == 200 else f"HTTP {status}"
        self._warn(utter_action, problem)
        return await super().generate(utter_action, tracker, output_channel, **kwargs)

    async def _ask(self, url: str, body: bytes) -> tuple[int, Any]:
        """The endpoint's status and, for 200, its JSON."""
        async with self._session().post(url, data=body) as reply:
            return reply.status, await reply.json() if reply.status == 200 else None

    def _warn(self, utter_action: str, problem: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning("NLG endpoint failed (%s) for %s; saying the domain's text "
                        "(warned at most once a minute)", problem, utter_action)
