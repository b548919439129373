"""Handing an agent's reply (or the bot's satisfaction question) to the gateway's outbox.

The gateway owns delivery on every channel: provider clients and credentials, retries, the
SMS split, WhatsApp's 24-hour window and templates, email threading, the widget's socket and
the REST callback (connectors/). The admin service records the message, then posts it to the
gateway's loopback route `POST {GATEWAY_URL}/internal/agent-replies` with the internal token
(core/settings.py `internal_token`); the gateway answers 202 once it took it.

Connection failures and 5xx are retried a few times (tenacity), then `GatewayUnavailable`;
a 4xx is the gateway refusing this reply (`GatewayRefused`, with its status: 404 when the
conversation has no inbound message to answer on).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from admin_api.http_retry import ATTEMPTS, RetryingPoster, Unreachable
from core.settings import Secret

log = logging.getLogger(__name__)
PATH = "/internal/agent-replies"


class GatewayError(Exception):
    pass


class GatewayUnavailable(GatewayError):
    """Not reachable, or 5xx after retries: nothing was delivered."""


class GatewayRefused(GatewayError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class GatewayClient:
    def __init__(self, base_url: str, token: Secret, client: httpx.AsyncClient | None = None,
                 attempts: int = ATTEMPTS, retry_wait: float = 0.2) -> None:
        self._url = base_url.rstrip("/") + PATH
        self._token = token
        self._poster = RetryingPoster(15.0, client, attempts, retry_wait)

    async def deliver(self, *, tenant_id: str, sender_id: str, message_pk: int | None,
                      messages: list[dict[str, Any]], author: dict[str, str] | None) -> None:
        """Hand messages for the visitor of `sender_id` to the gateway (author None: the bot)."""
        body = {"tenant_id": tenant_id, "sender_id": sender_id, "message_pk": message_pk,
                "messages": [{"text": m.get("text") or "", "buttons": [
                    {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
                    for b in m.get("buttons") or ()]} for m in messages],
                "author": author}
        headers = {"Authorization": f"Bearer {self._token.reveal()}"}
        try:
            answer = await self._poster.post(self._url, json=body, headers=headers)
        except Unreachable as exc:
            log.warning("reply not handed to the gateway", extra={"error": exc.error})
            raise GatewayUnavailable("the gateway is not reachable right now") from None
        if answer.status_code >= 300:
            try:
                detail = str(answer.json().get("detail") or "")
            except (ValueError, AttributeError):
                detail = ""
            log.warning("the gateway refused a reply", extra={"status": answer.status_code})
            raise GatewayRefused(answer.status_code, detail or "the gateway refused the reply")

    async def aclose(self) -> None:
        await self._poster.aclose()
