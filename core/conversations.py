"""Records about conversations that several processes write: messages and handoff requests.

The gateway stores every inbound and outbound message; actions record handoff requests.
The agent inbox reads both (core/handoffs.py changes handoffs' states). Each inbound row
also keeps what the bot made of it (`Understood`: intent, confidence and the turn's outcome,
`outcome_of`), which the admin API's transcripts and analytics read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    ColumnElement,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    cast,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Mapped, aliased, mapped_column

from core.db import Base, UtcDateTime, utcnow
from core.deliveries import DeliveryRow


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel", "direction", "message_id"),
        # Transcripts, conversation lists and analytics read a shop's messages by time.
        Index("ix_messages_tenant_id_created_at", "tenant_id", "created_at"),
        # AUTOINCREMENT: SQLite would give erased messages' ids to the next ones, below the
        # REST poll cursors clients hold (migration 0015).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    sender_id: Mapped[str] = mapped_column(String(255), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    message_id: Mapped[str | None] = mapped_column(String(255))  # provider id, for dedupe
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Provider channels answer in the background: set once the reply went out (or a permanent
    # error was recorded), so any gateway can answer what was acknowledged but not handled.
    handled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Who is answering it and until when (connectors/leases.py): a gateway that dies leaves an
    # expired lease that any other gateway's sweep takes over. `attempts` counts the claims.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the bot made of a visitor's message (inbound rows, set once Rasa answered): the
    # intent and its confidence, and the turn's outcome for analytics: "flow", "knowledge",
    # "abstained", "fallback", "handoff", "smalltalk" (`outcome_of` defines each one; the
    # admin API's transcripts and analytics read them). NULL: not answered (yet), or answered
    # by a Rasa that did not say (the apology when the bot was down, or an older channel).
    intent: Mapped[str | None] = mapped_column(String(100))
    confidence: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str | None] = mapped_column(String(16))


class HandoffRow(Base):
    """One escalation of a conversation to a person; core/handoffs.py owns its transitions."""

    __tablename__ = "handoff_requests"
    # AUTOINCREMENT: without it SQLite gives an erased handoff's id to the next one, and
    # webhook events name two people's handoffs by one id (migration 0012).
    __table_args__ = (Index("ix_handoff_requests_tenant_id_status", "tenant_id", "status"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    sender_id: Mapped[str] = mapped_column(String(255), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(64))  # "visitor_asked", "verification_failed", ...
    last_message: Mapped[str | None] = mapped_column(Text)
    # queued | assigned | resolved (core/handoffs.py STATUSES)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # What the bot already knows, for the agent's queue: {"intent", "order_number",
    # "question"} (any may be missing).
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    assignee_id: Mapped[str | None] = mapped_column(String(64))  # user id or "key:<prefix>"
    assignee_name: Mapped[str | None] = mapped_column(String(200))
    assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_reply_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    rating_asked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rating: Mapped[int | None] = mapped_column(Integer)  # the visitor's 1-5
    rated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# -- what the bot made of a turn -----------------------------------------------------------
# A turn is one visitor message and everything Rasa did for it. Its outcome is the first of
# these that applies, in this order (`outcome_of`):
#
#   "handoff"    a person takes over: `action_handoff` ran in this turn (the visitor asked,
#                or said yes to an offered person; also "you are already in the queue"), or
#                the conversation is paused for a person (Rasa recorded the message and did
#                not answer: an agent owns it).
#   "knowledge"  the knowledge route answered: a bot message of this turn carries
#                custom.knowledge with a mode other than "abstained" (actions/knowledge.py:
#                llm, extractive, fallback — always with its sources).
#   "fallback"   the bot did not understand: intent `nlu_fallback` (below the NLU threshold)
#                without a knowledge answer, or `action_default_fallback` / `action_fallback`
#                ran, or Rasa said nothing at all to a conversation nobody paused.
#   "abstained"  the message was understood as a question (ask_question, out_of_scope, an
#                unplaced inform) but the knowledge route had no grounded answer: it said
#                utter_knowledge_not_found (custom.knowledge.mode "abstained") or
#                utter_knowledge_unavailable, and offered a person.
#   "smalltalk"  intent greet, goodbye, thank or bot_challenge, and none of the above.
#   "flow"       anything else: a scripted flow (order status, returns, their questions and
#                answers, affirm/deny, stop, media) went on.
#
# A conversation's outcome (analytics counts the same three: `conversation_outcome`) is
# defined further down, beside the list that shows it.
OUTCOMES: Final = ("flow", "knowledge", "abstained", "fallback", "handoff", "smalltalk")
HANDOFF_ACTIONS: Final = frozenset({"action_handoff"})
FALLBACK_ACTIONS: Final = frozenset({"action_default_fallback", "action_fallback"})
FALLBACK_INTENTS: Final = frozenset({"nlu_fallback"})
KNOWLEDGE_ACTION: Final = "action_answer_from_knowledge"
NOT_FOUND_RESPONSES: Final = frozenset({"utter_knowledge_not_found",
                                        "utter_knowledge_unavailable"})
SMALLTALK_INTENTS: Final = frozenset({"greet", "goodbye", "thank", "bot_challenge"})
# Which turn speaks for a visitor message that was several turns (one per question, SMS
# "q1? q2?"): the one whose outcome comes first here.
_WEIGHT: Final = {name: rank for rank, name in enumerate(
    ("handoff", "fallback", "abstained", "knowledge", "flow", "smalltalk"))}


def knowledge_of(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A bot message's knowledge facts (custom.knowledge: mode, sources, ...), if any."""
    custom = message.get("custom")
    knowledge = custom.get("knowledge") if isinstance(custom, dict) else None
    return knowledge if isinstance(knowledge, dict) else None


