"""Talking to the Rasa server over its REST channel, on loopback, with bounded waits."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from connectors.errors import BotUnreachable, UpstreamUnavailable

log = logging.getLogger(__name__)

# Turns sent to Rasa at once. More would only wait inside Rasa, which works through them a few
# at a time; the rest wait here, where waiting is cheap. Queued inside httpx's connection pool
# instead, each request start and finish scans every queued request against every connection:
# at 200 visitors that scan took over half the gateway's CPU and delayed every webhook's answer.
MAX_TURNS_IN_FLIGHT = 32
UNREACHABLE = "The bot is not reachable right now; please try again shortly."


class RasaClient:
    def __init__(self, base_url: str, token: str, timeout: float, action_server_url: str) -> None:
        self._base = base_url
        self._token = token
        self._actions = action_server_url
        self._timeout = timeout
        self._slots = asyncio.Semaphore(MAX_TURNS_IN_FLIGHT)
        # Room for the health and status calls besides the turns.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=2.0),
            limits=httpx.Limits(max_connections=MAX_TURNS_IN_FLIGHT + 4,
                                max_keepalive_connections=MAX_TURNS_IN_FLIGHT + 4),
        )

    async def turn(self, sender_id: str, text: str,
                   metadata: dict[str, Any]) -> list[dict[str, Any]]:
        """Send one visitor message; return the bot's messages for it."""
        try:
            # Waiting for a free slot counts against the turn's time, as a queued request did.
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            log.error("rasa busy", extra={"sender": sender_id})
            raise UpstreamUnavailable(
                "The bot is too busy to answer right now; please try again.") from None
        try:
            response = await self._post(sender_id, text, metadata)
        finally:
            self._slots.release()
        if response.status_code != 200:
            log.error("rasa error", extra={"sender": sender_id, "status": response.status_code})
            raise UpstreamUnavailable("The bot could not handle this message right now.")
        messages = response.json()
        if not messages and not await self.actions_alive():
            # Rasa answers [] and only logs when the action server is down: say so.
            log.error("action server unreachable", extra={"sender": sender_id})
            raise UpstreamUnavailable("The bot's action server is not reachable right now.")
        return messages

    async def _post(self, sender_id: str, text: str, metadata: dict[str, Any]) -> httpx.Response:
        try:
            return await self._http.post(
                f"{self._base}/webhooks/rest/webhook",
                json={"sender": sender_id, "message": text, "metadata": metadata},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            log.error("rasa unreachable", extra={"sender": sender_id, "error": type(exc).__name__})
            raise BotUnreachable(UNREACHABLE) from None
        except httpx.TimeoutException:
            log.error("rasa timed out", extra={"sender": sender_id})
            raise UpstreamUnavailable("The bot did not answer in time; please try again.") from None
        except httpx.TransportError as exc:
            log.error("rasa unreachable", extra={"sender": sender_id, "error": type(exc).__name__})
            raise UpstreamUnavailable(UNREACHABLE) from None

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
