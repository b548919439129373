"""The database for our own tables: one async engine per process, opened in a server listener.

SQLite (embedded default, file under var/) and PostgreSQL (DATABASE_URL) are both first-class:
every query we write runs on both, and Alembic migrations build the same schema on both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from core.aiosqlite_trips import fewer_round_trips
from core.sqlite import install_sqlite_pragmas

# Characters no text column keeps: NUL (PostgreSQL's text refuses it) and lone surrogates
# (JSON spells "\ud800"; no driver encodes one as UTF-8). The gateway cleans them from what
# visitors send (connectors/bounds.py), the admin API refuses them (admin_api/api.py).
UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")

# Stable constraint names, so migrations can drop/alter them on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def include_name(name: str | None, type_: str, parent_names: Mapping[Any, str | None]) -> bool:
    """Alembic autogenerate filter: our tables and their indexes only (Rasa's `events` table
    shares the database)."""
    table = name if type_ == "table" else parent_names.get("table_name")
    return table is None or table in Base.metadata.tables


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite drops tzinfo otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def utcnow() -> datetime:
    return datetime.now(UTC)


def sync_url(async_url: str) -> str:
    """The same database through a synchronous driver (for Alembic)."""
    return async_url.replace("sqlite+aiosqlite://", "sqlite://")


def create_engine(url: str) -> AsyncEngine:
    # hide_parameters: a failed statement's exception text would otherwise quote its bound
    # values (visitors' texts, sender ids holding phone numbers and emails), and that text
    # reaches logs through log.exception.
    if url.startswith("sqlite"):
        # SQLite lets one writer in at a time per file. With one connection per process our
        # coroutines queue for it in order (an asyncio wait) instead of each holding a
        # connection and sleeping in SQLite's busy handler, where under load they time out
        # with "database is locked". The busy timeout is then only for the other processes.
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60,
                                     hide_parameters=True)
        fewer_round_trips(engine)  # aiosqlite's thread: core/aiosqlite_trips.py
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True,
                                     hide_parameters=True)
    install_sqlite_pragmas(engine.sync_engine)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
