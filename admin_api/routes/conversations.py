"""The shop's conversations: a filtered list and one transcript (owners, designers, agents).

A conversation is one visitor thread (core/conversations.py says how its state and outcome
are read). Its `id` is opaque: AES-SIV (deterministic authenticated encryption) of the sender
id with the shop's id as associated data, under a key derived from the credentials key
(Settings.conversation_id_key). So an id names the thread without showing the visitor's
phone number or email, maps back to the sender id without a lookup table, is the same on
every listing, and an id of another shop (or a made-up one) fails authentication: 404.
The visitor appears masked: the last four digits of a phone number, e***@example.com for an
email, a keyed pseudonym (core/logs.py `visitor`) for anything else.

A transcript is the conversation's messages grouped into turns: a visitor message with what
the bot made of it (intent, confidence, outcome), the actions Rasa ran, the bot's messages
(text, buttons), the knowledge sources the answer cited, and the delivery status of every
provider message the reply went out as (core/deliveries.py). Bot messages stored before any
visitor message (an agent's, a greeting) form a turn without a visitor message.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from pydantic import Field, model_validator

from admin_api.api import API, Call, Model, Page, PageQuery
from admin_api.errors import NotFound
from admin_api.principal import EVERYONE
from core import conversations, handoffs, logs
from core.conversations import ConversationQuery, HandoffRow, TranscriptMessage
from core.db import utcnow

ID_PREFIX = "c_"
# Days listed when the caller names no `from`: the list groups every message of the period
# (core/conversations.py `list_conversations`), so an unbounded one would grow with the
# shop's whole history. Measured on the query functions with 10,000 conversations of 6
# messages (60,000 messages in the shop, as many in another; tables analysed): the list
# over all of them 300 ms on SQLite, 210-270 ms on PostgreSQL; over 7 days 16 ms / 45 ms;
# a transcript 2 ms / 11-26 ms (a shared, busy host). Through the API, on freshly seeded
# tables and a busier host, tests/admin_api/test_conversations.py printed 0.7-1.3 s for the
# whole list and 0.4-0.6 s for a transcript (with 60,000): grouping grows with the period.
DEFAULT_DAYS = 30
_PHONE = re.compile(r"^\+?[\d\s().-]{6,}$")
_REPLY_KEY = re.compile(r"^reply:(\d+)$")  # connectors/inbox.py `reply_key`


# -- ids and visitors ------------------------------------------------------------------------
def conversation_id(key: bytes, tenant_id: str, sender_id: str) -> str:
    sealed = AESSIV(key).encrypt(sender_id.encode(), [tenant_id.encode()])
    return ID_PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()


def sender_of(key: bytes, tenant_id: str, conversation: str) -> str:
    """The sender id an id stands for in this shop; NotFound for anything else."""
    if not conversation.startswith(ID_PREFIX) or len(conversation) > 1024:
        raise NotFound("no such conversation in your shop")
    token = conversation.removeprefix(ID_PREFIX)
    try:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return AESSIV(key).decrypt(sealed, [tenant_id.encode()]).decode()
    except (InvalidTag, ValueError, binascii.Error):
        raise NotFound("no such conversation in your shop") from None


def masked_visitor(sender_id: str) -> str:
    """How a visitor is shown in lists: never their whole phone number or email."""
    user = sender_id.split(":", 2)[-1]
    if "@" in user:
        name, _, domain = user.rpartition("@")
        return f"{name[:1]}***@{domain}"
    if _PHONE.match(user):
        return "…" + re.sub(r"\D", "", user)[-4:]
    return logs.visitor(sender_id).rsplit(":", 1)[-1]


# -- the list --------------------------------------------------------------------------------
class ConversationFilter(PageQuery):
    channel: str | None = Field(None, max_length=32, description="rest, web, sms, whatsapp, "
                                                                 "email")
    state: Literal["bot", "queued", "assigned", "resolved"] | None = Field(
        None, description="bot: no person involved; handoff: a request is open or taken; "
                          "resolved: a person handed it back")
    outcome: Literal["contained", "handoff", "fallback"] | None = Field(
        None, description="handoff: a person was involved; fallback: no person, but the bot "
                          "could not answer at least once; contained: neither")
    first: date | None = Field(None, alias="from", description="first day (YYYY-MM-DD, UTC), "
                               f"inclusive; default {DEFAULT_DAYS} days before `to`")
    last: date | None = Field(None, alias="to", description="last day (YYYY-MM-DD, UTC), "
                                                            "inclusive; default today")
    q: str | None = Field(None, min_length=1, max_length=200,
                          description="text that one of its messages contains")
    sort: Literal["recent", "waiting"] = Field(
        "recent", description="recent: the latest active first; waiting: the oldest handoff "
                              "request first (the agents' queue)")

    @model_validator(mode="after")
    def _a_period(self) -> ConversationFilter:
        if self.first and self.last and self.first > self.last:
            raise ValueError("`from` is after `to`")
        return self

    def conversations(self) -> ConversationQuery:
        def start(day: date) -> datetime:
            return datetime.combine(day, time.min, UTC)

        first = self.first or (self.last or datetime.now(UTC).date()) - timedelta(
            days=DEFAULT_DAYS - 1)
        return ConversationQuery(
            channel=self.channel, state=self.state, outcome=self.outcome, text=self.q,
            since=start(first),
            until=start(self.last + timedelta(days=1)) if self.last else None,
            order=self.sort)


class AgentOut(Model):
    id: str = Field(description="a person's user id, or key:<prefix> for an agent API key")
    name: str


class HandoffOut(Model):
    id: int
    status: Literal["queued", "assigned", "resolved"]
    reason: str = Field(description="visitor_asked, verification_failed, knowledge_abstained, "
                                    "misunderstood, ...")
    summary: dict[str, Any] = Field(description="what the bot already knows: intent, "
                                                "order_number, question (any may be missing)")
    visitor_said: str | None = Field(None, description="the visitor's message the handoff "
                                                       "came with, in their words")
    assignee: AgentOut | None
    requested_at: datetime
    waiting_seconds: float = Field(description="how long the visitor waited for a person's "
                                               "first reply (so far, while none came)")
    resolved_at: datetime | None = None
    rating: int | None = Field(None, description="the visitor's 1-5 after it was resolved")
    rated_at: datetime | None = Field(None, description="when the visitor rated it")


def handoff_out(row: HandoffRow) -> HandoffOut:
    until = row.first_reply_at or row.resolved_at or utcnow()
    return HandoffOut.model_validate({
        "id": row.id, "status": row.status if row.status in handoffs.STATUSES else "queued",
        "reason": row.reason, "summary": dict(row.summary or {}),
        "visitor_said": row.last_message,
        "assignee": {"id": row.assignee_id, "name": row.assignee_name or row.assignee_id}
        if row.assignee_id else None,
        "requested_at": row.created_at,
        "waiting_seconds": max(0.0, round((until - row.created_at).total_seconds(), 1)),
        "resolved_at": row.resolved_at, "rating": row.rating,
        "rated_at": row.rated_at})


class LastMessageOut(Model):
    direction: Literal["in", "out"]
    text: str | None


class VisitorMessageSaid(Model):
    text: str | None
    at: datetime


class ConversationOut(Model):
    id: str = Field(description="opaque; GET /conversations/{id} reads its transcript")
    channel: str
    visitor: str = Field(description="masked: …1234, e***@example.com or a pseudonym")
    started_at: datetime
    last_message_at: datetime
    messages: int = Field(description="messages in both directions (in the period asked for)")
    state: Literal["bot", "queued", "assigned", "resolved"]
    outcome: Literal["contained", "handoff", "fallback"]
    last_message: LastMessageOut | None
    last_visitor_message: VisitorMessageSaid | None = Field(
        None, description="the visitor's own latest message (in the period): what they wrote "
                          "last when the last message is the bot's or an agent's")
    handoff: HandoffOut | None = Field(None, description="its latest handoff request, if any")


@API.route("GET", "/conversations", roles=EVERYONE, query=ConversationFilter,
           response=Page[ConversationOut], summary="List the shop's conversations")
async def list_conversations(call: Call[None, ConversationFilter]) -> Page[ConversationOut]:
    """Latest active first (`sort=waiting`: the oldest handoff request first). Only the
    messages of the days `from`..`to` are looked at (by default the last 30 days): a
    conversation is listed when it has a message then, and its counts and times are those
    of the period. `state=queued` with `sort=waiting` is the agents' queue."""
    key = call.ctx.settings.conversation_id_key
    found, total = await conversations.list_conversations(
        call.ctx.sessions, call.shop, call.query.conversations(), call.query.offset,
        call.query.page_size)
    latest = await conversations.latest_handoffs(
        call.ctx.sessions, call.shop, [c.sender_id for c in found if c.state != "bot"])
    items = [ConversationOut.model_validate({
        "id": conversation_id(key, call.shop, c.sender_id), "channel": c.channel,
        "visitor": masked_visitor(c.sender_id), "started_at": c.started_at,
        "last_message_at": c.last_message_at, "messages": c.messages, "state": c.state,
        "outcome": c.outcome,
        "last_message": None if c.last_direction is None else {
            "direction": c.last_direction, "text": c.last_message},
        "last_visitor_message": None if c.visitor_last_at is None else {
            "text": c.visitor_last_message, "at": c.visitor_last_at},
        "handoff": handoff_out(latest[c.sender_id]) if c.sender_id in latest else None})
        for c in found]
    return Page[ConversationOut](items=items, total=total, page=call.query.page,
                                 page_size=call.query.page_size)


