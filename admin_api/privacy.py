"""Everything stored about one visitor of one shop: find it, export it, erase it.

A visitor is named by what the owner has: an email address, a phone number, a conversation
(the opaque `c_…` id the conversations list, the inbox and webhook events show; the route
decodes it), the `sender` the shop's own REST client chose, or several of them (their
conversations are the union). Every store keys conversations by the sender id,
"{tenant_id}:{channel}:{user_key}" (core/sender_ids.py), where the user key is the visitor's
address on that channel, so the visitor's conversations are:

- by phone: `{shop}:sms:+E164` and `{shop}:whatsapp:+E164` (Twilio and Meta both use E.164);
- by email: `{shop}:email:<address>`, and every conversation of the shop on any channel where
  the visitor gave that address: a Rasa `slot` event setting `email` to it (the order and
  returns forms ask for it), or a message of the visitor's that contains it;
- by REST sender: `{shop}:rest:<sender>` (the gateway strips it, as here);
- by conversation: its sender id (a sender id given as such, with or without the leading
  `{shop}:`, is taken as well: scripts written before the opaque ids).

A value that cannot name anyone (a "phone number" with too few digits, an address without
one @, control characters) is refused (`NamesNoOne`, 422) rather than finding nothing: an
owner must not read "nothing stored" when they mistyped. Only sender ids starting with the
caller's shop id are ever looked at, so another shop's visitor (the same phone number
writing to another shop) is never read or touched.

The stores, each answered with its own count:
- `messages`, `deliveries`, `handoff_requests`, `return_requests` (our tables, by sender id);
- `conversation_notes`, agents' internal notes (free text about the visitor: names, addresses,
  order facts), and `conversation_events`, the handoff event log (requested, claimed,
  transferred, resolved, the visitor's rating; core/handoffs.py), by sender id too. A shop's
  webhook delivery of an erased event sends nothing (admin_api/webhooks.py);
- Rasa's tracker `events` table (the same database in production; the `rasa-tracker.db` file
  under SWITCHBOARD_VAR_DIR when embedded, Settings.tracker_store_url);
- `verification_failures`: failed order checks are counted under an HMAC of the email tried
  and of the client's address (actions/attempts.py), so the visitor's email or phone number
  gives the keys to remove, in the table and in Redis;
- cached knowledge answers (knowledge/cache.py): keyed by a hash of the normalised question,
  so the visitor's own questions give the keys. In Redis they are found and removed; without
  Redis the cache lives in each action server's memory, out of our reach, and expires by
  itself within 24 h (TTL_SECONDS).

The audit log names the conversations agents acted in by their `c_…` id, which the shop's key
decrypts to the sender id (the phone number or email): erasing keeps those entries (what staff
did) but names the conversation by its log pseudonym instead, as the erase's own entry does.
Billing counts conversations under that pseudonym already (billing/tables.py), and analytics
only per day; neither is touched.

Logs: no log line holds a visitor's address or message text (core/logs.py). A conversation
appears there as a keyed pseudonym, `visitor(sender_id)`: "<shop>:<channel>:v-<16 hex>". Log
lines are not rewritten (they are append-only and usually shipped elsewhere); erasing removes
every record that links a pseudonym to a person, so what remains in logs cannot be tied back to
the visitor from our data. The export lists the pseudonyms, so an owner can find (and, in the
log store, delete) those lines; log retention is the log pipeline's own setting.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from actions.attempts import Attempts, VerificationFailureRow, derive_key
from actions.commerce.tables import ReturnRequestRow
from admin_api.errors import Unavailable, Unprocessable
from admin_api.routes.conversations import conversation_id
from admin_api.tables import AuditRow
from core import logs, nesting
from core.conversations import HandoffRow, MessageRow
from core.db import create_engine
from core.deliveries import DeliveryRow
from core.handoffs import ConversationEventRow, NoteRow
from knowledge.cache import normalise

log = logging.getLogger(__name__)

# Rasa's SQL tracker store table (rasa/core/tracker_store.py SQLTrackerStore.SQLEvent), in a
# MetaData of its own: Rasa creates and owns it, our migrations never do.
TRACKER = MetaData()
EVENTS = Table(
    "events", TRACKER,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
)
ANSWER_PREFIX = "switchboard:kb-answer"
_PHONE_NOISE = re.compile(r"[\s().-]")
_PHONE = re.compile(r"\+[1-9]\d{6,14}")
_OUR_TABLES: tuple[tuple[str, Any], ...] = (
    ("messages", MessageRow), ("deliveries", DeliveryRow), ("handoff_requests", HandoffRow),
    ("return_requests", ReturnRequestRow), ("conversation_notes", NoteRow),
    ("conversation_events", ConversationEventRow))


class NamesNoOne(Unprocessable):
    """The request names no visitor, or a value of it cannot name anyone (a 422)."""


@dataclass(frozen=True)
class Selector:
    """How the owner names the visitor: any of an email address, a phone number and
    conversations (sender ids), normalised as the channels store them. Several name one
    person (their conversations are the union)."""

    email: str | None = None
    phone: str | None = None
    conversations: tuple[str, ...] = ()

    @classmethod
    def of(cls, shop: str, *, email: str | None = None, phone: str | None = None,
           conversation: str | None = None, sender: str | None = None) -> Selector:
        """NamesNoOne when nothing is given, or a value given cannot name anyone."""
        given = {"email": email, "phone": phone, "conversation": conversation,
                 "sender": sender}
        if not any(v is not None and v.strip() for v in given.values()):
            raise NamesNoOne("name the visitor: email, phone, conversation (its id, c_…) or "
                             "sender (the REST channel's), or several")
        found = {"email": _email(email), "phone": _phone(phone),
                 "conversation": _conversation(shop, conversation),
                 "sender": _conversation(shop, f"rest:{sender.strip()}") if sender else None}
        unusable = [name for name, value in given.items()
                    if value is not None and value.strip() and found[name] is None]
        if unusable:
            raise NamesNoOne([{"loc": [name], "msg": _UNUSABLE[name], "type": "value_error"}
                              for name in unusable])
        conversations = tuple(sorted({c for c in (found["conversation"], found["sender"])
                                      if c}))
        return cls(email=found["email"], phone=found["phone"], conversations=conversations)

    @property
    def empty(self) -> bool:
        return not (self.email or self.phone or self.conversations)

    def pseudonym(self, shop: str) -> str:
        """How the audit log names this request: a keyed hash, as logs name visitors."""
        if len(self.conversations) == 1 and not (self.email or self.phone):
            return logs.visitor(self.conversations[0])
        named = "|".join(f"{k}={v}" for k, v in (
            ("email", self.email), ("phone", self.phone),
            ("conversation", ",".join(self.conversations))) if v)
        return logs.visitor(f"{shop}:visitor:{named}")


_UNUSABLE = {
    "email": "not an email address",
    "phone": "not a phone number: give it international, with the country code (+49…)",
    "conversation": "not a conversation id: give the id the conversations list shows (c_…); "
                    "a visitor's name there (v-…) is a pseudonym nothing can be found by, and "
                    "an email, phone number or REST sender goes in its own field",
    "sender": "not a REST sender: at most 255 characters with the shop's id, without "
              "control characters",
}


def _usable(raw: str | None, limit: int) -> str | None:
    value = (raw or "").strip()
    if not value or len(value) > limit or any(ord(c) < 32 or c == "\x7f" for c in value):
        return None  # PostgreSQL refuses NUL in text; no stored id holds a control character
    return value


def _email(raw: str | None) -> str | None:
    value = _usable(raw, 254)
    return value.lower() if value and value.count("@") == 1 else None


def _phone(raw: str | None) -> str | None:
    value = _usable(raw, 40)
    if value is None:
        return None
    number = _PHONE_NOISE.sub("", value.removeprefix("whatsapp:"))
    number = "+" + number[2:] if number.startswith("00") else number
    number = number if number.startswith("+") else "+" + number
    return number if _PHONE.fullmatch(number) else None


def _conversation(shop: str, raw: str | None) -> str | None:
    """A sender id ("<channel>:<key>", the shop's id before it or not); anything without a
    channel (an email, a v-… pseudonym typed into the wrong field) names no conversation,
    which is said (422) rather than answered "nothing stored" (404)."""
    value = _usable(raw, 255)
    if value is None or ":" not in value:
        return None
    return value if value.startswith(f"{shop}:") else f"{shop}:{value}"


@dataclass(frozen=True)
class Stores:
    """Where a shop's visitor data lives (the admin app's connections)."""

    sessions: async_sessionmaker
    tracker: AsyncEngine
    redis: Any  # redis.asyncio.Redis, or None when embedded
    credentials_key: str  # derives the verification counters' HMAC key
    conversation_key: bytes  # seals sender ids into the c_… ids the audit log names


def tracker_engine(ctx: Any) -> AsyncEngine:
    """Rasa's tracker database for the admin app: our engine in production, the embedded
    tracker file otherwise (opened once per app, disposed by retention.install's listener)."""
    engine = getattr(ctx, "tracker_engine", None)
    if engine is None:
        settings = ctx.settings
        engine = (create_engine(settings.tracker_store_url)
                  if settings.uses_embedded_storage else ctx.engine)
        ctx.tracker_engine = engine
    return engine


def stores_of(ctx: Any) -> Stores:
    return Stores(ctx.sessions, tracker_engine(ctx), ctx.redis,
                  ctx.settings.credentials_key.reveal(), ctx.settings.conversation_id_key)


async def has_events_table(engine: AsyncEngine) -> bool:
    """Rasa creates `events` when it first starts; before that there is nothing to read (an
    embedded tracker file, or its folder, that does not exist yet holds nothing either). A
    tracker database that exists but cannot be read raises TrackerUnavailable: saying "nothing
    found" then would tell an owner a visitor's data was erased when it was not."""
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not Path(database).exists():
        return False
    try:
        async with engine.connect() as conn:
            return bool(await conn.run_sync(lambda sync: inspect(sync).has_table("events")))
    except OperationalError as exc:
        log.error("tracker store unreadable", extra={"error": type(exc).__name__})
        raise TrackerUnavailable("Rasa's tracker store cannot be read right now; "
                                 "try again shortly") from None


class TrackerUnavailable(Unavailable):
    """Rasa's tracker database exists but does not answer (503 to the caller)."""


def _ours(shop: str, sender_ids: Iterable[str]) -> list[str]:
    return sorted({s for s in sender_ids if s.startswith(f"{shop}:")})


async def conversations_of(stores: Stores, shop: str, selector: Selector) -> list[str]:
    """The sender ids of the visitor's conversations with this shop (never another's)."""
    found: set[str] = set(selector.conversations)
    if selector.phone:
        found |= {f"{shop}:{channel}:{selector.phone}" for channel in ("sms", "whatsapp")}
    if selector.email:
        found |= await _conversations_with_email(stores, shop, selector.email)
    return _ours(shop, found)


async def _conversations_with_email(stores: Stores, shop: str, email: str) -> set[str]:
    found = {f"{shop}:email:{email}"}
    needle = f"%{_like(email)}%"
    async with stores.sessions() as session:
        said = await session.execute(
            select(MessageRow.sender_id).distinct().where(
                MessageRow.tenant_id == shop, MessageRow.direction == "in",
                func.lower(MessageRow.text).like(needle, escape="\\")))
        found |= set(said.scalars())
    if await has_events_table(stores.tracker):
        async with stores.tracker.connect() as conn:
            rows = await conn.execute(
                select(EVENTS.c.sender_id, EVENTS.c.data).where(
                    EVENTS.c.sender_id.startswith(f"{shop}:", autoescape=True),
                    EVENTS.c.type_name == "slot",
                    func.lower(EVENTS.c.data).like(needle, escape="\\")))
            for sender, data in rows:
                event = _parsed(data)
                value = event.get("value")
                if (event.get("name") == "email" and isinstance(value, str)
                        and value.strip().lower() == email):
                    found.add(sender)
    return found


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _parsed(data: str | None) -> dict[str, Any]:
    """A stored event's (or cached answer's) JSON object; {} when it is unreadable, nested
    past core/nesting.py's bound included (a RecursionError: a 500, and no export or erase
    for the visitor at all)."""
    try:
        value = nesting.loads(data or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _failure_keys(stores: Stores, shop: str, selector: Selector) -> list[str]:
    """Keys of the verification counters the visitor's email or address was counted under."""
    attempts = Attempts(stores.sessions, derive_key(stores.credentials_key))
    keys: set[str] = set()
    for email, client in ((selector.email, selector.email), (None, selector.phone)):
        if client:
            check = attempts.check(shop, email=email or "", order_number="", client=client)
            keys |= {subject.key for subject in check.subjects}
    return sorted(keys)


async def _questions(stores: Stores, shop: str, senders: Sequence[str]) -> set[str]:
    if not senders:
        return set()
    async with stores.sessions() as session:
        texts = await session.execute(select(MessageRow.text).where(
            MessageRow.tenant_id == shop, MessageRow.sender_id.in_(senders),
            MessageRow.direction == "in", MessageRow.text.is_not(None)))
        return {t for t in texts.scalars() if t and normalise(t)}


async def _cached_answer_keys(stores: Stores, shop: str, questions: set[str]) -> list[str]:
    """Redis keys of cached answers to the visitor's questions (any index version)."""
    if stores.redis is None or not questions:
        return []
    from knowledge.cache import cache_key

    digests = {cache_key(shop, "", q).rsplit(":", 1)[1] for q in questions}
    found = []
    async for raw in stores.redis.scan_iter(match=f"{ANSWER_PREFIX}:{shop}:*", count=500):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if key.rsplit(":", 1)[1] in digests:
            found.append(key)
    return sorted(found)


def _row(row: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {column.key: _plain(getattr(row, column.key)) for column in row.__table__.columns
            if column.key not in skip}


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# Internal bookkeeping of the gateway, not data about the visitor.
_MESSAGE_INTERNALS = frozenset({"lease_owner", "lease_expires_at", "attempts", "handled_at"})


async def export(stores: Stores, shop: str, selector: Selector) -> dict[str, Any]:
    """Everything stored about the visitor, per store, as JSON-ready values."""
    senders = await conversations_of(stores, shop, selector)
    out: dict[str, Any] = {}
    async with stores.sessions() as session:
        for name, table in _OUR_TABLES:
            if not senders:
                out[name] = []
                continue
            rows = await session.execute(
                select(table).where(table.tenant_id == shop, table.sender_id.in_(senders))
                .order_by(table.created_at, table.id))
            skip = _MESSAGE_INTERNALS if table is MessageRow else frozenset()
            out[name] = [_row(r, skip) for r in rows.scalars()]
        keys = _failure_keys(stores, shop, selector)
        failures = (await session.execute(select(VerificationFailureRow).where(
            VerificationFailureRow.tenant_id == shop, VerificationFailureRow.key.in_(keys))
        )).scalars().all() if keys else []
        out["verification_failures"] = [_row(r, frozenset({"key"})) for r in failures]
    out["tracker_events"] = []
    if senders and await has_events_table(stores.tracker):
        async with stores.tracker.connect() as conn:
            rows = await conn.execute(select(EVENTS).where(EVENTS.c.sender_id.in_(senders))
                                      .order_by(EVENTS.c.sender_id, EVENTS.c.id))
            out["tracker_events"] = [
                {"sender_id": r.sender_id, "type": r.type_name, "timestamp": r.timestamp,
                 "intent": r.intent_name, "action": r.action_name, "data": _parsed(r.data)}
                for r in rows]
    seen = sorted({r["sender_id"] for name in ("tracker_events", *(n for n, _ in _OUR_TABLES))
                   for r in out[name] if r.get("sender_id")})
    out["conversations"] = seen
    out["log_pseudonyms"] = [logs.visitor(s) for s in seen]
    out["cached_answers"] = []
    keys = await _cached_answer_keys(stores, shop, await _questions(stores, shop, senders))
    for key in keys:
        raw = await stores.redis.get(key)
        if raw:
            out["cached_answers"].append(_parsed(raw.decode() if isinstance(raw, bytes)
                                                 else raw))
    return out


async def erase(stores: Stores, shop: str, selector: Selector) -> dict[str, int]:
    """Delete everything stored about the visitor; the number removed per store. Running it
    again finds nothing and answers zeros."""
    senders = await conversations_of(stores, shop, selector)
    questions = await _questions(stores, shop, senders)  # before the messages go
    counts: dict[str, int] = {}
    async with stores.sessions() as session:
        for name, table in _OUR_TABLES:
            counts[name] = await _deleted(session, delete(table).where(
                table.tenant_id == shop, table.sender_id.in_(senders))) if senders else 0
        await _unlink_audit(session, stores, shop, senders)
        keys = _failure_keys(stores, shop, selector)
        counts["verification_failures"] = await _deleted(session, delete(
            VerificationFailureRow).where(VerificationFailureRow.tenant_id == shop,
                                          VerificationFailureRow.key.in_(keys))) if keys else 0
        await session.commit()
    counts["tracker_events"] = await delete_events(stores.tracker, senders=senders)
    answer_keys = await _cached_answer_keys(stores, shop, questions)
    counts["cached_answers"] = 0
    if stores.redis is not None:
        if answer_keys:
            counts["cached_answers"] = int(await stores.redis.delete(*answer_keys))
        if keys:
            counts["verification_failures"] += int(await stores.redis.delete(
                *[f"sb:{kind}:{key}" for key in keys for kind in ("vfail", "vlock")]))
    log.info("visitor erased", extra={"tenant_id": shop, "visitor": selector.pseudonym(shop),
                                      **{f"deleted_{k}": v for k, v in counts.items()}})
    return counts


async def _unlink_audit(session: Any, stores: Stores, shop: str,
                        senders: Sequence[str]) -> None:
    """The shop's audit entries about these conversations name them by pseudonym instead of
    their c_… id (which decrypts to the sender id); the entries themselves stay."""
    for sender in senders:
        await session.execute(
            update(AuditRow)
            .where(AuditRow.tenant_id == shop,
                   AuditRow.target == conversation_id(stores.conversation_key, shop, sender))
            .values(target=logs.visitor(sender)).execution_options(synchronize_session=False))


async def _deleted(session: Any, statement: Any) -> int:
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


async def delete_events(engine: AsyncEngine, *, senders: Sequence[str] = (),
                        shop: str | None = None, before: float | None = None) -> int:
    """Delete Rasa's tracker events: of these conversations, or of a shop's conversations
    older than `before` (epoch seconds, Rasa's `timestamp`)."""
    if not senders and shop is None:
        return 0
    if not await has_events_table(engine):
        return 0
    conditions: list[Any] = []
    if senders:
        conditions.append(EVENTS.c.sender_id.in_(list(senders)))
    if shop is not None:
        conditions.append(EVENTS.c.sender_id.startswith(f"{shop}:", autoescape=True))
    if before is not None:
        conditions.append(or_(EVENTS.c.timestamp < before, EVENTS.c.timestamp.is_(None)))
    async with engine.begin() as conn:
        result = await conn.execute(delete(EVENTS).where(*conditions))
        return int(result.rowcount or 0)


async def forget_return_senders(sessions: async_sessionmaker, shop: str,
                                before: datetime) -> int:
    """Unlink old return requests from their conversations (retention keeps the shop's
    record of a return, not who asked in which chat)."""
    async with sessions() as session:
        result = await session.execute(
            update(ReturnRequestRow)
            .where(ReturnRequestRow.tenant_id == shop, ReturnRequestRow.created_at < before,
                   ReturnRequestRow.sender_id.is_not(None))
            .values(sender_id=None))
        await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)
