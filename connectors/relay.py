"""Store a visitor's message, hand it to Rasa, store and return the bot's answer.

The same for every channel: connectors only translate to and from `InboundMessage`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from connectors.messages import InboundMessage
from connectors.rasa_client import RasaClient
from core.conversations import DuplicateMessage, record_message

log = logging.getLogger(__name__)


class Relay:
    def __init__(self, sessions: async_sessionmaker, rasa: RasaClient) -> None:
        self._sessions = sessions
        self._rasa = rasa
        self._pending: set[asyncio.Task[None]] = set()

    async def handle(self, inbound: InboundMessage) -> list[dict[str, Any]] | None:
        """The bot's messages, or None when this provider message id was already handled."""
        started = time.perf_counter()
        try:
            await record_message(
                self._sessions,
                tenant_id=inbound.tenant.id,
                sender_id=inbound.sender_id,
                channel=inbound.channel,
                direction="in",
                text=inbound.text,
                message_id=inbound.message_id,
                payload=inbound.client_metadata or None,
            )
        except DuplicateMessage:
            log.info("duplicate message dropped",
                     extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel,
                            "message_id": inbound.message_id})
            return None
        replies = await self._rasa.turn(inbound.sender_id, inbound.text, inbound.rasa_metadata())
        if replies:
            # The visitor's message is stored before Rasa sees it (dedupe, never lost); the
            # bot's answer is a copy of what Rasa's tracker holds, so it is stored after the
            # response goes out instead of delaying it. drain() waits for these on shutdown.
            task = asyncio.create_task(self._record_replies(inbound, replies))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        log.info("turn", extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel,
                                "replies": len(replies),
                                "ms": round((time.perf_counter() - started) * 1000, 1)})
        return replies

    async def _record_replies(self, inbound: InboundMessage, replies: list[dict[str, Any]]) -> None:
        try:
            await record_message(
                self._sessions,
                tenant_id=inbound.tenant.id,
                sender_id=inbound.sender_id,
                channel=inbound.channel,
                direction="out",
                text="\n".join(r["text"] for r in replies if r.get("text")),
                payload={"messages": replies},
            )
        except Exception:
            log.exception("bot reply not stored", extra={"sender": inbound.sender_id})

    async def drain(self) -> None:
        """Wait for replies still being stored (server shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
