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
from sqlalchemy import Engine, inspect, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.db import create_engine, session_factory, sync_url
from core.settings import ROOT, async_database_url
from devtools.bootstrap import migrate
from devtools.demo_shop import seed_demo
from tests.conftest import services

OUR_TABLES = ("analytics_intents", "analytics_days", "audit_log", "jobs", "login_failures",
              "admin_sessions", "invites", "memberships", "users", "response_overrides",
              "api_keys", "verification_failures", "llm_usage",
              "deliveries", "knowledge_chunks", "knowledge_documents", "return_requests",
              "demo_order_items", "demo_orders", "handoff_requests", "messages", "tenants",
              "alembic_version")


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


def drop_our_tables(url: str) -> None:
    engine = sync_engine(url)
    with engine.begin() as conn:
        cascade = " CASCADE" if "postgresql" in url else ""
        for table in OUR_TABLES:
            conn.execute(text(f"DROP TABLE IF EXISTS {table}{cascade}"))
    engine.dispose()


def database_params() -> list:
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def migrated_url(kind: str, tmp_path: Path) -> str:
    """A migrated, empty database of `kind`; returns its plain URL.

    Migrating costs most of a database test's setup, so it runs once per test session: SQLite
    tests get a copy of a file migrated once; on PostgreSQL a schema already at head is only
    emptied (TRUNCATE, identities restarted), and migrated afresh when a test left it
    otherwise (dropped tables, a downgrade)."""
    if kind == "sqlite":
        target = tmp_path / "test.db"
        shutil.copyfile(_sqlite_template(), target)
        return f"sqlite:///{target}"
    found = services()["database_url"]
    if not found:
        pytest.skip("PostgreSQL not answering (make test sets TEST_DATABASE_URL)")
    if not _empty_if_at_head(found):
        drop_our_tables(found)
        migrate(found)
    return found


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
    """Empty our tables when the schema is exactly at head; False when it is not."""
    engine = sync_engine(url)
    try:
        with engine.begin() as conn:
            present = set(inspect(conn).get_table_names())
            if not set(OUR_TABLES) <= present:
                return False
            if conn.execute(text("SELECT version_num FROM alembic_version")).all() != [(_head(),)]:
                return False
            ours = ", ".join(t for t in OUR_TABLES if t != "alembic_version")
            conn.execute(text(f"TRUNCATE {ours} RESTART IDENTITY CASCADE"))
        return True
    finally:
        engine.dispose()
