"""The admin service's calls to Rasa: events appended to a conversation's tracker.

An agent's reply is appended as a bot utterance (`{"event": "bot", "text", "metadata":
{"agent": name}}`), so when the conversation is handed back the bot's policies and actions see
what the person said; resolving appends `{"event": "resume"}` (Rasa's ConversationResumed:
the bot predicts again). Both go to `POST {RASA_URL}/conversations/{sender}/tracker/events`
with the same short-lived JWT the gateway sends (core/rasa_http.py).

Connection failures and 5xx are retried a few times (tenacity); then `RasaUnavailable`. The
callers treat the tracker as context, not as the record (that is our database): a reply that
reached the visitor is not failed because Rasa missed its copy; the failure is logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

import httpx

from admin_api.http_retry import ATTEMPTS, RetryingPoster, Unreachable
from core.rasa_http import Authorization
from core.runtimes import Runtimes
from core.settings import Secret

log = logging.getLogger(__name__)


class RasaUnavailable(Exception):
    """Rasa did not take the events (unreachable, 5xx after retries, or refused them)."""


class RasaTracker:
    def __init__(self, base_url: str, jwt_key: Secret, client: httpx.AsyncClient | None = None,
                 attempts: int = ATTEMPTS, retry_wait: float = 0.2) -> None:
        self._runtimes = Runtimes.parse(base_url)  # RASA_URL: one runtime or several
        self._authorization = Authorization(jwt_key)
        self._poster = RetryingPoster(10.0, client, attempts, retry_wait)

    async def append(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        # Rasa's Sanic 21 does not unquote path parameters: a quoted ':' or '@' would name
        # another conversation ("t%3Arest%3Ax"), so only what a path cannot hold is quoted.
        base = self._runtimes.for_sender(sender_id)
        url = f"{base}/conversations/{quote(sender_id, safe=':@+/')}/tracker/events"
        try:
            answer = await self._poster.post(
                url, json=events, params={"include_events": "NONE"},
                headers=self._authorization.headers())
        except Unreachable as exc:
            raise RasaUnavailable(f"Rasa is not reachable ({exc.error})") from None
        if answer.status_code >= 300:
            raise RasaUnavailable(f"Rasa refused the events ({answer.status_code})")

    async def aclose(self) -> None:
        await self._poster.aclose()


def agent_said(text: str, agent_name: str) -> dict[str, Any]:
    """A person's reply as Rasa records a bot utterance."""
    return {"event": "bot", "text": text, "metadata": {"agent": agent_name},
            "timestamp": time.time()}


def resumed() -> dict[str, Any]:
    """Rasa's ConversationResumed: the bot predicts again."""
    return {"event": "resume", "timestamp": time.time()}
