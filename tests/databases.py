"""Real databases for unit tests: a fresh SQLite file always, PostgreSQL when it answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine as create_sync_engine, text

from core.bootstrap import migrate
from core.settings import async_database_url
from tests.conftest import services

OUR_TABLES = ("return_requests", "demo_order_items", "demo_orders", "handoff_requests",
              "messages", "tenants", "alembic_version")


def drop_our_tables(url: str) -> None:
    engine = create_sync_engine(async_database_url(url).replace("+aiosqlite", ""))
    with engine.begin() as conn:
        for table in OUR_TABLES:
            conn.execute(text(f"DROP TABLE IF EXISTS {table}" + (" CASCADE" if "postgresql" in url else "")))
    engine.dispose()


def database_params() -> list:
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def migrated_url(kind: str, tmp_path: Path) -> str:
    """A migrated, empty database of `kind`; returns its plain URL."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        url = services()["database_url"]
        if not url:
            pytest.skip("PostgreSQL not answering (make test sets TEST_DATABASE_URL)")
        drop_our_tables(url)
    migrate(url)
    return url
