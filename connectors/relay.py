"""Store a visitor's message, hand it to Rasa, store and return the bot's answer.

The same for every channel: connectors only translate to and from `InboundMessage`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from connectors.messages import InboundMessage
from connectors.outbound import Answer
from connectors.rasa_client import RasaClient
from connectors.rendering import pick_choice
from core.conversations import DuplicateMessage, MessageRow, record_message
from core.db import utcnow

log = logging.getLogger(__name__)


class Relay:
    def __init__(self, sessions: async_sessionmaker, rasa: RasaClient) -> None:
        self._sessions = sessions
        self._rasa = rasa
        self._pending: set[asyncio.Task[None]] = set()

    async def handle(self, inbound: InboundMessage) -> list[dict[str, Any]] | None:
        """The bot's messages, or None when this provider message id was already handled.

        A message with a provider id is stored before Rasa sees it: the unique id is the
        dedupe. A message without one (plain REST) is stored while Rasa works on it; either
        way it is stored before we answer, also when Rasa fails.
        """
        started = time.perf_counter()
        stored = self._store(inbound, "in", inbound.text, inbound.client_metadata or None,
                             message_id=inbound.message_id)
        if inbound.message_id is not None:
            try:
                await stored
            except DuplicateMessage:
                log.info("duplicate message dropped",
                         extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel,
                                "message_id": inbound.message_id})
                return None
            replies = await self._turn(inbound)
        else:
            stored_result, replies_result = await asyncio.gather(
                stored, self._turn(inbound), return_exceptions=True
            )
            for outcome in (stored_result, replies_result):
                if isinstance(outcome, BaseException):
                    raise outcome
            replies = replies_result  # type: ignore[assignment]
        if replies:
            # The bot's answer is a copy of what Rasa's tracker holds, so it is stored after
            # the response goes out instead of delaying it. drain() waits on shutdown.
            task = asyncio.create_task(self._record_replies(inbound, replies, utcnow()))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        log.info("turn", extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel,
                                "replies": len(replies),
                                "ms": round((time.perf_counter() - started) * 1000, 1)})
        return replies

    async def _turn(self, inbound: InboundMessage) -> list[dict[str, Any]]:
        return await self._rasa.turn(inbound.sender_id, inbound.text, inbound.rasa_metadata())

    # -- the pieces provider channels use (connectors/pipeline.py) -----------------------
    async def store_inbound(self, inbound: InboundMessage) -> int:
        """Store a visitor message under its provider id; raises DuplicateMessage."""
        # Everything needed to answer it again after a crash (Inbox.recover) is kept with it.
        payload: dict[str, Any] = {**inbound.client_metadata, "provider": inbound.provider,
                                   "reply_context": dict(inbound.reply_context)}
        if inbound.media:
            payload["media"] = [{"url": m.url, "content_type": m.content_type}
                                for m in inbound.media]
        if inbound.questions:
            payload["questions"] = list(inbound.questions)
        return await self._store(inbound, "in", inbound.text, payload,
                                 message_id=inbound.message_id)

    async def turn(self, inbound: InboundMessage, text: str) -> list[dict[str, Any]]:
        """One Rasa turn for one of the message's texts."""
        return await self._rasa.turn(inbound.sender_id, text, inbound.rasa_metadata())

    async def chosen(self, inbound: InboundMessage, text: str) -> str | None:
        """The payload of a numbered choice the bot offered last, if the visitor picked one."""
        async with self._sessions() as session:
            payload = (await session.execute(
                select(MessageRow.payload)
                .where(MessageRow.tenant_id == inbound.tenant.id,
                       MessageRow.sender_id == inbound.sender_id,
                       MessageRow.direction == "out")
                .order_by(MessageRow.id.desc()).limit(1))).scalar()
        messages = (payload or {}).get("messages") or []
        offered = [m for m in messages if m.get("buttons")][-1:]  # numbered last, read back
        buttons = [b for m in offered for b in m["buttons"]]
        return pick_choice(text, buttons)

    async def store_answers(self, inbound: InboundMessage, answers: list[Answer]) -> int:
        messages = [m for a in answers for m in a.messages]
        payload: dict[str, Any] = {"messages": messages}
        if any(a.question for a in answers):
            payload["questions"] = [a.question for a in answers]
        return await self._store(inbound, "out",
                                 "\n".join(m["text"] for m in messages if m.get("text")), payload)

    async def _store(self, inbound: InboundMessage, direction: str, text: str,
                     payload: dict[str, Any] | None, message_id: str | None = None,
                     at: datetime | None = None) -> int:
        return await record_message(
            self._sessions,
            tenant_id=inbound.tenant.id,
            sender_id=inbound.sender_id,
            channel=inbound.channel,
            direction=direction,
            text=text,
            message_id=message_id,
            payload=payload,
            at=at,
        )

    async def _record_replies(self, inbound: InboundMessage, replies: list[dict[str, Any]],
                              at: datetime) -> None:
        try:
            await self._store(inbound, "out", "\n".join(r["text"] for r in replies if r.get("text")),
                              {"messages": replies}, at=at)
        except Exception:
            log.exception("bot reply not stored", extra={"sender": inbound.sender_id})

    async def drain(self) -> None:
        """Wait for replies still being stored (server shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
