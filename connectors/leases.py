"""Leases on stored provider messages: who is answering one, until when, and the takeover.

Every provider message (SMS, WhatsApp, email) is stored before it is acknowledged, with
`lease_expires_at` set to when it may be answered (now, or later when its sender is over a rate
limit, connectors/limits.py) and no owner. A gateway answers a message only after claiming it:
one UPDATE that sets `lease_owner` to the process and `lease_expires_at` to now + LEASE, and
that matches only while the lease is free (no expiry, or an expiry in the past). The UPDATE's
row count says who won, so two gateways (or a gateway and its own sweep) never answer the same
message, on SQLite (one writer at a time) as on PostgreSQL (the second UPDATE waits for the
first's row lock, then re-reads the row and no longer matches).

One conversation, one answer at a time, in arrival order, across gateways: a claim takes only
the oldest unhandled message of its conversation. While that one is leased, the conversation's
later messages wait; whoever finishes it claims the next (`finish_and_claim_next`), and the
sweep claims what nobody is holding.

Every gateway renews its own leases and looks for free ones every SWEEP_EVERY seconds. A
gateway that dies stops renewing: its leases run out within LEASE and the next sweep of any
gateway (the dead one's successor included) takes them over: acknowledged messages are answered
within LEASE + SWEEP_EVERY + a turn, 20 + 5 + a few seconds, within a minute also when the
restarted gateway needs its own seconds to start (tests/integration/test_public_edge_load.py:
30 SMS in flight at a SIGKILL, a gateway started again at once, all answered ~40 s later; with
30 s leases swept every 10 s it was 49 s). A message
is marked handled only once its answer was delivered or a permanent error was recorded.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.conversations import MessageRow
from core.db import utcnow
from core.deliveries import DeliveryRow

# A lease outlives four renewals (SWEEP_EVERY), so a late tick or two of a busy event loop do
# not hand a live gateway's message to another; renewals do not wait for turns (one UPDATE for
# all the process holds). Short enough that a dead gateway's messages are answered within a
# minute. The renewal and the sweep cost two small queries per gateway every 5 s.
LEASE = timedelta(seconds=20)
SWEEP_EVERY = 5.0  # seconds
# Messages older than this are not answered late (a reply a day later confuses more than it
# helps); they stay unhandled in the table for the record.
ANSWER_WITHIN = timedelta(hours=24)
PROVIDER_CHANNELS = ("sms", "whatsapp", "email")
SWEEP_BATCH = 200  # conversations a sweep takes on at once; the next sweep takes the rest


def process_owner() -> str:
    """This process's name on its leases: host, pid and a random part (a restarted process
    with the same pid is another owner, and does not mistake its predecessor's leases for its
    own)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Conversation:
    tenant_id: str
    sender_id: str


@dataclass(frozen=True)
class Claimed:
    """A message this process now holds the lease on."""

    id: int
    tenant_id: str
    sender_id: str
    channel: str
    text: str | None
    message_id: str | None
    payload: dict[str, Any] | None
    attempts: int  # claims so far, this one included
    created_at: datetime


def _unanswered(now: datetime) -> ColumnElement[bool]:
    return and_(MessageRow.direction == "in", MessageRow.handled_at.is_(None),
                MessageRow.message_id.is_not(None),
                MessageRow.channel.in_(PROVIDER_CHANNELS),
                MessageRow.created_at > now - ANSWER_WITHIN)


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(MessageRow.lease_expires_at.is_(None), MessageRow.lease_expires_at <= now)