# -- one transcript --------------------------------------------------------------------------
class TranscriptQuery(Model):
    limit: int = Field(200, ge=1, le=1000, description="at most this many messages, the latest")
    before: int | None = Field(None, ge=1, description="older than this message (a previous "
                                                       "answer's `older_than`)")


class ButtonOut(Model):
    title: str
    payload: str | None = None


class DeliveryOut(Model):
    provider: str
    provider_message_id: str | None
    status: str
    error_code: str | None
    error_detail: str | None
    updated_at: datetime


class BotMessageOut(Model):
    text: str | None
    buttons: list[ButtonOut] = []
    image: str | None = None
    agent: AgentOut | None = Field(None, description="the person who wrote it; null: the bot")
    deliveries: list[DeliveryOut] = Field(
        default_factory=list, description="how the reply this message ends went out (on the "
                                          "reply's last message; none on REST and web)")


class SourceOut(Model):
    title: str | None
    url: str | None
    document: str | None


class VisitorMessageOut(Model):
    id: int
    text: str | None
    at: datetime


class TurnOut(Model):
    visitor: VisitorMessageOut | None = Field(description="null: the bot (or an agent) wrote "
                                                          "first")
    intent: str | None
    confidence: float | None
    outcome: str | None = Field(description="flow, knowledge, abstained, fallback, handoff or "
                                            "smalltalk (core/conversations.py defines each)")
    actions: list[str] = Field(description="actions Rasa ran for it, in order")
    bot: list[BotMessageOut]
    knowledge_mode: str | None = Field(description="llm, extractive, fallback or abstained "
                                                   "when the knowledge route answered")
    sources: list[SourceOut]
    deliveries: list[DeliveryOut] = Field(description="one per provider message the reply "
                                                      "went out as (none on REST and web)")