def outcome_of(intent: str | None, actions: Sequence[str],
               messages: Sequence[Mapping[str, Any]], responses: Iterable[str] = (),
               paused: bool = False) -> str:
    """The turn's outcome (the comment above OUTCOMES defines each value).

    `actions`: the actions Rasa ran for this message, in order; `messages`: the bot's
    messages (Rasa's channel format: text, buttons, custom); `responses`: the names of the
    domain responses it said (utter_*); `paused`: a person owns the conversation."""
    ran = set(actions)
    if ran & HANDOFF_ACTIONS or paused:
        return "handoff"
    modes = [k.get("mode") for k in map(knowledge_of, messages) if k is not None]
    if any(mode != "abstained" for mode in modes):
        return "knowledge"
    if intent in FALLBACK_INTENTS or ran & FALLBACK_ACTIONS or not messages:
        return "fallback"
    if modes or KNOWLEDGE_ACTION in ran or NOT_FOUND_RESPONSES & set(responses):
        return "abstained"
    if intent in SMALLTALK_INTENTS:
        return "smalltalk"
    return "flow"


@dataclass(frozen=True)
class Understood:
    """What the bot made of one visitor message: stored on its inbound row."""

    intent: str | None = None
    confidence: float | None = None
    outcome: str | None = None

    def columns(self) -> dict[str, Any]:
        return {"intent": self.intent[:100] if self.intent else self.intent,
                "confidence": self.confidence, "outcome": self.outcome}

    @classmethod
    def deciding(cls, turns: Sequence[Understood]) -> Understood:
        """One message answered in several turns: the turn whose outcome weighs most."""
        known = [t for t in turns if t.outcome is not None]
        return min(known, key=lambda t: _WEIGHT.get(t.outcome or "", 99), default=cls())


NOTHING_UNDERSTOOD: Final = Understood()


