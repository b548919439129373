"""Agents' replies to REST visitors, pushed to the shop's callback URL, signed and retried.

    POST <callback_url>
    X-Switchboard-Timestamp: 1764357000
    X-Switchboard-Signature: sha256=<hex HMAC-SHA256(signing_secret, "<timestamp>." + body)>
    {"recipient_id": "visitor-1", "text": "...", "buttons": [...], "agent": {"id", "name"}|null}

One POST per message, in order. The timestamp is signed with the body so a captured callback
cannot be replayed later (the shop refuses old timestamps); verify with `signature` below.
Timeouts, connection errors and 5xx answers are retried with exponential backoff (tenacity);
any other answer over 299 is final (the shop's server refused it).

The client the gateway gives us connects only to public addresses (core/destinations.py
`Destinations.client`, unless ALLOW_PRIVATE_DESTINATIONS) and follows no redirect: a callback
URL whose host resolves to a private address is refused before anything is sent, and its
failure says so, never whether something listens there. What a public server answered (its
status, or that it could not be reached) is shown to the shop's owner as it is: that is how
they debug their own server, and it tells nothing about our network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from connectors.channels.rest.credentials import CallbackConfig
from core.destinations import PrivateDestination

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Switchboard-Signature"
TIMESTAMP_HEADER = "X-Switchboard-Timestamp"


class CallbackFailed(Exception):
    def __init__(self, detail: str, transient: bool, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.transient = transient
        self.status = status


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def callback_body(recipient_id: str, message: Mapping[str, Any],
                  agent: Mapping[str, str] | None) -> dict[str, Any]:
    return {"recipient_id": recipient_id, "text": message.get("text") or "",
            "buttons": list(message.get("buttons") or []),
            "agent": dict(agent) if agent is not None else None}


class RestCallbacks:
    def __init__(self, client: httpx.AsyncClient, attempts: int = 4,
                 retry_wait: float = 0.5) -> None:
        self._client = client
        self._attempts = attempts
        self._retry_wait = retry_wait

    async def post(self, config: CallbackConfig, payload: Mapping[str, Any]) -> int:
        """POST one message; returns the attempts it took. Raises CallbackFailed."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        attempts = 0
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._attempts), reraise=True,
            wait=wait_exponential_jitter(multiplier=self._retry_wait, max=30),
            retry=retry_if_exception(lambda exc: isinstance(exc, CallbackFailed)
                                     and exc.transient),
        ):
            with attempt:
                attempts += 1
                await self._post_once(config, body)
        return attempts

    async def _post_once(self, config: CallbackConfig, body: bytes) -> None:
        # Signed afresh on each attempt: the timestamp says when this one was sent.
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: signature(config.secret, timestamp, body),
                   "User-Agent": "Switchboard-Callbacks/1"}
        try:
            answer = await self._client.post(config.url, content=body, headers=headers)
        except PrivateDestination:
            raise CallbackFailed("callback not sent: its host resolves to a private network "
                                 "address", transient=False) from None
        except httpx.HTTPError as exc:
            raise CallbackFailed(f"callback not reached: {type(exc).__name__}",
                                 transient=True) from None
        if answer.status_code >= 500:
            raise CallbackFailed(f"callback answered {answer.status_code}", transient=True,
                                 status=answer.status_code)
        if answer.status_code >= 300:
            raise CallbackFailed(f"callback refused with {answer.status_code}", transient=False,
                                 status=answer.status_code)
