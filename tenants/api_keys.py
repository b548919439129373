"""A shop's API keys: secrets shown once, stored hashed, with a visible prefix, revocable.

`scope` says what a key opens: "rest" is the REST channel (a shop's own servers posting
visitors' messages; browsers use the widget's signed visitor tokens instead); "owner",
"designer" and "agent" are the admin API with that role's rights (admin_api/).

A key reads `sb_live_<prefix>_<secret>`: the prefix (12 hex digits) is the row's public name,
shown in lists and logs and used to find the row; the secret is 32 random bytes
(`secrets.token_urlsafe`). The row keeps only SHA-256 of the whole key. A slow password hash
(argon2, bcrypt) exists to make guessing low-entropy passwords expensive; a 256-bit random
secret cannot be guessed, so one fast hash is the well-kept approach for API tokens (GitHub's
and Stripe's tokens are stored the same way) and verification costs microseconds. The stored
hash names its algorithm ("sha256:…") so another can be added without a migration. Hashes
are compared in constant time.

Verification is on every REST request, so `ApiKeyVerifier` keeps a key it has verified for
`cache_seconds` (5 s): a revoked key stops working within that time on every process (at once
in the process that revoked it); concurrent checks of the same key share one query. Unknown
keys are never cached (a flood of made-up keys would fill the cache; the rate limits bound
them). The last use is written at most once a minute per key and process, not per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Integer, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow

KEY_MARK = "sb_live_"  # what secret scanners (and people) recognise a Switchboard key by
SCOPES = ("rest", "owner", "designer", "agent")
ADMIN_SCOPES = ("owner", "designer", "agent")
_KEY = re.compile(r"sb_live_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_PREFIX = re.compile(r"(?:sb_live_)?([0-9a-f]{12})")
_HASH = "sha256"
LAST_USED_EVERY = timedelta(minutes=1)
_MAX_CACHED = 10_000  # keys; more than any deployment has, so only a leak could reach it


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id"), index=True)
    scope: Mapped[str] = mapped_column(String(32), default="rest")
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # shown in lists, finds the row
    secret_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class InvalidApiKey(Exception):
    """Missing, malformed, unknown, revoked, another shop's or for another scope. Callers
    answer all of these alike, so a key's holder learns nothing about other keys."""


class UnknownApiKey(LookupError):
    """No key with that prefix for the shop (revoking)."""


@dataclass(frozen=True)
class ApiKey:
    """A key as lists show it: never its secret or hash."""

    id: int
    tenant_id: str
    scope: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def label(self) -> str:
        """How people recognise the key: its first characters ("sb_live_3f9a…")."""
        return f"{KEY_MARK}{self.prefix}…"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> ApiKey:
        return cls(id=row.id, tenant_id=row.tenant_id, scope=row.scope, name=row.name,
                   prefix=row.prefix, created_at=row.created_at,
                   last_used_at=row.last_used_at, revoked_at=row.revoked_at)


@dataclass(frozen=True)
class IssuedKey:
    """A new key and its secret, which exists only here: show it once, then drop it."""

    key: ApiKey
    secret: str = field(repr=False)  # the whole `sb_live_…` string the client sends


def hash_key(token: str) -> str:
    return f"{_HASH}:{hashlib.sha256(token.encode()).hexdigest()}"


def prefix_of(token: str) -> str:
    """The prefix of a well-formed key; InvalidApiKey otherwise (nothing to look up)."""
    match = _KEY.fullmatch(token)
    if match is None:
        raise InvalidApiKey("not a Switchboard API key")
    return match.group(1)


def _new_key() -> tuple[str, str]:
    prefix = secrets.token_hex(6)
    return prefix, f"{KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}"