async def record_turn(sessions: async_sessionmaker, message_pk: int, understood: Understood,
                      reply: Mapping[str, Any] | None = None) -> int | None:
    """Store what the bot made of stored message `message_pk` and, in the same transaction,
    the bot's reply (`reply`: record_message's keyword arguments). Returns the reply's id.

    For turns answered within the request (REST, widget), off the answer's path; provider
    messages get theirs in the UPDATE that marks them handled (connectors/leases.py)."""
    async with sessions() as session:
        reply_pk = None
        if reply is not None:
            reply_pk = (await session.execute(
                insert(MessageRow).values(**{"created_at": utcnow(), **reply})
                .returning(MessageRow.id))).scalar_one()
        if understood != NOTHING_UNDERSTOOD:
            await session.execute(update(MessageRow).where(MessageRow.id == message_pk)
                                  .values(**understood.columns()))
        await session.commit()
    return reply_pk


class DuplicateMessage(Exception):
    """This provider message id was already stored for the tenant and channel."""


async def record_message(
    sessions: async_sessionmaker,
    *,
    tenant_id: str,
    sender_id: str,
    channel: str,
    direction: str,
    text: str | None,
    message_id: str | None = None,
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
    answer_from: datetime | None = None,
) -> int:
    """Store one message; raises DuplicateMessage when `message_id` was seen before.

    `at` is when it was said, for a message stored after the fact (a bot reply stored once it
    went out), so a conversation reads in order by created_at even when the visitor's next
    message was stored first. `answer_from`: a provider message to be answered, free to be
    claimed from then on (connectors/leases.py)."""
    # A Core INSERT, not the ORM unit of work: this runs on every turn's hot path.
    statement = (
        insert(MessageRow)
        .values(
            tenant_id=tenant_id,
            sender_id=sender_id,
            channel=channel,
            direction=direction,
            text=text,
            message_id=message_id,
            payload=payload,
            created_at=at or utcnow(),
            lease_expires_at=answer_from,
        )
        .returning(MessageRow.id)
    )
    async with sessions() as session:
        try:
            message_pk = (await session.execute(statement)).scalar_one()
            await session.commit()
        except IntegrityError as exc:
            raise DuplicateMessage(message_id) from exc
    return message_pk


@dataclass(frozen=True)
class StoredMessage:
    """One row of a conversation as read back (transcripts, the widget's history)."""

    id: int
    direction: str  # "in" | "out"
    text: str | None
    payload: dict[str, Any] | None
    created_at: datetime | None


async def recent_messages(sessions: async_sessionmaker, tenant_id: str, sender_id: str,
                          limit: int = 50) -> list[StoredMessage]:
    """The last `limit` messages of a conversation, oldest first, by when each was said (a bot
    reply is stored just after it went out, sometimes after the visitor's next message)."""
    query = (
        select(MessageRow.id, MessageRow.direction, MessageRow.text, MessageRow.payload,
               MessageRow.created_at)
        .where(MessageRow.tenant_id == tenant_id, MessageRow.sender_id == sender_id)
        .order_by(MessageRow.created_at.desc(), MessageRow.id.desc())
        .limit(limit)
    )
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    return [StoredMessage(*row) for row in reversed(rows)]


async def last_bot_payload(sessions: async_sessionmaker, tenant_id: str,
                           sender_id: str) -> dict[str, Any] | None:
    """The payload of the bot's latest message in a conversation ({"messages": [...]})."""
    async with sessions() as session:
        payload = (await session.execute(
            select(MessageRow.payload)
            .where(MessageRow.tenant_id == tenant_id, MessageRow.sender_id == sender_id,
                   MessageRow.direction == "out")
            .order_by(MessageRow.id.desc()).limit(1))).scalar()
    return payload if isinstance(payload, dict) else None


async def last_inbound_at(sessions: async_sessionmaker, sender_id: str) -> datetime | None:
    """When the visitor last wrote in this conversation (WhatsApp's 24-hour window)."""
    async with sessions() as session:
        last = (await session.execute(select(func.max(MessageRow.created_at)).where(
            MessageRow.sender_id == sender_id, MessageRow.direction == "in"))).scalar()
    # max() keeps the column's type, so this is an aware UTC datetime on both databases.
    return last if isinstance(last, datetime) else None


