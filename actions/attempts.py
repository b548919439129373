"""Failed identity checks, counted across senders and sessions, with a lockout.

The form's own limit (three tries, actions/verification.py) lives in one conversation's slots,
and a conversation is cheap: a new REST sender, a new widget session or /restart starts one.
Someone who knows a customer's email could walk order numbers that way (each try also spends
the shop's Shopify or WooCommerce quota), or try emails against a known order number. So every
failed check is also counted here, per shop, under five subjects:

- the client's address (one client trying many pairs: the widget request's network peer,
                        the phone number or email address on provider channels, the sender
                        on REST, whose caller is the shop's server speaking for everyone),
- the email tried by that client, the order number tried by that client (walking order
  numbers for a known customer, walking emails for a known order, from one client),
- the email tried and the order number tried, by anyone (the same walks spread over clients).

A lock only ever stops the client that earned it: when the client, or the email or order
number it tried, reaches its limit within WINDOW, that client is locked for LOCK on it (no
check runs, not even a right pair, or its guessing would go on) and is told to wait or
offered a person. The email and the order number alone never lock: they were once locks for
everyone, so anyone who knew a customer's email could keep that customer out of
self-service on every channel by failing five checks an hour with it. Past their limit they are
contested for LOCK instead: every client gets CONTESTED_LIMIT failures with them (one typo of
the real customer's) before it is locked, so guessing spread over many addresses still gets a
try or two an address, while the customer, writing from an address of their own with the
right pair, is answered. Nothing resets a count early, not a success (a guesser would get
fresh tries each time the customer checks an order) and not a handoff or /restart; the window
ending does.

Counts live in Redis when REDIS_URL is set (shared by every action server, expiring on their
own), else in the `verification_failures` table; a Redis failure falls back to the table. Keys
are an HMAC of shop + subject (keyed with a key derived from SWITCHBOARD_CREDENTIALS_KEY), so
neither store holds an email, order number or address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Integer, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow

log = logging.getLogger(__name__)

# Failures within WINDOW that lock a client (on its own, or on the email or order number it
# tried) for LOCK, or make an email or order number contested for LOCK. A customer mistyping
# gets three tries a conversation and rarely needs two conversations; a client address is
# shared by a household or an office (or, behind a proxy Sanic is not told about, by everyone:
# see connectors/messages.py), so it gets more.
WINDOW = timedelta(hours=1)
LOCK = timedelta(minutes=30)
LIMITS = {"email": 5, "order": 5, "client": 10, "client_email": 5, "client_order": 5}
# What a client may fail with a contested email or order number before it is locked on it:
# one typo of the real customer's, and not the five a client gets otherwise.
CONTESTED_LIMIT = 2
# The subjects that lock (all of them one client's), each with the subject, counted over every
# client, that makes its limit CONTESTED_LIMIT while contested.
LOCKING = {"client": None, "client_email": "email", "client_order": "order"}
# Stands for the client when the message did not say (only a message that did not come
# through the gateway): such checks share one count as one client would.
UNKNOWN_CLIENT = "-"


class VerificationFailureRow(Base):
    __tablename__ = "verification_failures"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class Subject:
    """One thing failures are counted for: its kind (a LIMITS key) and its keyed hash."""

    kind: str
    key: str  # 64 hex characters


@dataclass(frozen=True)
class Check:
    """The subjects of one verification attempt in one shop."""

    tenant_id: str
    subjects: tuple[Subject, ...]


@dataclass(frozen=True)
class Lockout:
    until: datetime

    def minutes_left(self, now: datetime | None = None) -> int:
        left = (self.until - (now or utcnow())).total_seconds()
        return max(1, math.ceil(left / 60))


def derive_key(credentials_key: str) -> bytes:
    """The HMAC key of the counters, derived from the credentials key (one secret fewer to
    manage; rotating that key also starts every count afresh)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    first = credentials_key.split(",")[0].strip().encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"switchboard verification failures").derive(first)