class NoteOut(Model):
    id: int
    author: AgentOut
    text: str
    at: datetime


class TranscriptOut(Model):
    id: str
    channel: str
    visitor: str
    state: Literal["bot", "queued", "assigned", "resolved"]
    turns: list[TurnOut]
    notes: list[NoteOut] = Field(description="agents' internal notes, oldest first; never "
                                             "sent to the visitor")
    handoffs: list[HandoffOut] = Field(description="its handoff requests, oldest first")
    older_than: int | None = Field(description="when older messages exist: pass as `before`")


@API.route("GET", "/conversations/{conversation_id}", roles=EVERYONE, query=TranscriptQuery,
           response=TranscriptOut, summary="Read one conversation's transcript")
async def read_conversation(call: Call[None, TranscriptQuery]) -> TranscriptOut:
    conversation = call.path["conversation_id"]
    sender_id = sender_of(call.ctx.settings.conversation_id_key, call.shop, conversation)
    found = await conversations.transcript(call.ctx.sessions, call.shop, sender_id,
                                           call.query.limit, call.query.before)
    if found is None:
        raise NotFound("no such conversation in your shop")
    notes = await handoffs.notes_of(call.ctx.sessions, call.shop, sender_id)
    requests = await conversations.handoffs_of(call.ctx.sessions, call.shop, sender_id)
    return TranscriptOut.model_validate({
        "id": conversation, "channel": found.channel, "visitor": masked_visitor(sender_id),
        "state": found.state, "turns": turns_of(found.messages),
        "notes": [note_out(n) for n in notes], "handoffs": [handoff_out(h) for h in requests],
        "older_than": found.messages[0].id if found.more and found.messages else None})


