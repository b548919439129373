"""Talking to the Rasa server over its REST channel, on loopback, with bounded waits."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from connectors.errors import BotUnreachable, UpstreamUnavailable

log = logging.getLogger(__name__)


class RasaClient:
    def __init__(self, base_url: str, token: str, timeout: float, action_server_url: str) -> None:
        self._base = base_url
        self._token = token
        self._actions = action_server_url
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=2.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        )

    async def turn(self, sender_id: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        """Send one visitor message; return the bot's messages for it."""
        try:
            response = await self._http.post(
                f"{self._base}/webhooks/rest/webhook",
                json={"sender": sender_id, "message": text, "metadata": metadata},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            log.error("rasa unreachable", extra={"sender": sender_id, "error": type(exc).__name__})
            raise BotUnreachable("The bot is not reachable right now; please try again shortly.") from None
        except httpx.TimeoutException:
            log.error("rasa timed out", extra={"sender": sender_id})
            raise UpstreamUnavailable("The bot did not answer in time; please try again.") from None
        except httpx.TransportError as exc:
            log.error("rasa unreachable", extra={"sender": sender_id, "error": type(exc).__name__})
            raise UpstreamUnavailable("The bot is not reachable right now; please try again shortly.") from None
        if response.status_code != 200:
            log.error("rasa error", extra={"sender": sender_id, "status": response.status_code})
            raise UpstreamUnavailable("The bot could not handle this message right now.")
        messages = response.json()
        if not messages and not await self.actions_alive():
            # Rasa answers [] and only logs when the action server is down: say so.
            log.error("action server unreachable", extra={"sender": sender_id})
            raise UpstreamUnavailable("The bot's action server is not reachable right now.")
        return messages

    async def actions_alive(self) -> bool:
        try:
            response = await self._http.get(f"{self._actions}/health", timeout=2.0)
            return response.status_code == 200
        except httpx.HTTPError:
            return False

    async def status(self) -> dict[str, Any]:
        """Rasa's /status (model loaded?) for the health check."""
        response = await self._http.get(
            f"{self._base}/status", params={"token": self._token}, timeout=2.0
        )
        response.raise_for_status()
        return response.json()

    async def aclose(self) -> None:
        await self._http.aclose()
