"""Real databases for unit tests: a fresh SQLite file always, PostgreSQL when it answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.db import create_engine, session_factory, sync_url
from core.settings import async_database_url
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
    """A migrated, empty database of `kind`; returns its plain URL."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        found = services()["database_url"]
        if not found:
            pytest.skip("PostgreSQL not answering (make test sets TEST_DATABASE_URL)")
        url = found
        drop_our_tables(url)
    migrate(url)
    return url
