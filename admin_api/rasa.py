"""The admin service's calls to Rasa: events appended to a conversation's tracker.

An agent's reply is appended as a bot utterance (`{"event": "bot", "text", "metadata":
{"agent": name}}`), so when the conversation is handed back the bot's policies and actions see
what the person said; resolving appends `{"event": "resume"}` (Rasa's ConversationResumed:
the bot predicts again). Both go to `POST {RASA_URL}/webhooks/switchboard/events` with the
sender id in the body (bot/tracker_events.py says why not Rasa's own
`/conversations/{sender}/tracker/events`: a sender id in a path can name another
conversation, even another shop's), with the same short-lived JWT the gateway sends
(core/rasa_http.py).

Connection failures and 5xx are retried a few times (tenacity); then `RasaUnavailable`. The
callers treat the tracker as context, not as the record (that is our database): a reply that
reached the visitor is not failed because Rasa missed its copy; the failure is logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

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
        base = self._runtimes.for_sender(sender_id)
        try:
            answer = await self._poster.post(
                f"{base}/webhooks/switchboard/events",
                json={"sender": sender_id, "events": events},
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