# -- reading conversations back (the admin API's list and transcripts) ---------------------
# A conversation is one visitor thread: a sender id ("{tenant}:{channel}:{user}"). Its state comes
# from its latest handoff request (core/handoffs.py): none "bot", else that request's status:
# "queued" (waiting for an agent), "assigned" or "resolved". Its outcome: "handoff" when a person
# was involved (a turn's outcome handoff, or any handoff request), else "fallback" when at least
# one turn was not answered (outcome fallback or abstained), else "contained".
STATES: Final = ("bot", "queued", "assigned", "resolved")
CONVERSATION_OUTCOMES: Final = ("contained", "handoff", "fallback")
MISSED: Final = ("fallback", "abstained")


def conversation_outcome(handed_off: ColumnElement[bool],
                         missed: ColumnElement[bool]) -> ColumnElement[str]:
    """A conversation's outcome (CONVERSATION_OUTCOMES, the comment above), in SQL: the list
    below and analytics' containment (admin_api/analytics.py) both read this one, so the
    Conversations tab and Analytics never disagree about a conversation. `handed_off`: a
    person was involved; `missed`: at least one turn's outcome is in MISSED."""
    return case((handed_off, "handoff"), (missed, "fallback"), else_="contained")


@dataclass(frozen=True)
class ConversationQuery:
    """Which of a shop's conversations to list. `since`/`until` bound the messages looked at
    (counts and times are those of the period; a conversation is listed when it has a
    message in it); `text` matches any message's text, case-insensitively."""

    channel: str | None = None
    state: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    # "recent": the latest active first; "waiting": the oldest handoff request first (the
    # agents' queue), conversations without one last.
    order: str = "recent"


@dataclass(frozen=True)
class ConversationSummary:
    sender_id: str
    channel: str
    started_at: datetime
    last_message_at: datetime
    messages: int
    state: str
    outcome: str
    last_message: str | None = None
    last_direction: str | None = None
    # The visitor's own latest message of the period (the last one is often the bot's or an
    # agent's): what an agent scans the queue for.
    visitor_last_message: str | None = None
    visitor_last_at: datetime | None = None


def _same_shop(column: Any, tenant_id: str) -> Any:
    """`column == tenant_id`, written so that no index on it is chosen: these queries find
    their rows by sender id (one conversation's messages), and SQLite without statistics
    (we never ANALYZE) otherwise walks the shop's whole (tenant_id, created_at) index to save
    a sort: 27 ms instead of <1 ms at 60,000 messages, growing with the shop. The
    condition still holds: every row comes from the caller's shop."""
    return cast(column, String) == tenant_id


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _latest_handoffs(tenant_id: str) -> Any:
    """(sender_id, status, requested_at) of each conversation's latest handoff request."""
    latest = (select(HandoffRow.sender_id, func.max(HandoffRow.id).label("handoff_id"))
              .where(HandoffRow.tenant_id == tenant_id)
              .group_by(HandoffRow.sender_id).subquery())
    return (select(latest.c.sender_id, HandoffRow.status,
                   HandoffRow.created_at.label("requested_at"))
            .join(HandoffRow, HandoffRow.id == latest.c.handoff_id).subquery())