async def issue_key(sessions: async_sessionmaker, tenant_id: str, name: str,
                    scope: str = "rest") -> IssuedKey:
    """A new key for the shop; its secret is in the answer and nowhere else."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    name = name.strip()[:100] or scope
    for _ in range(3):  # 48-bit prefixes collide only by astronomical bad luck
        prefix, token = _new_key()
        row = ApiKeyRow(tenant_id=tenant_id, scope=scope, name=name, prefix=prefix,
                        secret_hash=hash_key(token), created_at=utcnow())
        async with sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                continue
            return IssuedKey(ApiKey.from_row(row), token)
    raise RuntimeError("could not find a free key prefix")


async def list_keys(sessions: async_sessionmaker, tenant_id: str) -> list[ApiKey]:
    """The shop's keys, revoked ones included (they explain why a client gets 401)."""
    async with sessions() as session:
        rows = await session.execute(select(ApiKeyRow).where(ApiKeyRow.tenant_id == tenant_id)
                                     .order_by(ApiKeyRow.created_at, ApiKeyRow.id))
        return [ApiKey.from_row(row) for row in rows.scalars()]


async def revoke_key(sessions: async_sessionmaker, tenant_id: str, prefix: str) -> ApiKey:
    """Revoke the shop's key with this prefix (as lists show it, with or without `sb_live_`
    and the ellipsis); revoking twice keeps the first time. UnknownApiKey when the shop has
    no such key."""
    match = _PREFIX.fullmatch(prefix.strip().rstrip("…."))
    if match is None:
        raise UnknownApiKey(prefix)
    async with sessions() as session:
        row = (await session.execute(select(ApiKeyRow).where(
            ApiKeyRow.tenant_id == tenant_id, ApiKeyRow.prefix == match.group(1)))
        ).scalar_one_or_none()
        if row is None:
            raise UnknownApiKey(prefix)
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            await session.commit()
        return ApiKey.from_row(row)


class ApiKeyVerifier:
    """Checks `Authorization: Bearer` keys for one process (see the module's docstring)."""

    def __init__(self, sessions: async_sessionmaker, cache_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiKey]] = {}  # hash of the key -> (read at, key)
        self._loading: dict[str, asyncio.Task[ApiKey | None]] = {}

    async def verify(self, token: str | None, tenant_id: str, scope: str = "rest") -> ApiKey:
        """The active key `token` is, when it belongs to this shop and scope; InvalidApiKey
        otherwise."""
        key = await self.verify_any(token, (scope,))
        if key.tenant_id != tenant_id:
            raise InvalidApiKey("unknown, revoked or another shop's key")
        return key

    async def verify_any(self, token: str | None, scopes: tuple[str, ...]) -> ApiKey:
        """The active key `token` is, of any shop, when its scope is one of `scopes` (the
        admin API: the key names the shop); InvalidApiKey otherwise."""
        if not token:
            raise InvalidApiKey("no key")
        prefix = prefix_of(token)
        digest = hash_key(token)
        hit = self._cache.get(digest)
        if hit is not None and self._clock() - hit[0] < self._cache_seconds:
            key: ApiKey | None = hit[1]
        else:
            key = await asyncio.shield(self._load(prefix, digest))
        if key is None or not key.active or key.scope not in scopes:
            raise InvalidApiKey("unknown, revoked or another shop's key")
        return key

    def forget(self, prefix: str) -> None:
        """Drop a key from the cache (this process revoked it)."""
        self._cache = {d: hit for d, hit in self._cache.items() if hit[1].prefix != prefix}

    def _load(self, prefix: str, digest: str) -> asyncio.Task[ApiKey | None]:
        task = self._loading.get(digest)
        if task is None:
            task = asyncio.create_task(self._read(prefix, digest))
            self._loading[digest] = task
            task.add_done_callback(lambda _: self._loading.pop(digest, None))
        return task

    async def _read(self, prefix: str, digest: str) -> ApiKey | None:
        read_at = self._clock()
        async with self._sessions() as session:
            row = (await session.execute(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
                   ).scalar_one_or_none()
            if row is None or not hmac.compare_digest(row.secret_hash, digest):
                self._cache.pop(digest, None)
                return None
            key = ApiKey.from_row(row)
            if key.active and (key.last_used_at is None
                               or utcnow() - key.last_used_at >= LAST_USED_EVERY):
                await session.execute(update(ApiKeyRow).where(ApiKeyRow.id == row.id)
                                      .values(last_used_at=utcnow()))
                await session.commit()
        if not key.active:
            self._cache.pop(digest, None)
            return key
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[digest] = (read_at, key)
        return key