def note_out(note: handoffs.NoteRow) -> NoteOut:
    return NoteOut(id=note.id, author=AgentOut(id=note.author_id, name=note.author_name),
                   text=note.text, at=note.created_at)


def turns_of(messages: list[TranscriptMessage]) -> list[TurnOut]:
    """Messages (oldest first) as turns: each visitor message opens one; a bot reply joins
    the turn it answers (its `reply:<pk>` key), else the latest turn."""
    turns: list[TurnOut] = []
    by_pk: dict[int, TurnOut] = {}
    for message in messages:
        if message.direction == "in":
            turn = TurnOut(
                visitor=VisitorMessageOut(id=message.id, text=message.text,
                                          at=message.created_at),
                intent=message.intent, confidence=message.confidence, outcome=message.outcome,
                actions=[], bot=[], knowledge_mode=None, sources=[], deliveries=[])
            turns.append(turn)
            by_pk[message.id] = turn
            continue
        answered = _REPLY_KEY.match(message.message_id or "")
        turn_or_none = by_pk.get(int(answered.group(1))) if answered else None
        if turn_or_none is None:
            if not turns:
                turns.append(TurnOut(visitor=None, intent=None, confidence=None, outcome=None,
                                     actions=[], bot=[], knowledge_mode=None, sources=[],
                                     deliveries=[]))
            turn_or_none = turns[-1]
        _add_reply(turn_or_none, message)
    return turns


def _add_reply(turn: TurnOut, message: TranscriptMessage) -> None:
    payload = message.payload or {}
    by = payload.get("agent")
    agent = (AgentOut(id=str(by.get("id")), name=str(by.get("name") or by.get("id")))
             if isinstance(by, dict) and by.get("id") else None)
    said = payload.get("messages")
    if not isinstance(said, list):
        said = [{"text": message.text}]
    turn.actions.extend(str(a) for a in payload.get("actions") or ())
    added = False
    for item in said:
        if not isinstance(item, dict):
            continue
        knowledge = conversations.knowledge_of(item)
        if knowledge is not None:
            turn.knowledge_mode = str(knowledge.get("mode")) if knowledge.get("mode") else None
            turn.sources.extend(SourceOut(title=s.get("title"), url=s.get("url"),
                                          document=s.get("document"))
                                for s in knowledge.get("sources") or () if isinstance(s, dict))
        buttons = [ButtonOut(title=str(b.get("title", "")), payload=b.get("payload"))
                   for b in item.get("buttons") or () if isinstance(b, dict)]
        if item.get("text") or buttons or item.get("image"):
            turn.bot.append(BotMessageOut(text=item.get("text"), buttons=buttons,
                                          image=item.get("image"), agent=agent))
            added = True
    deliveries = [_delivery(d) for d in message.deliveries]
    if added:  # under the reply they belong to, not the turn's last (an agent's after the bot's)
        turn.bot[-1].deliveries = deliveries
    turn.deliveries.extend(deliveries)


def _delivery(row: Any) -> DeliveryOut:
    return DeliveryOut(provider=row.provider, provider_message_id=row.provider_message_id,
                       status=row.status, error_code=row.error_code,
                       error_detail=row.error_detail, updated_at=row.updated_at)