async def list_conversations(sessions: async_sessionmaker, tenant_id: str,
                             query: ConversationQuery, offset: int = 0,
                             limit: int = 50) -> tuple[list[ConversationSummary], int]:
    """One page of a shop's conversations, the latest active first, and how many match.

    Two statements whatever the page size: the page (with the count), its last messages.
    The period's bounds use the (tenant_id, created_at) index; grouping reads the period's
    messages once (bench numbers in admin_api/routes/conversations.py)."""
    m = MessageRow
    where = [m.tenant_id == tenant_id]
    if query.channel:
        where.append(m.channel == query.channel)
    if query.since is not None:
        where.append(m.created_at >= query.since)
    if query.until is not None:
        where.append(m.created_at < query.until)
    if query.text:
        found = aliased(MessageRow)
        where.append(m.sender_id.in_(
            select(found.sender_id).where(
                found.tenant_id == tenant_id, func.lower(found.text).like(
                    _like(query.text.lower()), escape="\\"),
                *([found.created_at >= query.since] if query.since is not None else []),
                *([found.created_at < query.until] if query.until is not None else []))))
    grouped = (
        select(m.sender_id, m.channel,
               func.min(m.created_at).label("started_at"),
               func.max(m.created_at).label("last_message_at"),
               func.count().label("messages"),
               func.sum(case((m.outcome == "handoff", 1), else_=0)).label("handoffs"),
               func.sum(case((m.outcome.in_(MISSED), 1), else_=0)).label("missed"),
               func.max(m.id).label("last_id"))
        .where(*where).group_by(m.sender_id, m.channel).subquery())
    handoffs = _latest_handoffs(tenant_id)
    state = case((handoffs.c.status.is_(None), "bot"), else_=handoffs.c.status)
    outcome = conversation_outcome(
        or_(grouped.c.handoffs > 0, handoffs.c.status.is_not(None)), grouped.c.missed > 0)
    listed = (select(grouped.c.sender_id, grouped.c.channel, grouped.c.started_at,
                     grouped.c.last_message_at, grouped.c.messages, state.label("state"),
                     outcome.label("outcome"), func.count().over().label("total"))
              .select_from(grouped.outerjoin(handoffs,
                                             handoffs.c.sender_id == grouped.c.sender_id)))
    if query.state:
        listed = listed.where(state == query.state)
    if query.outcome:
        listed = listed.where(outcome == query.outcome)
    async with sessions() as session:
        # The count rides along as a window over the page's query: one grouping, not two.
        order = ((handoffs.c.requested_at.is_(None), handoffs.c.requested_at,
                  grouped.c.sender_id) if query.order == "waiting"
                 else (grouped.c.last_message_at.desc(), grouped.c.sender_id))
        rows = (await session.execute(
            listed.order_by(*order).offset(offset).limit(limit))).all()
        if rows:
            total = rows[0].total
        else:  # past the last page (or nothing at all): count separately
            total = (await session.execute(
                select(func.count()).select_from(listed.subquery()))).scalar_one()
        last = await _last_messages(session, tenant_id, [row.sender_id for row in rows], query)
    return [ConversationSummary(row.sender_id, row.channel, row.started_at,
                                row.last_message_at, row.messages, row.state, row.outcome,
                                **last.get(row.sender_id, {}))
            for row in rows], total


async def _last_messages(session: Any, tenant_id: str, senders: Sequence[str],
                         query: ConversationQuery) -> dict[str, dict[str, Any]]:
    """Each listed conversation's latest message (text, direction) in the period and its
    visitor's latest one (text, when), at once: the latest of each direction, in one
    statement; the later of the two is the conversation's last."""
    if not senders:
        return {}
    m = MessageRow
    ranked = (select(m.sender_id, m.text, m.direction, m.created_at, m.id,
                     func.row_number().over(partition_by=(m.sender_id, m.direction),
                                            order_by=(m.created_at.desc(), m.id.desc()))
                     .label("n"))
              .where(_same_shop(m.tenant_id, tenant_id), m.sender_id.in_(senders),
                     *([m.created_at >= query.since] if query.since is not None else []),
                     *([m.created_at < query.until] if query.until is not None else []))
              .subquery())
    rows = (await session.execute(select(ranked).where(ranked.c.n == 1))).all()
    latest: dict[str, Any] = {}
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        fields = found.setdefault(row.sender_id, {})
        if row.direction == "in":
            fields.update(visitor_last_message=row.text, visitor_last_at=row.created_at)
        before = latest.get(row.sender_id)
        if before is None or (row.created_at, row.id) > (before.created_at, before.id):
            latest[row.sender_id] = row
            fields.update(last_message=row.text, last_direction=row.direction)
    return found


