"""Real databases for unit tests: a fresh SQLite file always, PostgreSQL when it answers."""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.db import create_engine, session_factory, sync_url
from core.settings import ROOT, async_database_url
from devtools.bootstrap import migrate
from devtools.demo_shop import seed_demo
from tests.conftest import services


def sync_engine(url: str) -> Engine:
    """A synchronous engine for a plain DATABASE_URL-style URL (sqlite:// or postgresql://)."""
    return create_sync_engine(sync_url(async_database_url(url)))


@asynccontextmanager
async def seeded_sessions(url: str) -> AsyncIterator[tuple[AsyncEngine, async_sessionmaker]]:
    """The app's async engine and sessions on a migrated database, with the demo shop seeded."""
    engine = create_engine(async_database_url(url))
    sessions = session_factory(engine)
    try:
        await seed_demo(sessions)
        yield engine, sessions
    finally:
        await engine.dispose()


@cache
def our_tables() -> tuple[str, ...]:
    """Every table our migrations make at head (alembic_version included), read from the
    SQLite file migrated once per session: a table a new migration adds is emptied and dropped
    too, without anyone listing it here (a hand-kept list missed issue 14's tables, so
    PostgreSQL tests saw rows earlier tests left and the integration stack's migration met
    tables a drop had left)."""
    with sqlite3.connect(_sqlite_template()) as conn:
        names = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    conn.close()
    return tuple(sorted(names))


def drop_our_tables(url: str) -> None:
    engine = sync_engine(url)
    with engine.begin() as conn:
        cascade = " CASCADE" if "postgresql" in url else ""
        for table in our_tables():
            conn.execute(text(f"DROP TABLE IF EXISTS {table}{cascade}"))
    engine.dispose()


def database_params() -> list:
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def migrated_url(kind: str, tmp_path: Path) -> str:
    """A migrated, empty database of `kind`; returns its plain URL.

    Migrating costs most of a database test's setup, so it runs once per test session: SQLite
    tests get a copy of a file migrated once; on PostgreSQL a schema already at head is only
    emptied (rows deleted, identities restarted), and migrated afresh when a test left it
    otherwise (dropped tables, a downgrade)."""
    if kind == "sqlite":
        return migrated_sqlite(tmp_path / "test.db")
    found = services()["database_url"]
    if not found:
        pytest.skip("PostgreSQL not answering (make test sets TEST_DATABASE_URL)")
    if not _empty_if_at_head(found):
        drop_our_tables(found)
        migrate(found)
    return found


def migrated_sqlite(target: Path) -> str:
    """A migrated, empty SQLite file at `target` (a copy of the one migrated once per session,
    instead of a migration of its own: about 1 s each); returns its URL."""
    shutil.copyfile(_sqlite_template(), target)
    return f"sqlite:///{target}"


@cache
def _head() -> str | None:
    return ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_current_head()


@cache
def _sqlite_template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="switchboard-schema-"))
    atexit.register(shutil.rmtree, folder, True)
    template = folder / "template.db"
    migrate(f"sqlite:///{template}")
    with sqlite3.connect(template) as conn:  # nothing left in a -wal file the copy would miss
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return template


def _empty_if_at_head(url: str) -> bool:
    """Empty our tables when the schema is exactly at head; False when it is not.

    The tables a test filled are emptied with DELETE, children first, and every identity of
    ours restarts, as TRUNCATE ... RESTART IDENTITY would: a TRUNCATE of all our tables took
    1.1 s per test (new files for each table), DELETE of the few a test fills 20-30 ms."""
    engine = sync_engine(url)
    try:
        with engine.begin() as conn:
            present = set(inspect(conn).get_table_names())
            if not set(our_tables()) <= present:
                return False
            if conn.execute(text("SELECT version_num FROM alembic_version")).all() != [(_head(),)]:
                return False
            ours = _children_first()
            filled = {name for (name,) in conn.execute(text(" UNION ALL ".join(
                f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {name})" for name in ours)))}
            for name in ours:
                if name in filled:
                    conn.execute(text(f"DELETE FROM {name}"))
            conn.execute(text(
                "SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s "
                "JOIN pg_depend d ON d.objid = s.seqrelid AND d.deptype IN ('a', 'i') "
                "JOIN pg_class t ON t.oid = d.refobjid WHERE t.relname = ANY(:names)"),
                {"names": list(ours)})
        return True
    finally:
        engine.dispose()


@cache
def _children_first() -> tuple[str, ...]:
    """Our tables (alembic_version aside) in an order DELETE can follow: a table before the
    tables its foreign keys point at (from the migrated SQLite file, whose keys are the same)."""
    metadata = MetaData()
    engine = create_sync_engine(f"sqlite:///{_sqlite_template()}")
    try:
        metadata.reflect(engine)
    finally:
        engine.dispose()
    return tuple(t.name for t in reversed(metadata.sorted_tables) if t.name != "alembic_version")
