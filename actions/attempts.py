"""Failed identity checks, counted across senders and sessions, with a lockout.

The form's own limit (three tries, actions/verification.py) lives in one conversation's slots,
and a conversation is cheap: a new REST sender, a new widget session or /restart starts one.
Someone who knows a customer's email could walk order numbers that way (each try also spends
the shop's Shopify or WooCommerce quota), or try emails against a known order number. So every
failed check is also counted here, per shop, under three subjects:

- the email tried      (walking order numbers for a known customer),
- the order number     (walking emails for a known order),
- the client's address (one client trying many pairs: the widget request's network peer,
                        the phone number or email address on provider channels, the sender
                        on REST, whose caller is the shop's server speaking for everyone).

When one of them reaches its limit within WINDOW it is locked for LOCK: no check runs for it
(not even a right pair, or guessing would go on), and the visitor is told to wait or offered a
person. Nothing resets a count early, not a success (a guesser would get fresh tries each time
the customer checks an order) and not a handoff or /restart; the window ending does.

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

# Failures within WINDOW that lock a subject for LOCK. A customer mistyping gets three tries a
# conversation and rarely needs two conversations; a client address is shared by a household
# or an office (or, behind a proxy Sanic is not told about, by everyone: see
# connectors/messages.py), so it gets more.
WINDOW = timedelta(hours=1)
LOCK = timedelta(minutes=30)
LIMITS = {"email": 5, "order": 5, "client": 10}


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
        values = {"email": email.strip().lower(), "order": order_number.strip().upper(),
                  "client": (client or "").strip().lower()}
        subjects = tuple(Subject(kind, self._hash(tenant_id, kind, value))
                         for kind, value in values.items() if value)
        return Check(tenant_id, subjects)

    def _hash(self, tenant_id: str, kind: str, value: str) -> str:
        message = "\x1f".join((tenant_id, kind, value)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    async def locked(self, check: Check) -> Lockout | None:
        """The lockout in force for any of the check's subjects, if one is."""
        if self._redis is not None:
            try:
                return await self._redis_locked(check)
            except RedisError as exc:
                log.warning("verification counts fall back to the database",
                            extra={"error": type(exc).__name__})
        return await self._db_locked(check)

    async def failed(self, check: Check) -> Lockout | None:
        """Count a failed check; the lockout it caused, if it reached a limit."""
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
        found = await self._redis.mget([f"sb:vlock:{s.key}" for s in check.subjects])
        until = [float(v) for v in found if v is not None]
        return Lockout(datetime.fromtimestamp(max(until), utcnow().tzinfo)) if until else None

    async def _redis_failed(self, check: Check) -> Lockout | None:
        assert self._redis is not None
        pipe = self._redis.pipeline(transaction=False)
        for subject in check.subjects:
            counter = f"sb:vfail:{subject.key}"
            pipe.set(counter, 0, ex=int(WINDOW.total_seconds()), nx=True)  # opens the window
            pipe.incr(counter)  # keeps the window's expiry
        counts = (await pipe.execute())[1::2]
        reached = [s for s, n in zip(check.subjects, counts, strict=True)
                   if int(n) >= LIMITS[s.kind]]
        if not reached:
            return None
        until = utcnow() + LOCK
        pipe = self._redis.pipeline(transaction=False)
        for subject in reached:
            pipe.set(f"sb:vlock:{subject.key}", until.timestamp(),
                     ex=int(LOCK.total_seconds()))
            pipe.delete(f"sb:vfail:{subject.key}")  # after the lock, a new window
        await pipe.execute()
        self._log_lockout(check, reached)
        return Lockout(until)

    # -- the database: one row per subject ------------------------------------------------
    async def _db_locked(self, check: Check) -> Lockout | None:
        now = utcnow()
        async with self._sessions() as session:
            until = [row.locked_until for row in [
                await session.get(VerificationFailureRow, s.key) for s in check.subjects]
                if row is not None and row.locked_until is not None and row.locked_until > now]
        return Lockout(max(until)) if until else None

    async def _db_failed(self, check: Check) -> Lockout | None:
        now = utcnow()
        reached: list[Subject] = []
        async with self._sessions.begin() as session:
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
                if row.failures >= LIMITS[subject.kind]:
                    row.locked_until = now + LOCK
                    row.failures, row.window_started_at = 0, now  # after the lock, a new window
                    reached.append(subject)
        if not reached:
            return None
        self._log_lockout(check, reached)
        return Lockout(now + LOCK)

    def _log_lockout(self, check: Check, reached: list[Subject]) -> None:
        log.warning("verification locked", extra={
            "tenant_id": check.tenant_id, "subjects": sorted(s.kind for s in reached),
            "minutes": int(LOCK.total_seconds() // 60)})