@dataclass(frozen=True)
class TranscriptMessage:
    """One stored message of a transcript, with what the bot made of it (inbound) or the
    deliveries of its provider messages (outbound)."""

    id: int
    direction: str
    text: str | None
    payload: dict[str, Any] | None
    created_at: datetime
    message_id: str | None
    intent: str | None
    confidence: float | None
    outcome: str | None
    deliveries: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Transcript:
    sender_id: str
    channel: str
    messages: list[TranscriptMessage]
    state: str
    more: bool  # older messages exist than the first one here


async def transcript(sessions: async_sessionmaker, tenant_id: str, sender_id: str,
                     limit: int = 500, before: int | None = None) -> Transcript | None:
    """A conversation's latest `limit` messages (older than message `before` when given),
    oldest first, with deliveries; None when the shop has no such conversation. Three
    statements: messages (sender_id index), their deliveries, the latest handoff request."""
    m = MessageRow
    statement = (select(m.id, m.direction, m.text, m.payload, m.created_at, m.message_id,
                        m.intent, m.confidence, m.outcome, m.channel)
                 .where(_same_shop(m.tenant_id, tenant_id), m.sender_id == sender_id)
                 .order_by(m.created_at.desc(), m.id.desc()).limit(limit + 1))
    if before is not None:
        pivot = (select(m.created_at).where(m.id == before, m.tenant_id == tenant_id,
                                            m.sender_id == sender_id).scalar_subquery())
        statement = statement.where(or_(m.created_at < pivot,
                                        and_(m.created_at == pivot, m.id < before)))
    async with sessions() as session:
        rows = (await session.execute(statement)).all()
        if not rows and (before is None or (await session.execute(
                select(m.id).where(m.tenant_id == tenant_id, m.sender_id == sender_id)
                .limit(1))).first() is None):
            return None
        more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        out_ids = [row.id for row in rows if row.direction == "out"]
        deliveries: dict[int, list[Any]] = {}
        if out_ids:
            found = (await session.execute(
                select(DeliveryRow).where(DeliveryRow.tenant_id == tenant_id,
                                          DeliveryRow.message_pk.in_(out_ids))
                .order_by(DeliveryRow.id))).scalars()
            for delivery in found:
                deliveries.setdefault(delivery.message_pk or 0, []).append(delivery)
        status = (await session.execute(
            select(HandoffRow.status).where(HandoffRow.tenant_id == tenant_id,
                                            HandoffRow.sender_id == sender_id)
            .order_by(HandoffRow.id.desc()).limit(1))).scalar()
    state = "bot" if status is None else status
    channel = rows[0].channel if rows else sender_id.split(":", 2)[1]
    return Transcript(sender_id, channel, [
        TranscriptMessage(row.id, row.direction, row.text, row.payload, row.created_at,
                          row.message_id, row.intent, row.confidence, row.outcome,
                          tuple(deliveries.get(row.id, ())))
        for row in rows], state, more)


async def latest_handoffs(sessions: async_sessionmaker, tenant_id: str,
                          senders: Sequence[str]) -> dict[str, HandoffRow]:
    """Each of these conversations' latest handoff request (the agents' queue shows it)."""
    if not senders:
        return {}
    latest = (select(func.max(HandoffRow.id))
              .where(HandoffRow.tenant_id == tenant_id, HandoffRow.sender_id.in_(senders))
              .group_by(HandoffRow.sender_id))
    async with sessions() as session:
        rows = (await session.scalars(select(HandoffRow).where(HandoffRow.id.in_(latest)))).all()
    return {row.sender_id: row for row in rows}


async def handoffs_of(sessions: async_sessionmaker, tenant_id: str,
                      sender_id: str) -> list[HandoffRow]:
    """A conversation's handoff requests, oldest first (its transcript lists them)."""
    async with sessions() as session:
        return list((await session.scalars(
            select(HandoffRow).where(HandoffRow.tenant_id == tenant_id,
                                     HandoffRow.sender_id == sender_id)
            .order_by(HandoffRow.id))).all())