class Leases:
    def __init__(self, sessions: async_sessionmaker, owner: str | None = None) -> None:
        self._sessions = sessions
        self.owner = owner or process_owner()
        # What this process is working on: only these are renewed, so a message whose
        # handling broke off (an error we did not foresee) runs out and is taken over.
        self._held: set[int] = set()

    def _claim_oldest(self, conversation: Conversation, now: datetime) -> Any:
        oldest = (select(func.min(MessageRow.id))
                  .where(MessageRow.tenant_id == conversation.tenant_id,
                         MessageRow.sender_id == conversation.sender_id, _unanswered(now))
                  .scalar_subquery())
        return (update(MessageRow)
                .where(MessageRow.id == oldest, MessageRow.handled_at.is_(None), _free(now))
                .values(lease_owner=self.owner, lease_expires_at=now + LEASE,
                        attempts=MessageRow.attempts + 1)
                .returning(MessageRow.id, MessageRow.tenant_id, MessageRow.sender_id,
                           MessageRow.channel, MessageRow.text, MessageRow.message_id,
                           MessageRow.payload, MessageRow.attempts, MessageRow.created_at)
                .execution_options(synchronize_session=False))

    async def claim_next(self, conversation: Conversation) -> Claimed | None:
        """The conversation's oldest unanswered message, leased to us; None when it is held
        by someone (maybe us), not yet due, or there is none."""
        async with self._sessions() as session:
            row = (await session.execute(self._claim_oldest(conversation, utcnow()))).first()
            await session.commit()
        return self._holding(row)

    def _holding(self, row: Any) -> Claimed | None:
        if row is None:
            return None
        claimed = Claimed(*row)
        self._held.add(claimed.id)
        return claimed

    def forget(self, message_pk: int) -> None:
        """Stop renewing a message's lease (its handling broke off): it runs out within LEASE
        and a sweep takes it over."""
        self._held.discard(message_pk)

    async def finish_and_claim_next(self, message_pk: int, conversation: Conversation,
                                    understood: Mapping[str, Any] | None = None,
                                    ) -> Claimed | None:
        """Mark a message handled (answered, or a permanent error recorded) and, in the same
        transaction, claim its conversation's next one. `understood`: columns of what the bot
        made of it (core/conversations.py `Understood.columns`), set in the same UPDATE."""
        now = utcnow()
        async with self._sessions() as session:
            await session.execute(
                update(MessageRow).where(MessageRow.id == message_pk)
                .values(handled_at=now, lease_expires_at=None, **(understood or {}))
                .execution_options(synchronize_session=False))
            row = (await session.execute(self._claim_oldest(conversation, now))).first()
            await session.commit()
        self._held.discard(message_pk)
        return self._holding(row)

    async def answer_went_out(self, claimed: Claimed, reply_key: str) -> bool:
        """Whether a previous holder of this message stored its reply (under `reply_key`) and
        a provider accepted at least part of it: it died between sending and marking the
        message handled, and answering again would send the visitor the answer twice. (The
        window left: a provider that accepted a part just before the process died, before the
        delivery was recorded.)"""
        async with self._sessions() as session:
            reply = (await session.execute(
                select(MessageRow.id).where(
                    MessageRow.tenant_id == claimed.tenant_id,
                    MessageRow.sender_id == claimed.sender_id,
                    MessageRow.direction == "out", MessageRow.message_id == reply_key))
            ).scalar()
            if reply is None:
                return False
            sent = (await session.execute(
                select(func.count()).select_from(DeliveryRow).where(
                    DeliveryRow.sender_id == claimed.sender_id, DeliveryRow.message_pk == reply,
                    DeliveryRow.provider_message_id.is_not(None)))).scalar()
        return bool(sent)

    async def release(self, message_pk: int, due: datetime) -> None:
        """Give a message back, to be claimed again from `due` on (a retry)."""
        self._held.discard(message_pk)  # should this fail, the lease runs out instead
        async with self._sessions() as session:
            await session.execute(
                update(MessageRow)
                .where(MessageRow.id == message_pk, MessageRow.lease_owner == self.owner,
                       MessageRow.handled_at.is_(None))
                .values(lease_owner=None, lease_expires_at=due)
                .execution_options(synchronize_session=False))
            await session.commit()

    async def renew(self) -> int:
        """Extend the leases of the messages we are working on (being answered or waiting for
        a turn slot)."""
        if not self._held:
            return 0
        async with self._sessions() as session:
            result = await session.execute(
                update(MessageRow)
                .where(MessageRow.id.in_(sorted(self._held)), MessageRow.lease_owner == self.owner,
                       MessageRow.handled_at.is_(None))
                .values(lease_expires_at=utcnow() + LEASE)
                .execution_options(synchronize_session=False))
            await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    async def free_conversations(self, skip: Sequence[Conversation] = (),
                                 unleased: bool = False) -> list[tuple[Conversation, bool]]:
        """Conversations with an unanswered message that nobody holds (due, or its holder's
        lease ran out), each with whether that is a takeover (an owner's lease ran out). Claims
        happen in `claim_next`. `unleased`: also messages stored before leases existed (no
        expiry at all; REST and widget messages have none either, and there are many, so
        this is for the first sweep of a process only: the regular ones read the
        lease_expires_at index for a range)."""
        now = utcnow()
        free = _free(now) if unleased else MessageRow.lease_expires_at <= now
        query = (select(MessageRow.tenant_id, MessageRow.sender_id,
                        func.max(MessageRow.lease_owner))
                 .where(_unanswered(now), free)
                 .group_by(MessageRow.tenant_id, MessageRow.sender_id)
                 .limit(SWEEP_BATCH + len(skip)))
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        skipped = set(skip)
        found = [(Conversation(t, s), owner is not None) for t, s, owner in rows]
        return [(c, taken) for c, taken in found if c not in skipped][:SWEEP_BATCH]
