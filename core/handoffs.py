"""A person taking over a conversation: the handoff's states and the only ways to change them.

A handoff request (`handoff_requests`) is one escalation of one conversation (sender id). It
goes `queued` (waiting for an agent) → `assigned` (one agent owns it; transfers keep it
assigned to someone else) → `resolved` (handed back to the bot). While a conversation has a
queued or assigned request a human owns it: the bot says nothing there (the gateway checks
`human_owner` before sending, Rasa is paused). A conversation without an open request, or
whose latest request is resolved, is the bot's.

Every change is a compare-and-set UPDATE (`... WHERE status IN (...)`): two agents claiming at
once are decided by the database, exactly one row changes, and the other caller learns who
has it (`AlreadyTaken`). Each change also appends to the conversation's event log
(`conversation_events`, in the same transaction), which shops' webhooks, analytics and the
agents' live stream read: kinds in EVENT_KINDS.

Agents are people (their user id) or a shop's agent API keys ("key:<prefix>"): `Agent`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import JSON, Index, Integer, String, Text, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from core.conversations import HandoffRow
from core.db import Base, UtcDateTime, utcnow

QUEUED: Final = "queued"
ASSIGNED: Final = "assigned"
RESOLVED: Final = "resolved"
OPEN: Final = (QUEUED, ASSIGNED)
STATUSES: Final = (QUEUED, ASSIGNED, RESOLVED)

# What the event log records (conversation_events.kind); shops' webhooks subscribe to these.
REQUESTED: Final = "handoff.requested"
CLAIMED: Final = "handoff.claimed"
TRANSFERRED: Final = "handoff.transferred"
HANDOFF_RESOLVED: Final = "handoff.resolved"
SATISFACTION: Final = "satisfaction.given"
EVENT_KINDS: Final = (REQUESTED, CLAIMED, TRANSFERRED, HANDOFF_RESOLVED, SATISFACTION)

# How long after the question a bare 1-5 counts as the visitor's rating.
RATING_WINDOW = timedelta(hours=24)


class ConversationEventRow(Base):
    """Append-only: what happened to a conversation's handoffs, in order (id)."""

    __tablename__ = "conversation_events"
    # AUTOINCREMENT: SQLite would give an erased event's id again, and webhooks' cursor
    # (`id > last_event_id`) would never send those events (migration 0012).
    __table_args__ = (Index("ix_conversation_events_tenant_id_id", "tenant_id", "id"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    sender_id: Mapped[str] = mapped_column(String(255), index=True)
    handoff_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # one of EVENT_KINDS
    actor: Mapped[str | None] = mapped_column(String(64))  # the agent's id; None: the visitor
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class NoteRow(Base):
    """An agent's internal note on a conversation: shown to agents, never sent."""

    __tablename__ = "conversation_notes"
    __table_args__ = (Index("ix_conversation_notes_tenant_id_sender_id", "tenant_id",
                            "sender_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    sender_id: Mapped[str] = mapped_column(String(255))
    handoff_id: Mapped[int | None] = mapped_column(Integer)
    author_id: Mapped[str] = mapped_column(String(64))
    author_name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


@dataclass(frozen=True)
class Agent:
    """Who acts for the shop: a person (user id) or an agent API key ("key:<prefix>")."""

    id: str
    name: str


class HandoffError(Exception):
    """A transition that cannot be made; the message says why (for the API's detail)."""


class NoSuchHandoff(HandoffError):
    pass


class AlreadyTaken(HandoffError):
    def __init__(self, assignee: Agent) -> None:
        super().__init__(f"{assignee.name} has this conversation")
        self.assignee = assignee


class NotOpen(HandoffError):
    """The handoff was resolved: the bot has the conversation again."""


def _log(session: AsyncSession, row: HandoffRow, kind: str, actor: str | None,
         **data: Any) -> None:
    session.add(ConversationEventRow(tenant_id=row.tenant_id, sender_id=row.sender_id,
                                     handoff_id=row.id, kind=kind, actor=actor,
                                     data={"channel": row.channel, **data},
                                     created_at=utcnow()))


async def open_handoff(
    sessions: async_sessionmaker,
    *,
    tenant_id: str,
    sender_id: str,
    channel: str,
    reason: str,
    last_message: str | None,
    summary: dict[str, Any] | None = None,
) -> tuple[HandoffRow, bool]:
    """The open handoff of this conversation, queueing a new one if none is open.
    Returns (row, created)."""
    async with sessions() as session:
        existing = await session.scalar(
            select(HandoffRow).where(HandoffRow.tenant_id == tenant_id,
                                     HandoffRow.sender_id == sender_id,
                                     HandoffRow.status.in_(OPEN))
            .order_by(HandoffRow.id.desc()).limit(1))
        if existing is not None:
            return existing, False
        row = HandoffRow(tenant_id=tenant_id, sender_id=sender_id, channel=channel,
                         reason=reason, last_message=last_message, status=QUEUED,
                         summary=summary or {}, created_at=utcnow())
        session.add(row)
        await session.flush()
        _log(session, row, REQUESTED, None, reason=reason)
        await session.commit()
        return row, True


async def human_owner(sessions: async_sessionmaker, tenant_id: str,
                      sender_id: str) -> HandoffRow | None:
    """The conversation's open (queued or assigned) handoff: a human owns it; else None."""
    async with sessions() as session:
        return await session.scalar(
            select(HandoffRow).where(HandoffRow.tenant_id == tenant_id,
                                     HandoffRow.sender_id == sender_id,
                                     HandoffRow.status.in_(OPEN))
            .order_by(HandoffRow.id.desc()).limit(1))


async def get_handoff(sessions: async_sessionmaker, tenant_id: str,
                      handoff_id: int) -> HandoffRow:
    async with sessions() as session:
        row = await session.get(HandoffRow, handoff_id)
    if row is None or row.tenant_id != tenant_id:
        raise NoSuchHandoff("no such handoff in your shop")
    return row


async def _why_not(session: AsyncSession, tenant_id: str, handoff_id: int) -> HandoffError:
    row = await session.get(HandoffRow, handoff_id, populate_existing=True)
    if row is None or row.tenant_id != tenant_id:
        return NoSuchHandoff("no such handoff in your shop")
    if row.status == RESOLVED:
        return NotOpen("this conversation was handed back to the bot")
    return AlreadyTaken(Agent(row.assignee_id or "", row.assignee_name or "another agent"))


async def claim(sessions: async_sessionmaker, tenant_id: str, handoff_id: int,
                agent: Agent) -> HandoffRow:
    """Queued → assigned to `agent`; exactly one of several agents at once wins. Claiming
    what one already holds is no change. Else AlreadyTaken (who has it) or NotOpen."""
    now = utcnow()
    async with sessions() as session:
        changed = (await session.execute(
            update(HandoffRow)
            .where(HandoffRow.id == handoff_id, HandoffRow.tenant_id == tenant_id,
                   HandoffRow.status == QUEUED)
            .values(status=ASSIGNED, assignee_id=agent.id, assignee_name=agent.name,
                    assigned_at=now)
            .execution_options(synchronize_session=False))).rowcount
        if changed != 1:
            error = await _why_not(session, tenant_id, handoff_id)
            if isinstance(error, AlreadyTaken) and error.assignee.id == agent.id:
                row = await session.get(HandoffRow, handoff_id)
                assert row is not None
                return row
            raise error
        row = await session.get(HandoffRow, handoff_id, populate_existing=True)
        assert row is not None
        _log(session, row, CLAIMED, agent.id, assignee={"id": agent.id, "name": agent.name})
        await session.commit()
        return row


async def transfer(sessions: async_sessionmaker, tenant_id: str, handoff_id: int,
                   by: Agent, to: Agent) -> HandoffRow:
    """An open handoff → assigned to `to` (from the queue or from whoever had it)."""
    async with sessions() as session:
        row = await session.get(HandoffRow, handoff_id)
        if row is None or row.tenant_id != tenant_id:
            raise NoSuchHandoff("no such handoff in your shop")
        before = row.assignee_id
        changed = (await session.execute(
            update(HandoffRow)
            .where(HandoffRow.id == handoff_id, HandoffRow.status == row.status,
                   HandoffRow.status.in_(OPEN),
                   (HandoffRow.assignee_id == before) if before is not None
                   else HandoffRow.assignee_id.is_(None))
            .values(status=ASSIGNED, assignee_id=to.id, assignee_name=to.name,
                    assigned_at=utcnow())
            .execution_options(synchronize_session=False))).rowcount
        if changed != 1:
            error = await _why_not(session, tenant_id, handoff_id)
            raise error if isinstance(error, NotOpen | NoSuchHandoff) else HandoffError(
                "the conversation changed hands meanwhile; reload and try again")
        await session.refresh(row)
        _log(session, row, TRANSFERRED, by.id, assignee={"id": to.id, "name": to.name},
             previous=before)
        await session.commit()
        return row


async def resolve(sessions: async_sessionmaker, tenant_id: str, handoff_id: int,
                  by: Agent) -> HandoffRow:
    """An open handoff → resolved: the bot has the conversation again. NotOpen if it was."""
    now = utcnow()
    async with sessions() as session:
        changed = (await session.execute(
            update(HandoffRow)
            .where(HandoffRow.id == handoff_id, HandoffRow.tenant_id == tenant_id,
                   HandoffRow.status.in_(OPEN))
            .values(status=RESOLVED, resolved_at=now, resolved_by=by.id)
            .execution_options(synchronize_session=False))).rowcount
        if changed != 1:
            raise await _why_not(session, tenant_id, handoff_id)
        row = await session.get(HandoffRow, handoff_id, populate_existing=True)
        assert row is not None
        _log(session, row, HANDOFF_RESOLVED, by.id)
        await session.commit()
        return row


async def agent_replied(sessions: async_sessionmaker, handoff_id: int) -> None:
    """The first human reply's time (analytics: waiting time to first human reply)."""
    async with sessions() as session:
        await session.execute(update(HandoffRow)
                              .where(HandoffRow.id == handoff_id,
                                     HandoffRow.first_reply_at.is_(None))
                              .values(first_reply_at=utcnow())
                              .execution_options(synchronize_session=False))
        await session.commit()


async def add_note(sessions: async_sessionmaker, tenant_id: str, sender_id: str,
                   handoff_id: int | None, author: Agent, text: str) -> NoteRow:
    async with sessions() as session:
        note = NoteRow(tenant_id=tenant_id, sender_id=sender_id, handoff_id=handoff_id,
                       author_id=author.id, author_name=author.name, text=text,
                       created_at=utcnow())
        session.add(note)
        await session.commit()
        return note


async def notes_of(sessions: async_sessionmaker, tenant_id: str,
                   sender_id: str) -> list[NoteRow]:
    async with sessions() as session:
        return list((await session.scalars(
            select(NoteRow).where(NoteRow.tenant_id == tenant_id, NoteRow.sender_id == sender_id)
            .order_by(NoteRow.id))).all())


async def rating_asked(sessions: async_sessionmaker, handoff_id: int) -> None:
    """The satisfaction question went out for this (resolved) handoff."""
    async with sessions() as session:
        await session.execute(update(HandoffRow).where(HandoffRow.id == handoff_id)
                              .values(rating_asked_at=utcnow())
                              .execution_options(synchronize_session=False))
        await session.commit()


# A visitor's answer to "How would you rate the help you got, from 1 (poor) to 5 (great)?" as
# people write it: "5", "4/5", "5 stars, thanks so much!", "five!", "I'd give it a 4", "⭐⭐⭐⭐".
# One number from 1 to 5 (a figure or its word, "/5" or "out of 5" at most) is the rating
# when words of rating say so ("stars", "rate", "out of"), or when nothing but a few lead-in
# words ("I'd give it a", "thanks,") come before it and nothing but praise or thanks after.
# Anything else is the bot's to answer: an order number ("1001" is no 1-5, nor is "order 5"),
# "2 items are missing" (the number counts items), two numbers ("5 stars, 2 days late": which
# one?), a question ("5 stars, but where is my refund?"). Stars as emoji count themselves.
_NUMBER_WORDS: Final = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_RATING_NUMBER = re.compile(
    r"(?<![\w#.,/-])(\d+(?:[.,]\d+)?|one|two|three|four|five)"
    r"(?:\s*(?:/|out of|of)\s*(\d+|five))?(?![\w@/]|[.,]\d)", re.I)
_RATING_WORDS = re.compile(r"\b(?:stars?|rat(?:e|ed|ing)|score|out of)\b", re.I)
_STAR_EMOJI = re.compile(r"[\u2b50\u2605\U0001f31f]")
# Words that may come before a bare rating ("I'd give it a 4", "thanks, 5")...
_LEAD: Final = frozenset({
    "a", "i", "i'd", "id", "i'll", "would", "will", "say", "give", "it", "you", "u", "them",
    "solid", "easily", "definitely", "yes", "yeah", "ok", "okay", "so", "well", "oh", "hmm",
    "um", "thanks", "thank", "great", "that's", "thats", "its", "it's", "is", "was", "clear",
})
# ...and after it: praise and thanks ("5 thanks", "4 - quick and helpful").
_PRAISE: Final = frozenset({
    "thanks", "thank", "you", "thx", "ty", "cheers", "so", "much", "very", "really", "great",
    "good", "excellent", "awesome", "amazing", "perfect", "fantastic", "brilliant", "super",
    "helpful", "fast", "quick", "nice", "lovely", "ok", "okay", "fine", "all", "the", "way",
    "definitely", "for", "sure", "help", "service", "from", "me", "a", "and", "please", "was",
    "it", "is", "that", "guys", "team", "job", "well", "done", "love", "it's", "its",
})


def rating_in(text: str) -> int | None:
    """A visitor's 1-5 rating in what they wrote, or None when it is not one (see above)."""
    said = text.strip().lower()
    if not said or "?" in said:
        return None
    stars = len(_STAR_EMOJI.findall(said))
    numbers = list(_RATING_NUMBER.finditer(said))
    if stars:
        return stars if 1 <= stars <= 5 and not numbers else None
    if len(numbers) != 1:
        return None
    found = numbers[0]
    figure, scale = found.group(1), found.group(2)
    value = _NUMBER_WORDS.get(figure) or (int(figure) if figure.isdigit() else 0)
    if not 1 <= value <= 5 or (scale is not None and scale not in ("5", "five")):
        return None
    if scale is not None or _RATING_WORDS.search(said):
        return value
    before = re.findall(r"[a-z']+", said[:found.start()])
    after = re.findall(r"[a-z']+", said[found.end():])
    if set(before) <= _LEAD and set(after) <= _PRAISE:
        return value
    return None


async def take_rating(sessions: async_sessionmaker, tenant_id: str, sender_id: str,
                      text: str) -> int | None:
    """If the visitor was asked for a rating (latest handoff resolved, asked within
    RATING_WINDOW, not rated yet) and `text` is one, record it and return it; else None
    (the message is the bot's to answer)."""
    rating = rating_in(text)
    if rating is None:
        return None
    async with sessions() as session:
        row = await session.scalar(
            select(HandoffRow).where(HandoffRow.tenant_id == tenant_id,
                                     HandoffRow.sender_id == sender_id)
            .order_by(HandoffRow.id.desc()).limit(1))
        if (row is None or row.status != RESOLVED or row.rating is not None
                or row.rating_asked_at is None
                or utcnow() - row.rating_asked_at > RATING_WINDOW):
            return None
        changed = (await session.execute(
            update(HandoffRow).where(HandoffRow.id == row.id, HandoffRow.rating.is_(None))
            .values(rating=rating, rated_at=utcnow())
            .execution_options(synchronize_session=False))).rowcount
        if changed != 1:
            return None
        # Whom the rating is for, in the shape every other event gives an assignee.
        assignee = ({"id": row.assignee_id, "name": row.assignee_name}
                    if row.assignee_id else None)
        _log(session, row, SATISFACTION, None, rating=rating, assignee=assignee)
        await session.commit()
        return rating