class Attempts:
    def __init__(self, sessions: async_sessionmaker, key: bytes,
                 redis: Redis | None = None) -> None:
        self._sessions = sessions
        self._key = key
        self._redis = redis

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    def check(self, tenant_id: str, *, email: str, order_number: str,
              client: str | None) -> Check:
        email, order = email.strip().lower(), order_number.strip().upper()
        by = (client or "").strip().lower() or UNKNOWN_CLIENT
        values = {"email": email, "order": order, "client": by,
                  "client_email": f"{by}\x1f{email}" if email else "",
                  "client_order": f"{by}\x1f{order}" if order else ""}
        subjects = tuple(Subject(kind, self._hash(tenant_id, kind, value))
                         for kind, value in values.items() if value)
        return Check(tenant_id, subjects)

    def _hash(self, tenant_id: str, kind: str, value: str) -> str:
        message = "\x1f".join((tenant_id, kind, value)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    async def locked(self, check: Check) -> Lockout | None:
        """The lockout in force for this check's client, on its own or on the email or order
        number tried, if one is."""
        if self._redis is not None:
            try:
                return await self._redis_locked(check)
            except RedisError as exc:
                log.warning("verification counts fall back to the database",
                            extra={"error": type(exc).__name__})
        return await self._db_locked(check)

    async def failed(self, check: Check) -> Lockout | None:
        """Count a failed check; the lockout of its client it caused, if it reached a limit."""
        if self._redis is not None:
            try:
                return await self._redis_failed(check)
            except RedisError as exc:
                log.warning("verification counts fall back to the database",
                            extra={"error": type(exc).__name__})
        try:
            return await self._db_failed(check)
        except IntegrityError:  # two first failures of one subject at once: count again
            return await self._db_failed(check)

    # -- Redis: a counter that expires with its window, a lock key that expires with the lock
    async def _redis_locked(self, check: Check) -> Lockout | None:
        assert self._redis is not None
        found = await self._redis.mget([f"sb:vlock:{s.key}" for s in _locking(check)])
        until = [float(v) for v in found if v is not None]
        return Lockout(datetime.fromtimestamp(max(until), utcnow().tzinfo)) if until else None

    async def _redis_failed(self, check: Check) -> Lockout | None:
        assert self._redis is not None
        pipe = self._redis.pipeline(transaction=False)
        for subject in check.subjects:
            counter = f"sb:vfail:{subject.key}"
            pipe.set(counter, 0, ex=int(WINDOW.total_seconds()), nx=True)  # opens the window
            pipe.incr(counter)  # keeps the window's expiry
        # A watched subject's lock key is its contest (`locked` never reads it).
        pipe.mget([f"sb:vlock:{s.key}" for s in check.subjects])
        *done, contests = await pipe.execute()
        counts = {s.kind: int(n) for s, n in zip(check.subjects, done[1::2], strict=True)}
        contested = {s.kind for s, v in zip(check.subjects, contests, strict=True)
                     if v is not None and s.kind not in LOCKING}
        reached = _reached(check, counts, contested)
        if not reached:
            return None
        until = utcnow() + LOCK
        pipe = self._redis.pipeline(transaction=False)
        for subject in reached:
            pipe.set(f"sb:vlock:{subject.key}", until.timestamp(),
                     ex=int(LOCK.total_seconds()))
            pipe.delete(f"sb:vfail:{subject.key}")  # after the lock, a new window
        await pipe.execute()
        return self._log_lockout(check, reached, until)

    # -- the database: one row per subject ------------------------------------------------
    async def _db_locked(self, check: Check) -> Lockout | None:
        now = utcnow()
        async with self._sessions() as session:
            until = [row.locked_until for row in [
                await session.get(VerificationFailureRow, s.key) for s in _locking(check)]
                if row is not None and row.locked_until is not None and row.locked_until > now]
        return Lockout(max(until)) if until else None

    async def _db_failed(self, check: Check) -> Lockout | None:
        now = utcnow()
        async with self._sessions.begin() as session:
            rows: dict[str, VerificationFailureRow] = {}
            for subject in check.subjects:
                row = await session.get(VerificationFailureRow, subject.key,
                                        with_for_update=True)
                if row is None:
                    row = VerificationFailureRow(key=subject.key, tenant_id=check.tenant_id,
                                                 failures=0, window_started_at=now)
                    session.add(row)
                if row.window_started_at <= now - WINDOW:
                    row.failures, row.window_started_at = 0, now
                row.failures += 1
                rows[subject.kind] = row
            # A watched subject's locked_until is its contest (`locked` never reads it).
            contested = {kind for kind, row in rows.items() if kind not in LOCKING
                         and row.locked_until is not None and row.locked_until > now}
            reached = _reached(check, {k: r.failures for k, r in rows.items()}, contested)
            for subject in reached:
                row = rows[subject.kind]
                row.locked_until = now + LOCK
                row.failures, row.window_started_at = 0, now  # after the lock, a new window
        if not reached:
            return None
        return self._log_lockout(check, reached, now + LOCK)

    def _log_lockout(self, check: Check, reached: list[Subject],
                     until: datetime) -> Lockout | None:
        """Log what a failure locked or contested; the client's lockout, if it caused one."""
        kinds = sorted(s.kind for s in reached)
        extra = {"tenant_id": check.tenant_id, "minutes": int(LOCK.total_seconds() // 60)}
        if contested := [k for k in kinds if k not in LOCKING]:
            log.warning("verification contested", extra={**extra, "subjects": contested})
        if locked := [k for k in kinds if k in LOCKING]:
            log.warning("verification locked", extra={**extra, "subjects": locked})
            return Lockout(until)
        return None


def _locking(check: Check) -> list[Subject]:
    """The check's subjects whose locks stop it: its client's, on its own or on what it tried."""
    return [s for s in check.subjects if s.kind in LOCKING]


def _reached(check: Check, counts: dict[str, int], contested: set[str]) -> list[Subject]:
    """The subjects a failure brought to their limit: watched ones become (or stay) contested,
    locking ones lock, at CONTESTED_LIMIT when what they watch is contested."""
    now_contested = contested | {s.kind for s in check.subjects
                                 if s.kind not in LOCKING and counts[s.kind] >= LIMITS[s.kind]}

    def limit(kind: str) -> int:
        watched = LOCKING.get(kind)
        return CONTESTED_LIMIT if watched in now_contested else LIMITS[kind]

    return [s for s in check.subjects if counts[s.kind] >= limit(s.kind)]
